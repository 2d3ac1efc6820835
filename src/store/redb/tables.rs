//! The embedded store's tables and the layout of their keys. Instance views are stored
//! in the compact form ([`super::super::compact`]); resource and user views are JSON.
//! Index keys (JSON arrays of arbitrary strings) are numbered in [`KEY_DIGESTS`], and every
//! index, count and history entry carries the key's number instead: entries are
//! fixed-width tuples a fifth the size.

use ::redb::{ReadTransaction, ReadableDatabase, TableDefinition};

use super::super::count_blocks::{self as counts, Moves};
use super::super::{Head, StoreError};
use crate::domain::lifecycle::State;

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
/// A short id's ordinal ([`short_id::ordinal`](crate::domain::short_id::ordinal)) -> the
/// instance: new ids have increasing ordinals, so a batch's rows land side by side (keyed
/// by the id itself they landed in random pages, a page written per creation).
pub(super) const SHORT_IDS: TableDefinition<u64, u128> =
    TableDefinition::new("short_ids_by_ordinal");
/// An index key's number -> the key's digest ([`key_digest`](super::super::projection::key_digest)).
/// Numbers are given in the order keys are first used (so a replay of the same log numbers
/// them the same way), and each new key appends a row; lookups by digest go to the map
/// held in memory ([`super::keys`]). The key bytes are not kept: a name or host name key
/// (with a customer's id in it) was 40 to 80 bytes, one per instance and rename.
pub(super) const KEY_DIGESTS: TableDefinition<u32, [u8; 16]> = TableDefinition::new("key_digests");

/// (key, id) -> (): one sorted run of ids per key.
pub(super) const INDEX: TableDefinition<(u32, u128), ()> = TableDefinition::new("index_by_key");
/// Key -> how many ids carry it, for the keys without history (resources, users,
/// uniqueness claims); an instance key's current count is its last count-history row.
pub(super) const INDEX_COUNTS: TableDefinition<u32, u64> = TableDefinition::new("counts_by_key");
/// (key, state's place in [`State::ALL`]) -> how many instances carry the key in that
/// state, for the pairs counted per state without a history
/// ([`instance_state_counts`](crate::projection::index::instance_state_counts)). A table
/// of its own, a few rows per customer, so its pages stay hot where the counts of every
/// host name and address would dilute them.
pub(super) const STATE_COUNTS: TableDefinition<(u32, u8), u64> =
    TableDefinition::new("counts_by_key_and_state");
/// (key, state's place, block of positions) -> the pair's count history in that block
/// ([`super::super::count_blocks`]), for the pairs that keep a history; a pair's current
/// count is its last row's last count.
pub(super) const STATE_COUNT_HISTORY: TableDefinition<(u32, u8, u64), counts::Row> =
    TableDefinition::new("count_blocks_by_key_and_state");
/// History for as-of reads, kept for instance index keys: (key, id, from position) ->
/// to position (`u64::MAX` while open). The id was under the key at every position P
/// with from <= P < to.
pub(super) const HISTORY: TableDefinition<(u32, u128, u64), u64> =
    TableDefinition::new("history_by_key");
/// (key, block of positions) -> how many instances carried the key when the block began
/// and after each of its events ([`super::super::count_blocks`]).
pub(super) const COUNT_HISTORY: TableDefinition<(u32, u64), counts::Row> =
    TableDefinition::new("count_blocks_by_key");
/// Tables of earlier projection versions (before 7: index entries keyed by the key's
/// bytes, current instance views, JSON views keyed by instance and position, state hashes
/// on their own, key numbers by the key's bytes, current views without their term;
/// before 9: short ids and key numbers keyed by id and digest; before 11: a count-history
/// row per event): only dropped, by the rebuild that upgrades such a store.
pub(super) const LEGACY_TABLES: [&str; 13] = [
    "instances",
    "index",
    "index_counts",
    "history",
    "count_history",
    "versions",
    "state_hashes",
    "keys",
    "short_ids",
    "key_numbers",
    "current_versions",
    "count_history_by_key",
    "count_history_by_key_and_state",
];
/// Event time (ns since the epoch) -> the last position committed at that time.
pub(super) const TIMES: TableDefinition<i64, u64> = TableDefinition::new("times");
/// Position -> the instance created there: ids grow with creation, so the last creation
/// at or before P bounds every as-of scan at P.
pub(super) const CREATIONS: TableDefinition<u64, u128> = TableDefinition::new("creations");
/// Position of an instance event -> the fleet's state hash after it (32 bytes), then the
/// instance's view after it (in the compact form): an as-of view is a seek instead of a
/// fold over events scattered across the log. Keyed by position, the table only grows
/// at its end, so its pages are full: keyed by instance, new versions landed all over the
/// tree and left its pages about half empty.
pub(super) const VERSIONS: TableDefinition<u64, &[u8]> =
    TableDefinition::new("versions_by_position");
/// Instance id -> the position of its current view in [`VERSIONS`], and the view's term
/// of the state hash (so the next event need not encode the old view as JSON to remove
/// it). Which view held at an earlier position is found through [`STREAMS`], which maps
/// versions to positions.
pub(super) const CURRENT: TableDefinition<u128, (u64, [u8; 32])> =
    TableDefinition::new("current_views");

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
    split_hash(format!("position {pos}"), "record", stored)
}

