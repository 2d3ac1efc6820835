//! The embedded store's write transaction: append (seal, log, stream index) and the
//! projection tables the shared projection code writes through.

use std::collections::HashMap;

use ::redb::{ReadableTable, ReadableTableMetadata, Table, WriteTransaction};
use uuid::Uuid;

use crate::domain::lifecycle::State;

use super::super::chain::{Checked, follows};
use super::super::compact;
use super::super::count_blocks::{self as counts, MovedTwice, Moves};
use super::super::envelope::{Envelope, NewEvent, Payload};
use super::super::projection::{
    ProjectionTables, Projector, StateHash, StoredView, decode_json, key_digest, shifted,
};
use super::super::{Head, StoreError, WriteTxn};
use super::journal::Record;
use super::keys::{KeyNumbers, NewKeys};
use super::tables::*;
use crate::domain::catalog::Resource;
use crate::domain::identity::User;
use crate::domain::instance::Instance;
use crate::domain::short_id;
use crate::limits::PROJECTION_CACHE_ENTRIES;

/// The projection tables of one write transaction, used by live appends and rebuilds.
pub(super) struct Tables<'t> {
    resources: Table<'t, u128, &'static [u8]>,
    users: Table<'t, u128, &'static [u8]>,
    short_ids: Table<'t, u64, u128>,
    keys: Table<'t, u32, [u8; 16]>,
    /// The numbers of the keys committed before this transaction.
    committed_keys: &'t KeyNumbers,
    /// The keys this transaction numbered.
    new_keys: NewKeys,
    /// Key numbers looked up or given in this transaction, by key.
    key_numbers: HashMap<Vec<u8>, u32>,
    /// The number the next new key gets (keys are numbered 0, 1, 2, ...).
    next_key: u32,
    /// The latest count-history row of the instance keys this transaction moved, written
    /// when a key moves on to the next block or the transaction finishes: the keys every
    /// creation moves (all, project, flavor, ...) would otherwise cost a seek and a row
    /// write per event.
    count_rows: HashMap<u32, Latest>,
    /// The pair counts this transaction moved, written once each when it finishes
    /// ([`Tables::finish`]): they have no history, so only the last value counts, and a
    /// batch moves a project's running count once per event.
    state_counts: HashMap<(u32, u8), u64>,
    state_counts_table: Table<'t, (u32, u8), u64>,
    /// The latest count-history row of the pairs with a history this transaction moved,
    /// as [`Tables::count_rows`].
    state_count_rows: HashMap<(u32, u8), Latest>,
    state_count_history: Table<'t, (u32, u8, u64), counts::Row>,
    index: Table<'t, (u32, u128), ()>,
    counts: Table<'t, u32, u64>,
    history: Table<'t, (u32, u128, u64), u64>,
    count_history: Table<'t, (u32, u64), counts::Row>,
    times: Table<'t, i64, u64>,
    /// The last time recorded and its position, written when the time moves on or the
    /// transaction finishes: a batch's events share one time, and each of them rewrote
    /// that row.
    time: Option<(i64, u64)>,
    creations: Table<'t, u64, u128>,
    versions: Table<'t, u64, &'static [u8]>,
    current: Table<'t, u128, (u64, [u8; 32])>,
    /// The buffer a version row is put together in, kept to spare an allocation per event.
    row: Vec<u8>,
}

/// Opens the projection tables, and a projector carrying the last recorded state hash;
/// `committed_keys` are the key numbers of the tables as they are.
pub(super) fn open_projection<'t>(
    txn: &'t WriteTransaction,
    committed_keys: &'t KeyNumbers,
) -> Result<(Tables<'t>, Projector), StoreError> {
    let versions = txn.open_table(VERSIONS).map_err(io)?;
    let state_hash = match versions.last().map_err(io)? {
        Some((position, row)) => {
            StateHash::from_bytes(split_version(position.value(), row.value())?.0)
        }
        None => StateHash::default(),
    };
    let keys = txn.open_table(KEY_DIGESTS).map_err(io)?;
    let next_key = u32::try_from(keys.len().map_err(io)?)
        .map_err(|_| corrupt("keys", "more index keys than numbers"))?;
    let tables = Tables {
        keys,
        committed_keys,
        new_keys: HashMap::new(),
        key_numbers: HashMap::new(),
        next_key,
        count_rows: HashMap::new(),
        state_counts: HashMap::new(),
        state_counts_table: txn.open_table(STATE_COUNTS).map_err(io)?,
        state_count_rows: HashMap::new(),
        state_count_history: txn.open_table(STATE_COUNT_HISTORY).map_err(io)?,
        history: txn.open_table(HISTORY).map_err(io)?,
        count_history: txn.open_table(COUNT_HISTORY).map_err(io)?,
        times: txn.open_table(TIMES).map_err(io)?,
        time: None,
        creations: txn.open_table(CREATIONS).map_err(io)?,
        versions,
        current: txn.open_table(CURRENT).map_err(io)?,
        row: Vec::new(),
        resources: txn.open_table(RESOURCES).map_err(io)?,
        users: txn.open_table(USERS).map_err(io)?,
        short_ids: txn.open_table(SHORT_IDS).map_err(io)?,
        index: txn.open_table(INDEX).map_err(io)?,
        counts: txn.open_table(INDEX_COUNTS).map_err(io)?,
    };
    Ok((tables, Projector::new(state_hash)))
}

