//! The event store contract: append with expected version, read one stream, read all from
//! a global position, the projections kept in the same transaction as the append, and the
//! maintenance every backend offers (tail check, verify, rebuild, export). Nothing above
//! this module knows which backend it talks to.
//!
//! Backends: [`redb`] (embedded default, one file) and [`postgres`] (several nodes on one
//! database). Both seal events through [`envelope`] and project through [`projection`],
//! and answer pages through [`paging`], so the same log gives the same bytes everywhere.

pub mod chain;
pub mod compact;
mod count_blocks;
pub mod envelope;
pub mod paging;
pub mod postgres;
pub mod projection;
pub mod redb;
pub mod schema;
pub mod upcast;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::catalog::Resource;
use crate::domain::identity::User;
use crate::domain::instance::Instance;
use crate::domain::lifecycle::State;
use crate::projection::{IndexKey, Page};
pub use envelope::{Envelope, NewEvent, StreamKind};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage I/O failed: {0}")]
    Io(String),
    /// The disk is full: nothing was written; writes can succeed once there is room.
    #[error("the disk is full: {0}")]
    Full(String),
    /// Stored bytes did not decode or did not match their hash.
    #[error("stored data is corrupt at {at}: {detail}")]
    Corrupt { at: String, detail: String },
    #[error("another process holds the ledger at {0} (is a server running?)")]
    Locked(String),
    #[error("append to {stream} expected version {expected}, found {actual}")]
    VersionConflict {
        stream: Uuid,
        expected: u64,
        actual: u64,
    },
}

/// The head of the log: the last position and its hash (all zeros for an empty log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Head {
    pub position: u64,
    pub hash: [u8; 32],
}

/// What `verify` checked: the whole chain up to `head`, and projections equal to a rebuild.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub events: u64,
    pub instances: u64,
    pub index_entries: u64,
    pub head: Head,
}

/// How many events a long maintenance job lets pass between progress reports.
pub const PROGRESS_EVERY: u64 = 1000;

/// Which stored events an export writes: positions `from..=to` (both optional), only one
/// stream's when `stream` is given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportRange {
    pub from: u64,
    pub to: Option<u64>,
    pub stream: Option<Uuid>,
}

impl ExportRange {
    /// Whether the event stored at `position` with these bytes belongs to the range.
    pub fn includes(&self, position: u64, body: &[u8]) -> Result<bool, StoreError> {
        if position < self.from || self.to.is_some_and(|to| position > to) {
            return Ok(false);
        }
        let Some(stream) = self.stream else {
            return Ok(true);
        };
        #[derive(serde::Deserialize)]
        struct StreamOf {
            stream_id: Uuid,
        }
        let of: StreamOf = serde_json::from_slice(body).map_err(|e| StoreError::Corrupt {
            at: format!("position {position}"),
            detail: format!("envelope does not decode: {e}"),
        })?;
        Ok(of.stream_id == stream)
    }
}

/// Operations inside one write transaction. Reads see the transaction's own writes, so
/// commands on the same instance within one batch see each other's effects.
pub trait WriteTxn {
    fn instance(&mut self, id: Uuid) -> Result<Option<Instance>, StoreError>;
    fn resource(&mut self, id: Uuid) -> Result<Option<Resource>, StoreError>;
    fn user(&mut self, id: Uuid) -> Result<Option<User>, StoreError>;
    /// The first id carrying an index key (e.g. the user holding a username).
    fn first_with(&mut self, key: &[u8]) -> Result<Option<Uuid>, StoreError>;
    fn short_id_taken(&mut self, short_id: &str) -> Result<bool, StoreError>;
    fn idempotency(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn put_idempotency(&mut self, key: &str, record: &[u8]) -> Result<(), StoreError>;
    /// The stream's current version (0 if it has no events), including this transaction's.
    fn stream_version(&mut self, id: Uuid) -> Result<u64, StoreError>;
    /// The position of the last event, including those appended in this transaction.
    fn head_position(&mut self) -> Result<u64, StoreError>;
    /// Appends one event at the stream's next version, chains its hash and updates the
    /// projections. Returns the stored envelope.
    fn append(&mut self, event: NewEvent) -> Result<Envelope, StoreError>;
    /// Appends an event sealed elsewhere, as `body` (an import; `event` is what
    /// [`chain::Chain`] checked of those bytes): it must be the next position, link to the
    /// head's hash and be its stream's next version.
    fn append_checked(&mut self, event: &chain::Checked, body: &[u8]) -> Result<(), StoreError>;
    /// Says which instances and idempotency records the batch is about to read, so a
    /// backend that pays a round trip per lookup fetches them together. Only a hint:
    /// reads of anything else still work, and the embedded store ignores it.
    fn prefetch(&mut self, instances: &[Uuid], idempotency: &[String]) -> Result<(), StoreError> {
        let _ = (instances, idempotency);
        Ok(())
    }
    /// A new stream id (UUIDv7, so ids grow with creation). The transaction that mints it
    /// knows the stream has no events and no views, and need not look them up.
    fn mint_stream(&mut self) -> Uuid {
        Uuid::now_v7()
    }
}

/// A run of ids read from an index.
pub type Ids = Result<Vec<u128>, StoreError>;

/// A past point as the history index answers it: after the event at `position`, with
/// `last` the last instance created by then (ids grow with creation, so no id after it
/// can match).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    pub position: u64,
    pub last: u128,
}

