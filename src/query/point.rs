//! Points in the ledger's history: a time or a log position, as the as-of reads take
//! them. Parsing returns a plain message; each surface wraps it in its own error.

use chrono::{DateTime, Utc};

use super::{QueryError, Reader};

/// A moment of the ledger: a time, or a position in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    Time(DateTime<Utc>),
    Position(u64),
}

impl Point {
    /// An RFC 3339 time named `name` in messages.
    pub fn time(name: &str, raw: &str) -> Result<Point, String> {
        DateTime::parse_from_rfc3339(raw)
            .map(|t| Point::Time(t.with_timezone(&Utc)))
            .map_err(|_| format!("{name} must be an RFC 3339 time like 2026-11-22T09:00:00Z"))
    }

    /// A log position named `name` in messages.
    pub fn position(name: &str, raw: &str) -> Result<Point, String> {
        raw.parse::<u64>()
            .map(Point::Position)
            .map_err(|_| format!("{name} must be a log position (a non-negative integer)"))
    }

    /// A position when all digits, otherwise an RFC 3339 time.
    pub fn either(name: &str, raw: &str) -> Result<Point, String> {
        if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
            Point::position(name, raw)
        } else {
            Point::time(name, raw)
        }
    }
}

impl Reader<'_> {
    /// The log position a point stands for: after every event up to and including it.
    pub fn position_of(&self, point: Point) -> Result<u64, QueryError> {
        match point {
            Point::Position(p) => Ok(p),
            Point::Time(t) => Ok(self.snap.position_at(t)?),
        }
    }

    /// Like [`Reader::position_of`], but never past the head.
    pub fn bounded(&self, point: Point) -> Result<u64, QueryError> {
        Ok(self.position_of(point)?.min(self.snap.head()?.position))
    }
}