/// Drops every projection table (a rebuild recreates them empty).
pub(super) fn drop_projection(txn: &WriteTransaction) -> Result<(), StoreError> {
    for legacy in LEGACY_TABLES {
        txn.delete_table(::redb::TableDefinition::<(), ()>::new(legacy))
            .map_err(io)?;
    }
    txn.delete_table(KEY_DIGESTS).map_err(io)?;
    txn.delete_table(RESOURCES).map_err(io)?;
    txn.delete_table(USERS).map_err(io)?;
    txn.delete_table(SHORT_IDS).map_err(io)?;
    txn.delete_table(INDEX).map_err(io)?;
    txn.delete_table(INDEX_COUNTS).map_err(io)?;
    txn.delete_table(STATE_COUNTS).map_err(io)?;
    txn.delete_table(STATE_COUNT_HISTORY).map_err(io)?;
    txn.delete_table(HISTORY).map_err(io)?;
    txn.delete_table(COUNT_HISTORY).map_err(io)?;
    txn.delete_table(TIMES).map_err(io)?;
    txn.delete_table(CREATIONS).map_err(io)?;
    txn.delete_table(VERSIONS).map_err(io)?;
    txn.delete_table(CURRENT).map_err(io)?;
    Ok(())
}

/// A key's (or pair's) latest count-history row: its block, its moves, and whether this
/// transaction moved it (so it is to be written).
#[derive(Debug, Clone, Copy)]
struct Latest {
    block: u64,
    moves: Moves,
    moved: bool,
}

impl Latest {
    /// The last row stored, or an empty count before any block.
    fn read(row: Option<(u64, Moves)>) -> Latest {
        let (block, moves) = row.unwrap_or((0, Moves::starting(0)));
        Latest {
            block,
            moves,
            moved: false,
        }
    }

    /// One more (`up`) or fewer at `position`: the row after the move, and the row this
    /// one finished (to write now) if the position starts a new block.
    fn shifted(
        self,
        position: u64,
        up: bool,
    ) -> Result<(Option<(u64, counts::Row)>, Latest), StoreError> {
        let block = counts::block_of(position);
        let (done, mut next) = match block.cmp(&self.block) {
            std::cmp::Ordering::Equal => (None, self),
            std::cmp::Ordering::Greater => (
                self.moved.then(|| (self.block, self.moves.row())),
                Latest {
                    block,
                    moves: Moves::starting(self.moves.last()),
                    moved: false,
                },
            ),
            std::cmp::Ordering::Less => {
                return Err(corrupt(
                    "count history",
                    format!(
                        "a move at position {position} before the block {} it holds",
                        self.block
                    ),
                ));
            }
        };
        next.moves.shift(position, up).map_err(|MovedTwice| {
            corrupt(
                "count history",
                format!("two moves one way at position {position}"),
            )
        })?;
        next.moved = true;
        Ok((done, next))
    }
}

fn view<K: ::redb::Key + 'static>(
    table: &Table<'_, K, &'static [u8]>,
    key: K::SelfType<'_>,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(table.get(key).map_err(io)?.map(|g| g.value().to_vec()))
}

