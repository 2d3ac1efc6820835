//! Offline questions about a ledger, answered by the same `query` code the API uses (as
//! the staff principal, so nothing is hidden): an instance's timeline or its view at a
//! point, how it changed between two points, the audit trail under filters, and the
//! ledger's vital figures.

use serde::Serialize;

use super::{OpsError, read};
use crate::domain::instance::Instance;
use crate::domain::lifecycle::State;
use crate::query::feed::FeedFilter;
use crate::query::{self, Envelope, Point};
use crate::store::EventStore;
use crate::store::envelope::hex;

/// The instance's whole timeline (purged instances included).
pub fn timeline(store: &dyn EventStore, id: &str) -> Result<Vec<Envelope>, OpsError> {
    read(store, |r| r.timeline(id))
}

/// The instance as it was at a point, and the position that point stands for.
pub fn view_at(
    store: &dyn EventStore,
    id: &str,
    point: Point,
) -> Result<(u64, Instance), OpsError> {
    read(store, |r| {
        Ok((r.bounded(point)?, r.instance_at(id, point)?))
    })
}

pub fn diff(
    store: &dyn EventStore,
    id: &str,
    from: Point,
    to: Option<Point>,
) -> Result<query::history::InstanceDiff, OpsError> {
    read(store, |r| r.diff(id, from, to))
}

/// Every event passing `filter`, in log order, at most `limit` (all when `None`).
pub fn audit(
    store: &dyn EventStore,
    filter: &FeedFilter,
    limit: Option<usize>,
) -> Result<Vec<Envelope>, OpsError> {
    read(store, |r| {
        let head = r.head()?.position;
        let mut out = Vec::new();
        let mut after = 0;
        while after < head && limit.is_none_or(|l| out.len() < l) {
            let want = limit.map_or(1000, |l| (l - out.len()).min(1000));
            let step = r.feed(filter, after, want)?;
            if step.next_after == after {
                break;
            }
            after = step.next_after;
            out.extend(step.items);
        }
        Ok(out)
    })
}

/// A ledger's vital figures.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Stats {
    pub events: u64,
    pub head_position: u64,
    pub head_hash: String,
    pub state_hash: String,
    pub last_event_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Current instances by state (purged instances have left the fleet).
    pub instances: Vec<(State, u64)>,
    pub bytes: Option<u64>,
    pub projection_version: u32,
}

pub fn stats(store: &dyn EventStore) -> Result<Stats, OpsError> {
    let (digest, instances) = read(store, |r| Ok((r.digest(None)?, r.state_counts()?)))?;
    Ok(Stats {
        events: digest.position,
        head_position: digest.position,
        head_hash: hex(&digest.hash),
        state_hash: hex(&digest.state_hash),
        last_event_at: digest.at,
        instances: instances
            .into_iter()
            .filter(|(s, _)| *s != State::Purged)
            .collect(),
        bytes: store.size_bytes()?,
        projection_version: store.projection_version()?,
    })
}