/// The ids `keep` says yes to, in their order (the one-lookup-per-id fallback of
/// [`Snapshot::members`] and [`Snapshot::members_at`]).
fn kept(ids: &[u128], mut keep: impl FnMut(u128) -> Result<bool, StoreError>) -> Ids {
    let mut out = Vec::new();
    for id in ids {
        if keep(*id)? {
            out.push(*id);
        }
    }
    Ok(out)
}

/// Read access to one consistent snapshot. Backends supply lookups and the index
/// primitives (`seek`, `count`, `contains`, `members` and their as-of twins; the defaults
/// of the last two fall back to one lookup per id); the paging rules on top of them
/// (`page`, `page_at`) are written once, in [`paging`].
pub trait Snapshot {
    fn head(&self) -> Result<Head, StoreError>;
    fn instance(&self, id: Uuid) -> Result<Option<Instance>, StoreError>;
    fn instance_by_short_id(&self, short_id: &str) -> Result<Option<Uuid>, StoreError>;
    fn resource(&self, id: Uuid) -> Result<Option<Resource>, StoreError>;
    /// Several catalog resources at once, in the order of `ids` (`None`: absent). A
    /// backend that pays a round trip per query answers in one: a create names three or
    /// more.
    fn resources(&self, ids: &[Uuid]) -> Result<Vec<Option<Resource>>, StoreError> {
        ids.iter().map(|id| self.resource(*id)).collect()
    }
    fn user(&self, id: Uuid) -> Result<Option<User>, StoreError>;
    fn idempotency(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn stream(&self, id: Uuid) -> Result<Vec<Envelope>, StoreError>;
    fn read_all(&self, after: u64, limit: usize) -> Result<Vec<Envelope>, StoreError>;

    // Index primitives over the current projections.

    /// Up to `limit` ids at or after `from` carrying `key`, in order: one range read.
    fn run(&self, key: &[u8], from: u128, limit: usize) -> Ids;
    /// The first id at or after `from` carrying `key`.
    fn seek(&self, key: &[u8], from: u128) -> Result<Option<u128>, StoreError> {
        Ok(self.run(key, from, 1)?.into_iter().next())
    }
    /// How many ids carry `key` (a maintained count).
    fn count(&self, key: &[u8]) -> Result<u64, StoreError>;
    /// How many instances carry `key` in `state`, for the pairs counted per state
    /// ([`crate::projection::index::instance_state_counts`]); `None` from a backend that
    /// keeps no pair counts (the total is then an intersection).
    fn count_in_state(&self, _key: &[u8], _state: State) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }
    /// How many instances carried `key` in `state` after `position`, for the pairs that
    /// keep a history; `None` as for `count_in_state`.
    fn count_in_state_at(
        &self,
        _key: &[u8],
        _state: State,
        _position: u64,
    ) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }
    /// Whether `id` carries `key` (a backend with a cheaper point lookup says so).
    fn contains(&self, key: &[u8], id: u128) -> Result<bool, StoreError> {
        Ok(self.seek(key, id)? == Some(id))
    }
    /// Those of `ids` that carry `key`, in their order (a backend that pays a round trip
    /// per lookup answers a whole chunk at once).
    fn members(&self, key: &[u8], ids: &[u128]) -> Ids {
        kept(ids, |id| self.contains(key, id))
    }

    // As-of reads: the state after every event up to and including `position`.

    /// The last position committed at or before `at` (0 before the first event).
    fn position_at(&self, at: DateTime<Utc>) -> Result<u64, StoreError>;
    /// One instance as it was after `position` (its view recorded at its last event up to
    /// there).
    fn instance_at(&self, id: Uuid, position: u64) -> Result<Option<Instance>, StoreError>;
    /// The last instance created at or before `position`: ids grow with creation, so it
    /// bounds every as-of scan at `position`.
    fn last_created(&self, position: u64) -> Result<Option<u128>, StoreError>;
    /// Up to `limit` ids from `from` on that carried `key` at the cut, in order.
    fn run_at(&self, key: &[u8], from: u128, cut: Cut, limit: usize) -> Ids;
    /// The first id from `from` on that carried `key` at the cut.
    fn seek_at(&self, key: &[u8], from: u128, cut: Cut) -> Result<Option<u128>, StoreError> {
        Ok(self.run_at(key, from, cut, 1)?.into_iter().next())
    }
    /// How many instances carried `key` after `position`.
    fn count_at(&self, key: &[u8], position: u64) -> Result<u64, StoreError>;
    /// Whether `id` carried `key` at the cut.
    fn contains_at(&self, key: &[u8], id: u128, cut: Cut) -> Result<bool, StoreError> {
        Ok(self.seek_at(key, id, cut)? == Some(id))
    }
    /// Those of `ids` that carried `key` at the cut, in their order.
    fn members_at(&self, key: &[u8], ids: &[u128], cut: Cut) -> Ids {
        kept(ids, |id| self.contains_at(key, id, cut))
    }
    /// The stored hash of the event at `position`.
    fn event_hash(&self, position: u64) -> Result<[u8; 32], StoreError>;
    /// The fleet's state hash after `position`.
    fn state_hash_at(&self, position: u64) -> Result<[u8; 32], StoreError>;

    /// Ids carrying every key (AND), in id (= creation) order, strictly after `after`.
    fn page(
        &self,
        keys: &[IndexKey],
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        paging::page(self, keys, after, limit)
    }

    /// Like `page`, over the history intervals: ids carrying every key at `position`.
    fn page_at(
        &self,
        keys: &[IndexKey],
        position: u64,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        paging::page_at(self, keys, position, after, limit)
    }
}