impl Tables<'_> {
    /// The first id at or after `from` under `key` (a key never used has none).
    pub(super) fn seek(&mut self, key: &[u8], from: u128) -> Result<Option<u128>, StoreError> {
        let Some(k) = self.number(key)? else {
            return Ok(None);
        };
        let mut range = self.index.range((k, from)..=(k, u128::MAX)).map_err(io)?;
        match range.next() {
            None => Ok(None),
            Some(row) => Ok(Some(row.map_err(io)?.0.value().1)),
        }
    }

    fn remember_number(&mut self, key: &[u8], number: u32) {
        if self.key_numbers.len() >= PROJECTION_CACHE_ENTRIES {
            self.key_numbers.clear();
        }
        self.key_numbers.insert(key.to_vec(), number);
    }

    /// Writes the count-history rows moved since they were read, and forgets them (at
    /// the end, or when a rebuild's one long transaction has filled the caches).
    fn write_count_rows(&mut self) -> Result<(), StoreError> {
        for (k, latest) in std::mem::take(&mut self.count_rows) {
            if latest.moved {
                self.count_history
                    .insert((k, latest.block), latest.moves.row())
                    .map_err(io)?;
            }
        }
        for ((k, state), latest) in std::mem::take(&mut self.state_count_rows) {
            if latest.moved {
                self.state_count_history
                    .insert((k, state, latest.block), latest.moves.row())
                    .map_err(io)?;
            }
        }
        Ok(())
    }

    /// The key's number, if it was ever used.
    fn number(&mut self, key: &[u8]) -> Result<Option<u32>, StoreError> {
        if let Some(n) = self.key_numbers.get(key) {
            return Ok(Some(*n));
        }
        let digest = key_digest(key);
        let found = match self.new_keys.get(&digest) {
            Some(n) => Some(*n),
            None => self.committed_keys.get(&digest),
        };
        if let Some(n) = found {
            self.remember_number(key, n);
        }
        Ok(found)
    }

    /// Writes what the transaction deferred; returns the keys it numbered (to publish
    /// with its commit).
    pub(super) fn finish(&mut self) -> Result<NewKeys, StoreError> {
        if let Some((at, position)) = self.time.take() {
            self.times.insert(at, position).map_err(io)?;
        }
        self.write_count_rows()?;
        for (pair, count) in std::mem::take(&mut self.state_counts) {
            match count {
                0 => self.state_counts_table.remove(pair).map(|_| ()),
                n => self.state_counts_table.insert(pair, n).map(|_| ()),
            }
            .map_err(io)?;
        }
        Ok(std::mem::take(&mut self.new_keys))
    }

    /// The key's number, given now if the key is new.
    fn numbered(&mut self, key: &[u8]) -> Result<u32, StoreError> {
        if let Some(n) = self.number(key)? {
            return Ok(n);
        }
        let n = self.next_key;
        self.next_key = n
            .checked_add(1)
            .ok_or_else(|| corrupt("keys", "more index keys than numbers"))?;
        let digest = key_digest(key);
        self.keys.insert(n, digest).map_err(io)?;
        self.new_keys.insert(digest, n);
        self.remember_number(key, n);
        Ok(n)
    }
}