/// A row that starts with a 32-byte hash: the hash, then the rest.
fn split_hash<'a>(
    at: String,
    what: &str,
    row: &'a [u8],
) -> Result<(&'a [u8], &'a [u8]), StoreError> {
    if row.len() < 32 {
        return Err(corrupt(at, format!("{what} shorter than its hash")));
    }
    Ok(row.split_at(32))
}

/// Key number `key`'s count-history row for the block of `position`, or the last one
/// before it.
pub(super) fn count_row(
    count_history: &impl ::redb::ReadableTable<(u32, u64), counts::Row>,
    key: u32,
    position: u64,
) -> Result<Option<(u64, Moves)>, StoreError> {
    match count_history
        .range((key, 0)..=(key, counts::block_of(position)))
        .map_err(io)?
        .next_back()
    {
        Some(row) => {
            let (k, v) = row.map_err(io)?;
            Ok(Some((k.value().1, Moves::from_row(v.value()))))
        }
        None => Ok(None),
    }
}

/// The count after the event at `position` from the row [`count_row`] found for it.
fn count_after(row: Option<(u64, Moves)>, position: u64) -> u64 {
    row.map_or(0, |(block, moves)| moves.after(block, position))
}

/// The count recorded for key number `key` after the event at `position` (0 if none).
pub(super) fn last_count(
    count_history: &impl ::redb::ReadableTable<(u32, u64), counts::Row>,
    key: u32,
    position: u64,
) -> Result<u64, StoreError> {
    Ok(count_after(
        count_row(count_history, key, position)?,
        position,
    ))
}

/// A version row's state hash and view.
pub(super) fn split_version(position: u64, row: &[u8]) -> Result<(&[u8], &[u8]), StoreError> {
    split_hash(format!("version at position {position}"), "row", row)
}

/// An instance's current view: where it was recorded, its compact bytes, and its term
/// of the state hash.
pub(super) struct Current {
    pub(super) position: u64,
    pub(super) view: Vec<u8>,
    pub(super) term: [u8; 32],
}

/// An instance's current view, if it has one.
pub(super) fn current_view(
    current: &impl ::redb::ReadableTable<u128, (u64, [u8; 32])>,
    versions: &impl ::redb::ReadableTable<u64, &'static [u8]>,
    id: u128,
) -> Result<Option<Current>, StoreError> {
    let Some((position, term)) = current.get(id).map_err(io)?.map(|g| g.value()) else {
        return Ok(None);
    };
    let row = versions
        .get(position)
        .map_err(io)?
        .ok_or_else(|| corrupt(format!("instance {id:032x}"), "its current view is missing"))?;
    let view = split_version(position, row.value())?.1.to_vec();
    Ok(Some(Current {
        position,
        view,
        term,
    }))
}

/// The position of the last event of stream `id` at or before `position`: a binary search
/// over its versions (numbered 1 to n without gaps, at growing positions).
pub(super) fn last_event_at(
    streams: &impl ::redb::ReadableTable<(u128, u64), u64>,
    id: u128,
    position: u64,
) -> Result<Option<u64>, StoreError> {
    let at = |v: u64| -> Result<u64, StoreError> {
        streams
            .get((id, v))
            .map_err(io)?
            .map(|g| g.value())
            .ok_or_else(|| {
                corrupt(
                    format!("stream {id:032x}"),
                    format!("version {v} is missing"),
                )
            })
    };
    let Some(last) = streams
        .range((id, 0)..=(id, u64::MAX))
        .map_err(io)?
        .next_back()
    else {
        return Ok(None);
    };
    let (key, last_position) = last.map_err(io)?;
    if last_position.value() <= position {
        return Ok(Some(last_position.value()));
    }
    // Versions lo..=hi: the answer is the last one at or before `position`, if any.
    let (mut lo, mut hi) = (1, key.value().1.saturating_sub(1));
    let mut found = None;
    while lo <= hi {
        let mid = lo + (hi - lo) / 2;
        let p = at(mid)?;
        if p <= position {
            found = Some(p);
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    Ok(found)
}

/// Opens a read transaction on `db`.
pub(super) fn begin_read(db: &::redb::Database) -> Result<ReadTransaction, StoreError> {
    db.begin_read().map_err(io)
}

/// A state's code in [`STATE_COUNTS`]: its place in [`State::ALL`] (reordering it changes
/// the stored meaning, so it goes with a projection version).
pub(super) fn state_code(state: State) -> u8 {
    State::ALL
        .iter()
        .position(|s| *s == state)
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or(u8::MAX)
}

/// A pair's count-history row for the block of `position`, or the last one before it.
pub(super) fn state_count_row(
    history: &impl ::redb::ReadableTable<(u32, u8, u64), counts::Row>,
    (key, state): (u32, u8),
    position: u64,
) -> Result<Option<(u64, Moves)>, StoreError> {
    match history
        .range((key, state, 0)..=(key, state, counts::block_of(position)))
        .map_err(io)?
        .next_back()
    {
        Some(row) => {
            let (k, v) = row.map_err(io)?;
            Ok(Some((k.value().2, Moves::from_row(v.value()))))
        }
        None => Ok(None),
    }
}

/// The count recorded for a pair after the event at `position` (0 if none).
pub(super) fn last_state_count(
    history: &impl ::redb::ReadableTable<(u32, u8, u64), counts::Row>,
    pair: (u32, u8),
    position: u64,
) -> Result<u64, StoreError> {
    Ok(count_after(
        state_count_row(history, pair, position)?,
        position,
    ))
}