/// Maintenance every backend offers; part of every [`EventStore`].
pub trait Maintenance {
    /// A cheap start-up check that the last stored event matches the recorded head;
    /// `verify` checks everything.
    fn check_tail(&self) -> Result<Head, StoreError>;
    /// Checks the whole log ([`chain::Chain`]: gaps, hashes, links, per-stream versions,
    /// decoding) and compares every projection with a rebuild from it; names the first
    /// damage found.
    fn verify(&self) -> Result<VerifyReport, StoreError> {
        self.verify_with(&|_| {})
    }
    /// `verify`, calling `progress` with the position reached now and then.
    fn verify_with(&self, progress: &dyn Fn(u64)) -> Result<VerifyReport, StoreError>;
    /// Drops every projection and rebuilds it from the log, checking the chain as it goes
    /// (a damaged log is refused, never "repaired"). Returns the number of events replayed.
    fn rebuild(&self) -> Result<u64, StoreError> {
        self.rebuild_with(&|_| {})
    }
    /// `rebuild`, calling `progress` with the position reached now and then.
    fn rebuild_with(&self, progress: &dyn Fn(u64)) -> Result<u64, StoreError>;
    /// Writes the stored events of `range`, exactly as stored, one per line, calling
    /// `progress` with the position reached now and then. Returns how many it wrote.
    fn export(
        &self,
        range: &ExportRange,
        out: &mut dyn std::io::Write,
        progress: &dyn Fn(u64),
    ) -> Result<u64, StoreError>;
    /// The version of the projection code that built the stored projections (see
    /// [`projection::VERSION`]); a rebuild records the current one.
    fn projection_version(&self) -> Result<u32, StoreError>;
}

/// Rebuilds the projections when code that projects differently opens the store: the log
/// is the truth, so the views, indexes and history follow the code. Returns how many
/// events were replayed (`None`: they were current).
pub fn ensure_current_projections(store: &dyn EventStore) -> Result<Option<u64>, StoreError> {
    if store.projection_version()? == projection::VERSION {
        return Ok(None);
    }
    store.rebuild().map(Some)
}

pub trait EventStore: Maintenance + Send + Sync + 'static {
    /// Runs `f` in one write transaction and commits durably once if it returns Ok; on
    /// Err nothing is written.
    fn write(
        &self,
        f: &mut dyn FnMut(&mut dyn WriteTxn) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
    fn read(&self) -> Result<Box<dyn Snapshot + '_>, StoreError>;
    /// Calls `wake` with the new head whenever another process commits to the same store,
    /// until it returns false (nobody listens any more).
    /// An embedded store has a single writer, the caller itself, so the default does
    /// nothing.
    fn watch_commits(&self, wake: Box<dyn Fn(u64) -> bool + Send>) -> Result<(), StoreError> {
        let _ = wake;
        Ok(())
    }
    /// Folds what is durable elsewhere into the store's own files, when the writer is idle
    /// (the embedded store's journal into its file). Writes are durable without it.
    fn settle(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// How many bytes the store occupies (the file, or the database), when known.
    fn size_bytes(&self) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }
    /// Claims the completion of instance `id` at `version` for this process for `lease`:
    /// among processes sharing the store, one holds it until it expires, so one driver
    /// carries out each pending transition. An embedded store has one process, so the
    /// default grants every claim.
    fn claim(
        &self,
        id: Uuid,
        version: u64,
        lease: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let _ = (id, version, lease);
        Ok(true)
    }
}
