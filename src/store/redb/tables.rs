//! The embedded store's tables and the layout of their keys. Values that are views are
//! the JSON bytes the state hash commits to. Index keys (JSON arrays of arbitrary
//! strings) are stored once, in [`KEYS`], and every index, count and history entry
//! carries the key's number instead: entries are fixed-width tuples a fifth the size.

use ::redb::{ReadTransaction, ReadableDatabase, TableDefinition};

use super::super::{Head, StoreError};

/// position -> 32-byte hash followed by the envelope's JSON bytes.
pub(super) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// (stream id, version) -> position.
pub(super) const STREAMS: TableDefinition<(u128, u64), u64> = TableDefinition::new("streams");
pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(super) const IDEMPOTENCY: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");
/// Projections: rebuilt from the log by `verify`, which compares them byte for byte.
/// An instance's current view is its last row in [`VERSIONS`].
pub(super) const RESOURCES: TableDefinition<u128, &[u8]> = TableDefinition::new("resources");
pub(super) const USERS: TableDefinition<u128, &[u8]> = TableDefinition::new("users");
pub(super) const SHORT_IDS: TableDefinition<&str, u128> = TableDefinition::new("short_ids");
/// Index key bytes -> its number, given in the order keys are first used (so a replay of
/// the same log numbers them the same way).
pub(super) const KEYS: TableDefinition<&[u8], u32> = TableDefinition::new("keys");
/// (key, id) -> (): one sorted run of ids per key.
pub(super) const INDEX: TableDefinition<(u32, u128), ()> = TableDefinition::new("index_by_key");
/// Key -> how many ids carry it, for the keys without history (resources, users,
/// uniqueness claims); an instance key's current count is its last count-history row.
pub(super) const INDEX_COUNTS: TableDefinition<u32, u64> = TableDefinition::new("counts_by_key");
/// History for as-of reads, kept for instance index keys: (key, id, from position) ->
/// to position (`u64::MAX` while open). The id was under the key at every position P
/// with from <= P < to.
pub(super) const HISTORY: TableDefinition<(u32, u128, u64), u64> =
    TableDefinition::new("history_by_key");
/// (key, position) -> how many instances carried the key after that event.
pub(super) const COUNT_HISTORY: TableDefinition<(u32, u64), u64> =
    TableDefinition::new("count_history_by_key");
/// Tables of projection versions before 5 (index entries keyed by the key's bytes, and
/// current instance views): only dropped, by the rebuild that upgrades such a store.
pub(super) const LEGACY_TABLES: [&str; 5] = [
    "instances",
    "index",
    "index_counts",
    "history",
    "count_history",
];
/// Event time (ns since the epoch) -> the last position committed at that time.
pub(super) const TIMES: TableDefinition<i64, u64> = TableDefinition::new("times");
/// Position -> the instance created there: ids grow with creation, so the last creation
/// at or before P bounds every as-of scan at P.
pub(super) const CREATIONS: TableDefinition<u64, u128> = TableDefinition::new("creations");
/// Position -> the fleet's state hash after that event (written when an instance changes).
pub(super) const STATE_HASHES: TableDefinition<u64, &[u8]> = TableDefinition::new("state_hashes");
/// (instance id, position) -> the instance's view after that event: an as-of view is one
/// seek instead of a fold over events scattered across the log.
pub(super) const VERSIONS: TableDefinition<(u128, u64), &[u8]> = TableDefinition::new("versions");

pub(super) const HEAD_KEY: &str = "head";
/// The projection version that built the projections (u32, big endian); absent: 1.
pub(super) const PROJECTION_VERSION_KEY: &str = "projection_version";
pub const FILE_NAME: &str = "ledger.redb";

/// A failure of redb or of the file system, classified: a full disk is `Full` (the
/// caller can say 507 and writes resume once there is room), anything else `Io`.
pub(super) fn io(e: impl Into<::redb::Error>) -> StoreError {
    let e: ::redb::Error = e.into();
    let full = matches!(&e, ::redb::Error::Io(err)
        if err.kind() == std::io::ErrorKind::StorageFull || err.raw_os_error() == Some(ENOSPC));
    if full {
        StoreError::Full(e.to_string())
    } else {
        StoreError::Io(e.to_string())
    }
}

/// Linux's "no space left on device", for file systems whose error kind says less.
const ENOSPC: i32 = 28;

pub(super) fn corrupt(at: impl Into<String>, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        at: at.into(),
        detail: detail.to_string(),
    }
}

pub(super) fn read_head(read: &ReadTransaction) -> Result<Head, StoreError> {
    let meta = read.open_table(META).map_err(io)?;
    let guard = ::redb::ReadableTable::get(&meta, HEAD_KEY).map_err(io)?;
    decode_head(guard.as_ref().map(|g| g.value()))
}

pub(super) fn decode_head(raw: Option<&[u8]>) -> Result<Head, StoreError> {
    let Some(raw) = raw else {
        return Ok(Head::default());
    };
    if raw.len() != 40 {
        return Err(corrupt("head", "unexpected length"));
    }
    let mut position = [0u8; 8];
    position.copy_from_slice(&raw[..8]);
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&raw[8..]);
    Ok(Head {
        position: u64::from_be_bytes(position),
        hash,
    })
}

pub(super) fn encode_head(head: &Head) -> Vec<u8> {
    let mut raw = Vec::with_capacity(40);
    raw.extend_from_slice(&head.position.to_be_bytes());
    raw.extend_from_slice(&head.hash);
    raw
}

/// The stored record of an event: its hash, then its bytes.
pub(super) fn split_record(pos: u64, stored: &[u8]) -> Result<(&[u8], &[u8]), StoreError> {
    if stored.len() < 32 {
        return Err(corrupt(
            format!("position {pos}"),
            "record shorter than its hash",
        ));
    }
    Ok(stored.split_at(32))
}

/// The count recorded for key number `key` at or before `position` (0 if none).
pub(super) fn last_count(
    count_history: &impl ::redb::ReadableTable<(u32, u64), u64>,
    key: u32,
    position: u64,
) -> Result<u64, StoreError> {
    match count_history
        .range((key, 0)..=(key, position))
        .map_err(io)?
        .next_back()
    {
        Some(row) => Ok(row.map_err(io)?.1.value()),
        None => Ok(0),
    }
}

/// An instance's last recorded view at or before `position`, with the position it was
/// recorded at.
pub(super) fn last_version_view(
    versions: &impl ::redb::ReadableTable<(u128, u64), &'static [u8]>,
    id: u128,
    position: u64,
) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
    match versions
        .range((id, 0)..=(id, position))
        .map_err(io)?
        .next_back()
    {
        Some(row) => {
            let (k, v) = row.map_err(io)?;
            Ok(Some((k.value().1, v.value().to_vec())))
        }
        None => Ok(None),
    }
}

/// Opens a read transaction on `db`.
pub(super) fn begin_read(db: &::redb::Database) -> Result<ReadTransaction, StoreError> {
    db.begin_read().map_err(io)
}
