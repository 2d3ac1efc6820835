//! Checking and repairing a ledger: `verify` (the log end to end, then every projection
//! against a rebuild) and `rebuild` (projections dropped and replayed from the log). The
//! log itself is never changed here: damage to it is reported, not "repaired".

use serde::Serialize;

use super::{OpsError, read};
use crate::query;
use crate::store::EventStore;
use crate::store::envelope::hex;

/// What a passing `verify` attests.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Verified {
    pub events: u64,
    pub head_position: u64,
    pub head_hash: String,
    pub state_hash: String,
    pub instances: u64,
    pub index_entries: u64,
}

/// The position of the log's head, for progress totals (0 when it cannot be read).
pub fn head_position(store: &dyn EventStore) -> u64 {
    store
        .read()
        .ok()
        .and_then(|r| r.head().ok())
        .map_or(0, |h| h.position)
}

pub fn verify(store: &dyn EventStore, progress: &dyn Fn(u64)) -> Result<Verified, OpsError> {
    let report = store.verify_with(progress)?;
    let digest = read(store, |r| {
        r.digest(Some(query::Point::Position(report.head.position)))
    })?;
    Ok(Verified {
        events: report.events,
        head_position: report.head.position,
        head_hash: hex(&report.head.hash),
        state_hash: hex(&digest.state_hash),
        instances: report.instances,
        index_entries: report.index_entries,
    })
}

/// What a rebuild replayed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Rebuilt {
    pub events: u64,
    pub projection_version: u32,
}

pub fn rebuild(store: &dyn EventStore, progress: &dyn Fn(u64)) -> Result<Rebuilt, OpsError> {
    let events = store.rebuild_with(progress)?;
    Ok(Rebuilt {
        events,
        projection_version: store.projection_version()?,
    })
}