impl ProjectionTables for Tables<'_> {
    fn instance_bytes(&mut self, id: Uuid) -> Result<Option<StoredView>, StoreError> {
        Ok(current_view(&self.current, &self.versions, id.as_u128())?
            .map(|c| (c.view, Some(c.term))))
    }

    /// The current view is the last per-version view, recorded just before (and pointed
    /// to by [`CURRENT`]): storing it twice cost a B-tree insert of its bytes per event.
    fn put_instance(&mut self, _id: Uuid, _bytes: &[u8]) -> Result<(), StoreError> {
        Ok(())
    }

    fn resource_bytes(&mut self, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        view(&self.resources, id.as_u128())
    }

    fn put_resource(&mut self, id: Uuid, bytes: &[u8]) -> Result<(), StoreError> {
        self.resources.insert(id.as_u128(), bytes).map_err(io)?;
        Ok(())
    }

    fn user_bytes(&mut self, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        view(&self.users, id.as_u128())
    }

    fn put_user(&mut self, id: Uuid, bytes: &[u8]) -> Result<(), StoreError> {
        self.users.insert(id.as_u128(), bytes).map_err(io)?;
        Ok(())
    }

    fn put_short_id(&mut self, short_id: &str, id: Uuid) -> Result<(), StoreError> {
        let ordinal = short_id::ordinal(short_id)
            .ok_or_else(|| corrupt("short ids", format!("{short_id:?} of {id} is malformed")))?;
        self.short_ids.insert(ordinal, id.as_u128()).map_err(io)?;
        Ok(())
    }

    fn index_add(&mut self, key: &[u8], id: Uuid) -> Result<(), StoreError> {
        let k = self.numbered(key)?;
        self.index.insert((k, id.as_u128()), ()).map_err(io)?;
        Ok(())
    }

    fn index_remove(&mut self, key: &[u8], id: Uuid) -> Result<(), StoreError> {
        let k = self.numbered(key)?;
        self.index.remove((k, id.as_u128())).map_err(io)?;
        Ok(())
    }

    /// Instance keys keep their count in the count history only (the current count is
    /// its last row): one insert per move instead of two. Other keys have no history and
    /// keep the counts table.
    fn shift_count(
        &mut self,
        key: &[u8],
        up: bool,
        history: Option<u64>,
    ) -> Result<(), StoreError> {
        let k = self.numbered(key)?;
        match history {
            Some(position) => {
                let latest = match self.count_rows.remove(&k) {
                    Some(latest) => latest,
                    None => Latest::read(count_row(&self.count_history, k, u64::MAX)?),
                };
                let (done, latest) = latest.shifted(position, up)?;
                if let Some((block, row)) = done {
                    self.count_history.insert((k, block), row).map_err(io)?;
                }
                if self.count_rows.len() >= PROJECTION_CACHE_ENTRIES {
                    self.write_count_rows()?;
                }
                self.count_rows.insert(k, latest);
            }
            None => {
                let now = self.counts.get(k).map_err(io)?.map(|g| g.value());
                match shifted(now.unwrap_or(0), up) {
                    0 => self.counts.remove(k).map(|_| ()).map_err(io)?,
                    count => self.counts.insert(k, count).map(|_| ()).map_err(io)?,
                }
            }
        }
        Ok(())
    }

    fn shift_state_count(
        &mut self,
        key: &[u8],
        state: State,
        up: bool,
        history: Option<u64>,
    ) -> Result<(), StoreError> {
        let pair = (self.numbered(key)?, state_code(state));
        let Some(position) = history else {
            let now = match self.state_counts.get(&pair) {
                Some(n) => *n,
                None => self
                    .state_counts_table
                    .get(pair)
                    .map_err(io)?
                    .map_or(0, |g| g.value()),
            };
            self.state_counts.insert(pair, shifted(now, up));
            return Ok(());
        };
        let latest = match self.state_count_rows.remove(&pair) {
            Some(latest) => latest,
            None => Latest::read(state_count_row(&self.state_count_history, pair, u64::MAX)?),
        };
        let (done, latest) = latest.shifted(position, up)?;
        if let Some((block, row)) = done {
            self.state_count_history
                .insert((pair.0, pair.1, block), row)
                .map_err(io)?;
        }
        if self.state_count_rows.len() >= PROJECTION_CACHE_ENTRIES {
            self.write_count_rows()?;
        }
        self.state_count_rows.insert(pair, latest);
        Ok(())
    }

    fn open_interval(&mut self, key: &[u8], id: Uuid, position: u64) -> Result<(), StoreError> {
        let k = self.numbered(key)?;
        self.history
            .insert((k, id.as_u128(), position), u64::MAX)
            .map_err(io)?;
        Ok(())
    }

    fn close_interval(&mut self, key: &[u8], id: Uuid, position: u64) -> Result<(), StoreError> {
        let k = self.numbered(key)?;
        let id = id.as_u128();
        let open = {
            let mut range = self
                .history
                .range((k, id, 0)..=(k, id, u64::MAX))
                .map_err(io)?;
            match range.next_back() {
                Some(row) => {
                    let (entry, to) = row.map_err(io)?;
                    (to.value() == u64::MAX).then(|| entry.value())
                }
                None => None,
            }
        };
        if let Some(entry) = open {
            self.history.insert(entry, position).map_err(io)?;
        }
        Ok(())
    }

    fn record_time(&mut self, nanos: i64, position: u64) -> Result<(), StoreError> {
        if let Some((at, last)) = self.time.replace((nanos, position))
            && at != nanos
        {
            self.times.insert(at, last).map_err(io)?;
        }
        Ok(())
    }

    fn record_creation(&mut self, position: u64, id: Uuid) -> Result<(), StoreError> {
        self.creations.insert(position, id.as_u128()).map_err(io)?;
        Ok(())
    }

    /// One row: the state hash, then the view (the two share every position).
    fn record_version(
        &mut self,
        id: Uuid,
        position: u64,
        state_hash: &[u8; 32],
        view: &[u8],
        term: &[u8; 32],
    ) -> Result<(), StoreError> {
        self.row.clear();
        self.row.extend_from_slice(state_hash);
        self.row.extend_from_slice(view);
        self.versions
            .insert(position, self.row.as_slice())
            .map_err(io)?;
        self.current
            .insert(id.as_u128(), (position, *term))
            .map_err(io)?;
        Ok(())
    }
}

