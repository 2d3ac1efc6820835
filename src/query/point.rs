//! Points in the ledger's history: a time or a log position, as the as-of reads take
//! them. Parsing returns a plain message; each surface wraps it in its own error.

use chrono::{DateTime, Utc};

use super::{QueryError, Reader};

/// A moment of the ledger: a time, or a position in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    Time(DateTime<Utc>),
    Position(u64),
    /// Both bounds at once (`as_of` and `at_position` together): whichever comes first.
    Earlier(DateTime<Utc>, u64),
}

impl Point {
    /// An RFC 3339 time named `name` in messages.
    pub fn time(name: &str, raw: &str) -> Result<Point, String> {
        let bad = || format!("{name} must be an RFC 3339 time like 2026-11-22T09:00:00Z");
        // RFC 3339's `date-time` production exactly, as JSON Schema's `date-time` format
        // states it: chrono also takes a space for the `T` and a leap second (`:60`),
        // which the published document does not allow.
        let bytes = raw.as_bytes();
        if !matches!(bytes.get(10), Some(b'T' | b't')) || bytes.get(17..19) == Some(b"60") {
            return Err(bad());
        }
        DateTime::parse_from_rfc3339(raw)
            .map(|t| Point::Time(t.with_timezone(&Utc)))
            .map_err(|_| bad())
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
            Point::Earlier(t, p) => Ok(self.snap.position_at(t)?.min(p)),
        }
    }

    /// Like [`Reader::position_of`], but never past the head.
    pub fn bounded(&self, point: Point) -> Result<u64, QueryError> {
        Ok(self.position_of(point)?.min(self.snap.head()?.position))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever a query string holds, a point parses or is refused with a message.
        #[test]
        fn any_text_is_a_point_or_a_message(raw in "\\PC{0,40}") {
            let _ = Point::either("at", &raw);
            let _ = Point::time("at", &raw);
            let _ = Point::position("at", &raw);
        }
    }

    #[test]
    fn digits_are_positions_and_the_rest_times() {
        assert_eq!(Point::either("at", "12"), Ok(Point::Position(12)));
        assert!(matches!(
            Point::either("at", "2026-11-22T09:00:00Z"),
            Ok(Point::Time(_))
        ));
        assert!(Point::either("at", "99999999999999999999999").is_err());
        assert!(Point::either("at", "").is_err());
    }

    #[test]
    fn times_are_rfc_3339_date_times_exactly() {
        for ok in [
            "2026-11-22T09:00:00Z",
            "2026-11-22t09:00:00.5z",
            "2026-11-22T09:00:00+01:00",
        ] {
            assert!(Point::time("at", ok).is_ok(), "{ok}");
        }
        // chrono alone would take these two; the document's `date-time` does not.
        for refused in [
            "2026-11-22 09:00:00Z",
            "2016-12-31T23:59:60Z",
            "2026-11-22",
            "T",
        ] {
            assert!(Point::time("at", refused).is_err(), "{refused}");
        }
    }
}
