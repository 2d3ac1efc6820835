//! Change over time: one instance between two points (both views and the events between),
//! and the instances that changed in a window of the log.

use uuid::Uuid;

use super::{Envelope, Point, QueryError, Reader, StreamKind};
use crate::domain::instance::Instance;
use crate::projection::{Filter, IndexKey, index};

/// One instance between two positions.
#[derive(Debug, Clone)]
pub struct InstanceDiff {
    pub from_position: u64,
    pub to_position: u64,
    /// The view at `from` (`None` if the instance did not exist yet).
    pub from: Option<Instance>,
    pub to: Option<Instance>,
    /// The instance's events after `from`, up to and including `to`.
    pub events: Vec<Envelope>,
}

/// One instance that changed in a window, before and after.
#[derive(Debug, Clone)]
pub struct Changed {
    pub id: Uuid,
    pub before: Option<Instance>,
    pub after: Option<Instance>,
}

#[derive(Debug, Clone)]
pub struct Changes {
    pub since_position: u64,
    pub until_position: u64,
    pub items: Vec<Changed>,
    /// Where to continue when the window held more than `limit`.
    pub next_since: Option<u64>,
}

fn matches(inst: Option<&Instance>, keys: &[IndexKey]) -> bool {
    inst.is_some_and(|i| {
        let have = index::instance_keys(i);
        keys.iter().all(|k| have.contains(k))
    })
}

impl Reader<'_> {
    /// How one instance changed between two points (`to` defaults to the head).
    pub fn diff(
        &self,
        raw: &str,
        from: Point,
        to: Option<Point>,
    ) -> Result<InstanceDiff, QueryError> {
        let stream = self.timeline(raw)?;
        let id = stream
            .first()
            .map(|e| e.stream_id)
            .ok_or_else(|| QueryError::not_found("instance", raw))?;
        let from_position = self.bounded(from)?;
        let to_position = match to {
            Some(p) => self.bounded(p)?,
            None => self.snap.head()?.position,
        };
        if from_position > to_position {
            return Err(QueryError::Invalid("from must not be after to".into()));
        }
        let events = stream
            .into_iter()
            .filter(|e| e.position > from_position && e.position <= to_position)
            .collect();
        Ok(InstanceDiff {
            from_position,
            to_position,
            from: self.view_at(id, from_position)?,
            to: self.view_at(id, to_position)?,
            events,
        })
    }

    /// The instances the caller may read that changed after `since` up to `until`
    /// (default: the head), at most `limit`; filters match either view.
    pub fn changes(
        &self,
        since: Point,
        until: Option<Point>,
        filters: &[Filter],
        limit: usize,
    ) -> Result<Changes, QueryError> {
        let keys: Vec<IndexKey> = filters.iter().map(Filter::index_key).collect();
        let head = self.snap.head()?.position;
        let since_position = self.bounded(since)?;
        let until_position = match until {
            Some(p) => self.bounded(p)?,
            None => head,
        };
        let mut visible = self.visibility();
        let mut seen: Vec<Uuid> = Vec::new();
        let mut items = Vec::new();
        let mut cursor = since_position;
        let mut next_since = None;
        'scan: while cursor < until_position {
            let batch = self.snap.read_all(cursor, 500)?;
            if batch.is_empty() {
                break;
            }
            for e in &batch {
                if e.position > until_position {
                    break 'scan;
                }
                if e.stream_kind == StreamKind::Instance
                    && !seen.contains(&e.stream_id)
                    && visible.event(self.snap, e)?.is_some()
                {
                    if items.len() == limit {
                        next_since = Some(cursor);
                        break 'scan;
                    }
                    seen.push(e.stream_id);
                    let before = self.view_at(e.stream_id, since_position)?;
                    let after = self.view_at(e.stream_id, until_position)?;
                    if keys.is_empty()
                        || matches(before.as_ref(), &keys)
                        || matches(after.as_ref(), &keys)
                    {
                        items.push(Changed {
                            id: e.stream_id,
                            before,
                            after,
                        });
                    }
                }
                cursor = e.position;
            }
        }
        Ok(Changes {
            since_position,
            until_position,
            items,
            next_since,
        })
    }
}