pub(super) struct RedbWrite<'t> {
    pub(super) events: Table<'t, u64, &'static [u8]>,
    pub(super) streams: Table<'t, (u128, u64), u64>,
    pub(super) idempotency: Table<'t, &'static str, &'static [u8]>,
    pub(super) projection: Tables<'t>,
    pub(super) projector: Projector,
    pub(super) head: Head,
    /// Whether anything was written; a batch of refusals and replays skips the commit.
    pub(super) dirty: bool,
    /// What the journal is to hold of this transaction (not for a replay of it).
    pub(super) journal: Option<Record>,
}

fn last_version<T: ReadableTable<(u128, u64), u64>>(
    streams: &T,
    id: Uuid,
) -> Result<u64, StoreError> {
    let id = id.as_u128();
    let last = streams
        .range((id, 0)..=(id, u64::MAX))
        .map_err(io)?
        .next_back();
    match last {
        Some(row) => Ok(row.map_err(io)?.0.value().1),
        None => Ok(0),
    }
}

impl RedbWrite<'_> {
    fn decoded<T: serde::de::DeserializeOwned>(
        raw: Option<Vec<u8>>,
        what: impl FnOnce() -> String,
    ) -> Result<Option<T>, StoreError> {
        raw.map(|b| decode_json(&what(), &b)).transpose()
    }
}

impl WriteTxn for RedbWrite<'_> {
    fn instance(&mut self, id: Uuid) -> Result<Option<Instance>, StoreError> {
        self.projection
            .instance_bytes(id)?
            .map(|(raw, _)| compact::decode(&format!("instance {id}"), &raw))
            .transpose()
    }

    fn resource(&mut self, id: Uuid) -> Result<Option<Resource>, StoreError> {
        let raw = self.projection.resource_bytes(id)?;
        Self::decoded(raw, || format!("resource {id}"))
    }

    fn user(&mut self, id: Uuid) -> Result<Option<User>, StoreError> {
        let raw = self.projection.user_bytes(id)?;
        Self::decoded(raw, || format!("user {id}"))
    }

    fn first_with(&mut self, key: &[u8]) -> Result<Option<Uuid>, StoreError> {
        Ok(self.projection.seek(key, 0)?.map(Uuid::from_u128))
    }

    fn short_id_taken(&mut self, short_id: &str) -> Result<bool, StoreError> {
        let Some(ordinal) = short_id::ordinal(short_id) else {
            return Ok(false);
        };
        Ok(self
            .projection
            .short_ids
            .get(ordinal)
            .map_err(io)?
            .is_some())
    }

    fn idempotency(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .idempotency
            .get(key)
            .map_err(io)?
            .map(|g| g.value().to_vec()))
    }

    fn put_idempotency(&mut self, key: &str, record: &[u8]) -> Result<(), StoreError> {
        self.idempotency.insert(key, record).map_err(io)?;
        if let Some(journal) = &mut self.journal {
            journal.idempotency(key, record)?;
        }
        self.dirty = true;
        Ok(())
    }

    fn stream_version(&mut self, id: Uuid) -> Result<u64, StoreError> {
        last_version(&self.streams, id)
    }

    fn head_position(&mut self) -> Result<u64, StoreError> {
        Ok(self.head.position)
    }

    fn append(&mut self, event: NewEvent) -> Result<Envelope, StoreError> {
        let current = last_version(&self.streams, event.stream_id)?;
        let sealed = event.seal(current, &self.head)?;
        self.put(&sealed.env, &sealed.body, sealed.hash, &sealed.payload)?;
        Ok(sealed.env)
    }

    fn append_checked(&mut self, event: &Checked, body: &[u8]) -> Result<(), StoreError> {
        let current = last_version(&self.streams, event.env.stream_id)?;
        follows(&self.head, current, event)?;
        self.put(&event.env, body, event.hash, &event.payload)
    }
}

impl RedbWrite<'_> {
    /// Stores one sealed event: the record (hash + bytes), the stream index, the
    /// projections and the new head.
    fn put(
        &mut self,
        env: &Envelope,
        body: &[u8],
        hash: [u8; 32],
        payload: &Payload,
    ) -> Result<(), StoreError> {
        let mut stored = Vec::with_capacity(32 + body.len());
        stored.extend_from_slice(&hash);
        stored.extend_from_slice(body);
        self.events
            .insert(env.position, stored.as_slice())
            .map_err(io)?;
        self.streams
            .insert((env.stream_id.as_u128(), env.version), env.position)
            .map_err(io)?;
        if let Some(journal) = &mut self.journal {
            journal.event(env.position, &stored)?;
        }
        self.projector.apply(&mut self.projection, env, payload)?;
        self.head = Head {
            position: env.position,
            hash,
        };
        self.dirty = true;
        Ok(())
    }
}
