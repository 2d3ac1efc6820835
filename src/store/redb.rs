//! The embedded default backend: one redb file in the data directory holding the log,
//! the stream index, the head of the hash chain, idempotency records and the projections.
//! Every batch is one write transaction with one durable commit.

use std::path::{Path, PathBuf};

use ::redb::{
    Builder, Database, ReadTransaction, ReadableDatabase, ReadableTable, Table, TableDefinition,
    TableHandle, WriteTransaction,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::envelope::{self, Envelope, NewEvent};
use super::projection::{ProjectionTables, Projector, StateHash, decode_json, intersect, paged};
use super::{EventStore, Head, Snapshot, StoreError, WriteTxn};
use crate::domain::catalog::Resource;
use crate::domain::identity::User;
use crate::domain::instance::Instance;
use crate::projection::{IndexKey, Page};

/// position -> 32-byte hash followed by the envelope's JSON bytes.
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// (stream id, version) -> position.
const STREAMS: TableDefinition<(u128, u64), u64> = TableDefinition::new("streams");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const IDEMPOTENCY: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");
/// Projections: rebuilt from the log by `verify`, which compares them byte for byte.
const INSTANCES: TableDefinition<u128, &[u8]> = TableDefinition::new("instances");
const RESOURCES: TableDefinition<u128, &[u8]> = TableDefinition::new("resources");
const USERS: TableDefinition<u128, &[u8]> = TableDefinition::new("users");
const SHORT_IDS: TableDefinition<&str, u128> = TableDefinition::new("short_ids");
/// (u16 length, index key, id) -> (): one sorted run of ids per key.
const INDEX: TableDefinition<&[u8], ()> = TableDefinition::new("index");
const INDEX_COUNTS: TableDefinition<&[u8], u64> = TableDefinition::new("index_counts");
/// History for as-of reads, kept for instance index keys: (u16 length, key, id, from
/// position) -> to position (`u64::MAX` while open). The id was under the key at every
/// position P with from <= P < to.
const HISTORY: TableDefinition<&[u8], u64> = TableDefinition::new("history");
/// (u16 length, key, position) -> how many instances carried the key after that event.
const COUNT_HISTORY: TableDefinition<&[u8], u64> = TableDefinition::new("count_history");
/// Event time (ns since the epoch) -> the last position committed at that time.
const TIMES: TableDefinition<i64, u64> = TableDefinition::new("times");
/// Position -> the instance created there: ids grow with creation, so the last creation
/// at or before P bounds every as-of scan at P.
const CREATIONS: TableDefinition<u64, u128> = TableDefinition::new("creations");
/// Position -> the fleet's state hash after that event (written when an instance changes).
const STATE_HASHES: TableDefinition<u64, &[u8]> = TableDefinition::new("state_hashes");
/// (instance id, position) -> the instance's view after that event: an as-of view is one
/// seek instead of a fold over events scattered across the log.
const VERSIONS: TableDefinition<(u128, u64), &[u8]> = TableDefinition::new("versions");

const HEAD_KEY: &str = "head";
const FILE_NAME: &str = "ledger.redb";

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

fn corrupt(at: impl Into<String>, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        at: at.into(),
        detail: detail.to_string(),
    }
}

pub struct RedbStore {
    db: Database,
    path: PathBuf,
}

/// redb's page cache when none is configured (its own default).
pub const DEFAULT_CACHE_MB: u64 = 1024;

impl RedbStore {
    /// Opens (creating if needed) the ledger in `dir` with the default page cache.
    pub fn open(dir: &Path) -> Result<RedbStore, StoreError> {
        Self::open_with_cache(dir, DEFAULT_CACHE_MB)
    }

    /// Opens the ledger with a page cache of `cache_mb` MiB. Reads that miss it go to the
    /// operating system, so as-of reads over a long log stay flat only while the pages
    /// they touch fit here.
    pub fn open_with_cache(dir: &Path, cache_mb: u64) -> Result<RedbStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(io)?;
        let path = dir.join(FILE_NAME);
        let cache = usize::try_from(cache_mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
        let db = Builder::new()
            .set_cache_size(cache)
            .create(&path)
            .map_err(|e| match e {
                ::redb::DatabaseError::DatabaseAlreadyOpen => {
                    StoreError::Locked(path.display().to_string())
                }
                other => io(other),
            })?;
        let store = RedbStore { db, path };
        store.create_tables()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn create_tables(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(io)?;
        {
            txn.open_table(EVENTS).map_err(io)?;
            txn.open_table(STREAMS).map_err(io)?;
            txn.open_table(META).map_err(io)?;
            txn.open_table(IDEMPOTENCY).map_err(io)?;
            open_projection(&txn)?;
        }
        txn.commit().map_err(io)
    }

    /// Writes every stored envelope, exactly as stored, one per line.
    pub fn export(&self, out: &mut dyn std::io::Write) -> Result<u64, StoreError> {
        let read = self.db.begin_read().map_err(io)?;
        let events = read.open_table(EVENTS).map_err(io)?;
        let mut n = 0;
        for row in events.iter().map_err(io)? {
            let (pos, stored) = row.map_err(io)?;
            let stored = stored.value();
            if stored.len() < 32 {
                return Err(corrupt(
                    format!("position {}", pos.value()),
                    "record shorter than its hash",
                ));
            }
            out.write_all(&stored[32..]).map_err(io)?;
            out.write_all(b"\n").map_err(io)?;
            n += 1;
        }
        out.flush().map_err(io)?;
        Ok(n)
    }

    /// A cheap start-up check: the last stored event matches its own hash and the recorded
    /// head. `verify` checks everything.
    pub fn check_tail(&self) -> Result<Head, StoreError> {
        let read = self.db.begin_read().map_err(io)?;
        let head = read_head(&read)?;
        let events = read.open_table(EVENTS).map_err(io)?;
        let last = events.last().map_err(io)?;
        match (head.position, last) {
            (0, None) => Ok(head),
            (_, Some((pos, stored))) if pos.value() == head.position => {
                let stored = stored.value();
                if stored.len() < 32
                    || stored[..32] != head.hash
                    || envelope::hash(&stored[32..]) != head.hash
                {
                    return Err(corrupt(
                        format!("position {}", head.position),
                        "the last event does not match the recorded head",
                    ));
                }
                Ok(head)
            }
            _ => Err(corrupt(
                "head",
                "the recorded head does not match the last event",
            )),
        }
    }

    /// Checks the whole hash chain and rebuilds every projection from the log in memory,
    /// comparing it byte for byte with the stored one.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        let read = self.db.begin_read().map_err(io)?;
        let events = read.open_table(EVENTS).map_err(io)?;
        let scratch = Builder::new()
            .create_with_backend(::redb::backends::InMemoryBackend::new())
            .map_err(io)?;
        let mut report = VerifyReport::default();
        let mut prev = [0u8; 32];
        let txn = scratch.begin_write().map_err(io)?;
        {
            let (mut tables, mut projector) = open_projection(&txn)?;
            for row in events.iter().map_err(io)? {
                let (pos, stored) = row.map_err(io)?;
                let pos = pos.value();
                let env = check_link(pos, stored.value(), &prev)?;
                prev = envelope::hash(&stored.value()[32..]);
                let payload = env
                    .payload()
                    .map_err(|e| corrupt(format!("position {pos}"), e))?;
                projector.apply(&mut tables, &env, &payload)?;
                report.events += 1;
            }
        }
        txn.commit().map_err(io)?;
        let head = read_head(&read)?;
        if head.position != report.events || head.hash != prev {
            return Err(corrupt(
                "head",
                "the recorded head does not match the last event",
            ));
        }
        let rebuilt = scratch.begin_read().map_err(io)?;
        report.instances = compare(&read, &rebuilt, INSTANCES)?;
        compare(&read, &rebuilt, RESOURCES)?;
        compare(&read, &rebuilt, USERS)?;
        compare(&read, &rebuilt, SHORT_IDS)?;
        report.index_entries = compare(&read, &rebuilt, INDEX)?;
        compare(&read, &rebuilt, INDEX_COUNTS)?;
        compare(&read, &rebuilt, HISTORY)?;
        compare(&read, &rebuilt, COUNT_HISTORY)?;
        compare(&read, &rebuilt, TIMES)?;
        compare(&read, &rebuilt, CREATIONS)?;
        compare(&read, &rebuilt, STATE_HASHES)?;
        compare(&read, &rebuilt, VERSIONS)?;
        report.head = head;
        Ok(report)
    }
}

pub use super::VerifyReport;

/// Checks one stored record (hash, then the envelope's bytes) against its predecessor.
fn check_link(pos: u64, stored: &[u8], prev: &[u8; 32]) -> Result<Envelope, StoreError> {
    if stored.len() < 32 {
        return Err(corrupt(
            format!("position {pos}"),
            "record shorter than its hash",
        ));
    }
    let (hash, body) = stored.split_at(32);
    super::projection::check_link(pos, hash, body, prev)
}

fn compare<K, V>(
    live: &ReadTransaction,
    rebuilt: &ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<u64, StoreError>
where
    K: ::redb::Key + 'static,
    V: ::redb::Value + 'static,
{
    let name = def.name().to_string();
    let a = live.open_table(def).map_err(io)?;
    let b = rebuilt.open_table(def).map_err(io)?;
    let mut ia = a.iter().map_err(io)?;
    let mut ib = b.iter().map_err(io)?;
    let mut n = 0;
    loop {
        match (ia.next(), ib.next()) {
            (None, None) => return Ok(n),
            (Some(x), Some(y)) => {
                let (ka, va) = x.map_err(io)?;
                let (kb, vb) = y.map_err(io)?;
                if K::as_bytes(&ka.value()).as_ref() != K::as_bytes(&kb.value()).as_ref()
                    || V::as_bytes(&va.value()).as_ref() != V::as_bytes(&vb.value()).as_ref()
                {
                    return Err(corrupt(
                        format!("projection {name}"),
                        format!("entry {n} differs from a rebuild from the log"),
                    ));
                }
                n += 1;
            }
            _ => {
                return Err(corrupt(
                    format!("projection {name}"),
                    "holds a different number of entries than a rebuild from the log",
                ));
            }
        }
    }
}

fn read_head(read: &ReadTransaction) -> Result<Head, StoreError> {
    let meta = read.open_table(META).map_err(io)?;
    let guard = meta.get(HEAD_KEY).map_err(io)?;
    decode_head(guard.as_ref().map(|g| g.value()))
}

fn decode_head(raw: Option<&[u8]>) -> Result<Head, StoreError> {
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

fn index_entry(key: &[u8], id: u128) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + key.len() + 16);
    out.extend_from_slice(&(key.len() as u16).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&id.to_be_bytes());
    out
}

fn history_entry(key: &[u8], id: u128, from: u64) -> Vec<u8> {
    let mut out = index_entry(key, id);
    out.extend_from_slice(&from.to_be_bytes());
    out
}

fn count_entry(key: &[u8], position: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + key.len() + 8);
    out.extend_from_slice(&(key.len() as u16).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&position.to_be_bytes());
    out
}

/// The projection tables of one write transaction, used by live appends and rebuilds.
struct Tables<'t> {
    instances: Table<'t, u128, &'static [u8]>,
    resources: Table<'t, u128, &'static [u8]>,
    users: Table<'t, u128, &'static [u8]>,
    short_ids: Table<'t, &'static str, u128>,
    index: Table<'t, &'static [u8], ()>,
    counts: Table<'t, &'static [u8], u64>,
    history: Table<'t, &'static [u8], u64>,
    count_history: Table<'t, &'static [u8], u64>,
    times: Table<'t, i64, u64>,
    creations: Table<'t, u64, u128>,
    state_hashes: Table<'t, u64, &'static [u8]>,
    versions: Table<'t, (u128, u64), &'static [u8]>,
}

fn open_projection(txn: &WriteTransaction) -> Result<(Tables<'_>, Projector), StoreError> {
    let state_hashes = txn.open_table(STATE_HASHES).map_err(io)?;
    let state_hash = match state_hashes.last().map_err(io)? {
        Some((_, v)) => StateHash::from_bytes(v.value()),
        None => StateHash::default(),
    };
    let tables = Tables {
        history: txn.open_table(HISTORY).map_err(io)?,
        count_history: txn.open_table(COUNT_HISTORY).map_err(io)?,
        times: txn.open_table(TIMES).map_err(io)?,
        creations: txn.open_table(CREATIONS).map_err(io)?,
        state_hashes,
        versions: txn.open_table(VERSIONS).map_err(io)?,
        instances: txn.open_table(INSTANCES).map_err(io)?,
        resources: txn.open_table(RESOURCES).map_err(io)?,
        users: txn.open_table(USERS).map_err(io)?,
        short_ids: txn.open_table(SHORT_IDS).map_err(io)?,
        index: txn.open_table(INDEX).map_err(io)?,
        counts: txn.open_table(INDEX_COUNTS).map_err(io)?,
    };
    Ok((tables, Projector::new(state_hash)))
}

impl Tables<'_> {
    fn instance(&self, id: Uuid) -> Result<Option<Instance>, StoreError> {
        let guard = self.instances.get(id.as_u128()).map_err(io)?;
        guard
            .map(|g| decode_json(&format!("instance {id}"), g.value()))
            .transpose()
    }

    fn resource(&self, id: Uuid) -> Result<Option<Resource>, StoreError> {
        let guard = self.resources.get(id.as_u128()).map_err(io)?;
        guard
            .map(|g| decode_json(&format!("resource {id}"), g.value()))
            .transpose()
    }

    fn user(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        let guard = self.users.get(id.as_u128()).map_err(io)?;
        guard
            .map(|g| decode_json(&format!("user {id}"), g.value()))
            .transpose()
    }
}

impl ProjectionTables for Tables<'_> {
    fn instance_bytes(&mut self, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .instances
            .get(id.as_u128())
            .map_err(io)?
            .map(|g| g.value().to_vec()))
    }

    fn put_instance(&mut self, id: Uuid, bytes: &[u8]) -> Result<(), StoreError> {
        self.instances.insert(id.as_u128(), bytes).map_err(io)?;
        Ok(())
    }

    fn resource_bytes(&mut self, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .resources
            .get(id.as_u128())
            .map_err(io)?
            .map(|g| g.value().to_vec()))
    }

    fn put_resource(&mut self, id: Uuid, bytes: &[u8]) -> Result<(), StoreError> {
        self.resources.insert(id.as_u128(), bytes).map_err(io)?;
        Ok(())
    }

    fn user_bytes(&mut self, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .users
            .get(id.as_u128())
            .map_err(io)?
            .map(|g| g.value().to_vec()))
    }

    fn put_user(&mut self, id: Uuid, bytes: &[u8]) -> Result<(), StoreError> {
        self.users.insert(id.as_u128(), bytes).map_err(io)?;
        Ok(())
    }

    fn put_short_id(&mut self, short_id: &str, id: Uuid) -> Result<(), StoreError> {
        self.short_ids.insert(short_id, id.as_u128()).map_err(io)?;
        Ok(())
    }

    fn index_add(&mut self, key: &[u8], id: Uuid) -> Result<(), StoreError> {
        self.index
            .insert(index_entry(key, id.as_u128()).as_slice(), ())
            .map_err(io)?;
        Ok(())
    }

    fn index_remove(&mut self, key: &[u8], id: Uuid) -> Result<(), StoreError> {
        self.index
            .remove(index_entry(key, id.as_u128()).as_slice())
            .map_err(io)?;
        Ok(())
    }

    fn count(&mut self, key: &[u8]) -> Result<u64, StoreError> {
        Ok(self
            .counts
            .get(key)
            .map_err(io)?
            .map(|g| g.value())
            .unwrap_or(0))
    }

    fn set_count(&mut self, key: &[u8], count: u64) -> Result<(), StoreError> {
        if count == 0 {
            self.counts.remove(key).map_err(io)?;
        } else {
            self.counts.insert(key, count).map_err(io)?;
        }
        Ok(())
    }

    fn open_interval(&mut self, key: &[u8], id: Uuid, position: u64) -> Result<(), StoreError> {
        self.history
            .insert(
                history_entry(key, id.as_u128(), position).as_slice(),
                u64::MAX,
            )
            .map_err(io)?;
        Ok(())
    }

    fn close_interval(&mut self, key: &[u8], id: Uuid, position: u64) -> Result<(), StoreError> {
        let open = {
            let lo = history_entry(key, id.as_u128(), 0);
            let hi = history_entry(key, id.as_u128(), u64::MAX);
            let mut range = self
                .history
                .range(lo.as_slice()..=hi.as_slice())
                .map_err(io)?;
            match range.next_back() {
                Some(row) => {
                    let (k, to) = row.map_err(io)?;
                    (to.value() == u64::MAX).then(|| k.value().to_vec())
                }
                None => None,
            }
        };
        if let Some(entry) = open {
            self.history
                .insert(entry.as_slice(), position)
                .map_err(io)?;
        }
        Ok(())
    }

    fn record_count(&mut self, key: &[u8], position: u64, count: u64) -> Result<(), StoreError> {
        self.count_history
            .insert(count_entry(key, position).as_slice(), count)
            .map_err(io)?;
        Ok(())
    }

    fn record_time(&mut self, nanos: i64, position: u64) -> Result<(), StoreError> {
        self.times.insert(nanos, position).map_err(io)?;
        Ok(())
    }

    fn record_creation(&mut self, position: u64, id: Uuid) -> Result<(), StoreError> {
        self.creations.insert(position, id.as_u128()).map_err(io)?;
        Ok(())
    }

    fn record_state_hash(&mut self, position: u64, hash: &[u8; 32]) -> Result<(), StoreError> {
        self.state_hashes
            .insert(position, hash.as_slice())
            .map_err(io)?;
        Ok(())
    }

    fn record_version(&mut self, id: Uuid, position: u64, bytes: &[u8]) -> Result<(), StoreError> {
        self.versions
            .insert((id.as_u128(), position), bytes)
            .map_err(io)?;
        Ok(())
    }
}

struct RedbWrite<'t> {
    events: Table<'t, u64, &'static [u8]>,
    streams: Table<'t, (u128, u64), u64>,
    idempotency: Table<'t, &'static str, &'static [u8]>,
    projection: Tables<'t>,
    projector: Projector,
    head: Head,
    /// Whether anything was written; a batch of refusals and replays skips the commit.
    dirty: bool,
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

impl WriteTxn for RedbWrite<'_> {
    fn instance(&mut self, id: Uuid) -> Result<Option<Instance>, StoreError> {
        self.projection.instance(id)
    }

    fn resource(&mut self, id: Uuid) -> Result<Option<Resource>, StoreError> {
        self.projection.resource(id)
    }

    fn user(&mut self, id: Uuid) -> Result<Option<User>, StoreError> {
        self.projection.user(id)
    }

    fn first_with(&mut self, key: &[u8]) -> Result<Option<Uuid>, StoreError> {
        Ok(RedbRead::seek(&self.projection.index, key, 0)?.map(Uuid::from_u128))
    }

    fn short_id_taken(&mut self, short_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .projection
            .short_ids
            .get(short_id)
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
        let env = &sealed.env;
        let mut stored = Vec::with_capacity(32 + sealed.body.len());
        stored.extend_from_slice(&sealed.hash);
        stored.extend_from_slice(&sealed.body);
        self.events
            .insert(env.position, stored.as_slice())
            .map_err(io)?;
        self.streams
            .insert((env.stream_id.as_u128(), env.version), env.position)
            .map_err(io)?;
        self.projector
            .apply(&mut self.projection, env, &sealed.payload)?;
        self.head = Head {
            position: env.position,
            hash: sealed.hash,
        };
        self.dirty = true;
        Ok(sealed.env)
    }
}

impl EventStore for RedbStore {
    fn write(
        &self,
        f: &mut dyn FnMut(&mut dyn WriteTxn) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(io)?;
        let dirty;
        {
            let mut meta = txn.open_table(META).map_err(io)?;
            let head = decode_head(meta.get(HEAD_KEY).map_err(io)?.as_ref().map(|g| g.value()))?;
            let (projection, projector) = open_projection(&txn)?;
            let mut w = RedbWrite {
                events: txn.open_table(EVENTS).map_err(io)?,
                streams: txn.open_table(STREAMS).map_err(io)?,
                idempotency: txn.open_table(IDEMPOTENCY).map_err(io)?,
                projection,
                projector,
                head,
                dirty: false,
            };
            f(&mut w)?;
            dirty = w.dirty;
            if w.head != head {
                let mut raw = Vec::with_capacity(40);
                raw.extend_from_slice(&w.head.position.to_be_bytes());
                raw.extend_from_slice(&w.head.hash);
                meta.insert(HEAD_KEY, raw.as_slice()).map_err(io)?;
            }
        }
        if dirty {
            txn.commit().map_err(io)
        } else {
            txn.abort().map_err(io)
        }
    }

    fn size_bytes(&self) -> Result<Option<u64>, StoreError> {
        Ok(Some(std::fs::metadata(&self.path).map_err(io)?.len()))
    }

    fn read(&self) -> Result<Box<dyn Snapshot + '_>, StoreError> {
        Ok(Box::new(RedbRead {
            txn: self.db.begin_read().map_err(io)?,
        }))
    }
}

struct RedbRead {
    txn: ReadTransaction,
}

impl RedbRead {
    fn event(
        &self,
        events: &impl ReadableTable<u64, &'static [u8]>,
        pos: u64,
    ) -> Result<Envelope, StoreError> {
        let guard = events
            .get(pos)
            .map_err(io)?
            .ok_or_else(|| corrupt(format!("position {pos}"), "missing event"))?;
        let raw = guard.value();
        if raw.len() < 32 {
            return Err(corrupt(
                format!("position {pos}"),
                "record shorter than its hash",
            ));
        }
        decode_json(&format!("position {pos}"), &raw[32..])
    }

    /// The first id at or after `from` carrying `key`.
    fn seek(
        index: &impl ReadableTable<&'static [u8], ()>,
        key: &[u8],
        from: u128,
    ) -> Result<Option<u128>, StoreError> {
        let start = index_entry(key, from);
        let end = index_entry(key, u128::MAX);
        let mut range = index.range(start.as_slice()..=end.as_slice()).map_err(io)?;
        match range.next() {
            None => Ok(None),
            Some(row) => {
                let (k, _) = row.map_err(io)?;
                let raw = k.value();
                let mut id = [0u8; 16];
                id.copy_from_slice(&raw[raw.len() - 16..]);
                Ok(Some(u128::from_be_bytes(id)))
            }
        }
    }

    /// The first id >= `from`, at most `last`, that carried `key` at `position`.
    fn seek_at(
        history: &impl ReadableTable<&'static [u8], u64>,
        key: &[u8],
        from: u128,
        last: u128,
        position: u64,
    ) -> Result<Option<u128>, StoreError> {
        if from > last {
            return Ok(None);
        }
        let lo = history_entry(key, from, 0);
        let hi = history_entry(key, last, u64::MAX);
        for row in history.range(lo.as_slice()..=hi.as_slice()).map_err(io)? {
            let (k, to) = row.map_err(io)?;
            let raw = k.value();
            let n = raw.len();
            let mut id = [0u8; 16];
            id.copy_from_slice(&raw[n - 24..n - 8]);
            let mut start = [0u8; 8];
            start.copy_from_slice(&raw[n - 8..]);
            if u64::from_be_bytes(start) <= position && position < to.value() {
                return Ok(Some(u128::from_be_bytes(id)));
            }
        }
        Ok(None)
    }
}

impl Snapshot for RedbRead {
    fn head(&self) -> Result<Head, StoreError> {
        read_head(&self.txn)
    }

    fn instance(&self, id: Uuid) -> Result<Option<Instance>, StoreError> {
        let t = self.txn.open_table(INSTANCES).map_err(io)?;
        let guard = t.get(id.as_u128()).map_err(io)?;
        guard
            .map(|g| decode_json(&format!("instance {id}"), g.value()))
            .transpose()
    }

    fn instance_by_short_id(&self, short_id: &str) -> Result<Option<Uuid>, StoreError> {
        let t = self.txn.open_table(SHORT_IDS).map_err(io)?;
        Ok(t.get(short_id)
            .map_err(io)?
            .map(|g| Uuid::from_u128(g.value())))
    }

    fn user(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        let t = self.txn.open_table(USERS).map_err(io)?;
        let guard = t.get(id.as_u128()).map_err(io)?;
        guard
            .map(|g| decode_json(&format!("user {id}"), g.value()))
            .transpose()
    }

    fn resource(&self, id: Uuid) -> Result<Option<Resource>, StoreError> {
        let t = self.txn.open_table(RESOURCES).map_err(io)?;
        let guard = t.get(id.as_u128()).map_err(io)?;
        guard
            .map(|g| decode_json(&format!("resource {id}"), g.value()))
            .transpose()
    }

    fn idempotency(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let t = self.txn.open_table(IDEMPOTENCY).map_err(io)?;
        Ok(t.get(key).map_err(io)?.map(|g| g.value().to_vec()))
    }

    fn page(
        &self,
        keys: &[IndexKey],
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let index = self.txn.open_table(INDEX).map_err(io)?;
        let start = match after {
            None => 0,
            Some(id) if id.as_u128() == u128::MAX => {
                return Ok(Page {
                    ids: vec![],
                    next: None,
                    total: self.total(&index, keys)?,
                });
            }
            Some(id) => id.as_u128() + 1,
        };
        let ids = intersect(keys, start, limit.saturating_add(1), |k, t| {
            Self::seek(&index, k, t)
        })?;
        Ok(paged(ids, limit, self.total(&index, keys)?))
    }

    fn stream(&self, id: Uuid) -> Result<Vec<Envelope>, StoreError> {
        let streams = self.txn.open_table(STREAMS).map_err(io)?;
        let events = self.txn.open_table(EVENTS).map_err(io)?;
        let raw = id.as_u128();
        let mut out = Vec::new();
        for row in streams.range((raw, 0)..=(raw, u64::MAX)).map_err(io)? {
            let (_, pos) = row.map_err(io)?;
            out.push(self.event(&events, pos.value())?);
        }
        Ok(out)
    }

    fn position_at(&self, at: DateTime<Utc>) -> Result<u64, StoreError> {
        let times = self.txn.open_table(TIMES).map_err(io)?;
        let nanos = super::projection::time_key(at);
        let last = times.range(..=nanos).map_err(io)?.next_back();
        match last {
            Some(row) => Ok(row.map_err(io)?.1.value()),
            None => Ok(0),
        }
    }

    fn instance_at(&self, id: Uuid, position: u64) -> Result<Option<Instance>, StoreError> {
        let versions = self.txn.open_table(VERSIONS).map_err(io)?;
        let raw = id.as_u128();
        let last = versions
            .range((raw, 0)..=(raw, position))
            .map_err(io)?
            .next_back();
        match last {
            Some(row) => {
                let (k, v) = row.map_err(io)?;
                let at = k.value().1;
                decode_json(&format!("instance {id} at position {at}"), v.value()).map(Some)
            }
            None => Ok(None),
        }
    }

    fn page_at(
        &self,
        keys: &[IndexKey],
        position: u64,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let creations = self.txn.open_table(CREATIONS).map_err(io)?;
        let last = match creations.range(..=position).map_err(io)?.next_back() {
            Some(row) => row.map_err(io)?.1.value(),
            None => {
                return Ok(Page {
                    ids: vec![],
                    next: None,
                    total: 0,
                });
            }
        };
        let history = self.txn.open_table(HISTORY).map_err(io)?;
        let start = match after {
            None => 0,
            Some(id) if id.as_u128() == u128::MAX => u128::MAX,
            Some(id) => id.as_u128() + 1,
        };
        let seek = |k: &[u8], t: u128| Self::seek_at(&history, k, t, last, position);
        let ids = intersect(keys, start, limit.saturating_add(1), seek)?;
        let total = match keys {
            [] => 0,
            [one] => {
                let counts = self.txn.open_table(COUNT_HISTORY).map_err(io)?;
                let lo = count_entry(one, 0);
                let hi = count_entry(one, position);
                match counts
                    .range(lo.as_slice()..=hi.as_slice())
                    .map_err(io)?
                    .next_back()
                {
                    Some(row) => row.map_err(io)?.1.value(),
                    None => 0,
                }
            }
            many => intersect(many, 0, usize::MAX, seek)?.len() as u64,
        };
        Ok(paged(ids, limit, total))
    }

    fn event_hash(&self, position: u64) -> Result<[u8; 32], StoreError> {
        let events = self.txn.open_table(EVENTS).map_err(io)?;
        let guard = events
            .get(position)
            .map_err(io)?
            .ok_or_else(|| corrupt(format!("position {position}"), "missing event"))?;
        let raw = guard.value();
        let mut hash = [0u8; 32];
        hash.copy_from_slice(raw.get(..32).ok_or_else(|| {
            corrupt(
                format!("position {position}"),
                "record shorter than its hash",
            )
        })?);
        Ok(hash)
    }

    fn state_hash_at(&self, position: u64) -> Result<[u8; 32], StoreError> {
        let hashes = self.txn.open_table(STATE_HASHES).map_err(io)?;
        let last = hashes.range(..=position).map_err(io)?.next_back();
        match last {
            Some(row) => Ok(StateHash::from_bytes(row.map_err(io)?.1.value()).to_bytes()),
            None => Ok(StateHash::default().to_bytes()),
        }
    }

    fn read_all(&self, after: u64, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        let events = self.txn.open_table(EVENTS).map_err(io)?;
        let mut out = Vec::new();
        for row in events
            .range(after.saturating_add(1)..)
            .map_err(io)?
            .take(limit)
        {
            let (pos, _) = row.map_err(io)?;
            out.push(self.event(&events, pos.value())?);
        }
        Ok(out)
    }
}

impl RedbRead {
    /// One key: the maintained count. Several: the size of the intersection, which costs
    /// in proportion to the smallest run rather than the fleet.
    fn total(
        &self,
        index: &impl ReadableTable<&'static [u8], ()>,
        keys: &[IndexKey],
    ) -> Result<u64, StoreError> {
        match keys {
            [] => Ok(0),
            [one] => {
                let counts = self.txn.open_table(INDEX_COUNTS).map_err(io)?;
                Ok(counts
                    .get(one.as_slice())
                    .map_err(io)?
                    .map(|g| g.value())
                    .unwrap_or(0))
            }
            many => {
                Ok(intersect(many, 0, usize::MAX, |k, t| Self::seek(index, k, t))?.len() as u64)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::{CatalogEvent, Spec};
    use crate::store::envelope::{Payload, Provenance};

    fn store_with_events(n: usize) -> (tempfile::TempDir, RedbStore) {
        let dir = tempfile::tempdir().expect("dir");
        let store = RedbStore::open(dir.path()).expect("open");
        store
            .write(&mut |txn| {
                for i in 0..n {
                    txn.append(NewEvent {
                        stream_id: Uuid::now_v7(),
                        version: 1,
                        kind: super::super::StreamKind::Image,
                        payload: Payload::Catalog(CatalogEvent::ImageCreated(Spec::Named {
                            name: format!("img-{i}"),
                        })),
                        at: chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("time"),
                        provenance: Provenance {
                            actor: "t".into(),
                            token_id: None,
                            request_id: "r".into(),
                            origin: "native".into(),
                            idempotency_key: None,
                        },
                    })?;
                }
                Ok(())
            })
            .expect("write");
        (dir, store)
    }

    fn tamper<K: ::redb::Key + 'static>(
        store: &RedbStore,
        def: TableDefinition<K, &'static [u8]>,
        key: K::SelfType<'_>,
        byte: usize,
    ) {
        let txn = store.db.begin_write().expect("txn");
        {
            let mut t = txn.open_table(def).expect("table");
            let mut raw = t.get(&key).expect("get").expect("present").value().to_vec();
            raw[byte] ^= 0x01;
            t.insert(&key, raw.as_slice()).expect("insert");
        }
        txn.commit().expect("commit");
    }

    #[test]
    fn an_intact_ledger_verifies() {
        let (_dir, store) = store_with_events(5);
        let report = store.verify().expect("verify");
        assert_eq!(report.events, 5);
        assert_eq!(report.head.position, 5);
        assert_eq!(store.check_tail().expect("tail"), report.head);
    }

    #[test]
    fn an_append_at_a_stale_version_is_refused() {
        let (_dir, store) = store_with_events(1);
        let stream = store.read().expect("read").read_all(0, 1).expect("events")[0].stream_id;
        let result = store.write(&mut |txn| {
            txn.append(NewEvent {
                stream_id: stream,
                version: 1,
                kind: super::super::StreamKind::Image,
                payload: Payload::Catalog(CatalogEvent::ImageCreated(Spec::Named {
                    name: "again".into(),
                })),
                at: chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("time"),
                provenance: Provenance {
                    actor: "t".into(),
                    token_id: None,
                    request_id: "r".into(),
                    origin: "native".into(),
                    idempotency_key: None,
                },
            })?;
            Ok(())
        });
        assert!(
            matches!(
                result,
                Err(StoreError::VersionConflict {
                    expected: 0,
                    actual: 1,
                    ..
                })
            ),
            "{result:?}"
        );
        assert_eq!(
            store.check_tail().expect("tail").position,
            1,
            "nothing was written"
        );
    }

    #[test]
    fn a_damaged_tail_is_refused_at_start_up() {
        let (_dir, store) = store_with_events(3);
        tamper(&store, EVENTS, 3, 50);
        assert!(matches!(
            store.check_tail(),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn flipping_any_byte_of_a_stored_event_is_detected_at_its_position() {
        let (_dir, store) = store_with_events(5);
        let len = {
            let read = store.db.begin_read().expect("read");
            let t = read.open_table(EVENTS).expect("table");
            t.get(3).expect("get").expect("present").value().len()
        };
        // Every byte: the stored hash and each byte of the envelope.
        for byte in 0..len {
            tamper(&store, EVENTS, 3, byte);
            match store.verify() {
                Err(StoreError::Corrupt { at, .. }) => assert_eq!(at, "position 3", "byte {byte}"),
                other => panic!("byte {byte}: tampering not detected: {other:?}"),
            }
            tamper(&store, EVENTS, 3, byte);
        }
        store.verify().expect("restored");
    }

    #[test]
    fn a_projection_that_differs_from_the_log_is_detected() {
        let (_dir, store) = store_with_events(3);
        let id = {
            let read = store.db.begin_read().expect("read");
            let t = read.open_table(RESOURCES).expect("table");
            let first = t.iter().expect("iter").next().expect("row").expect("row");
            first.0.value()
        };
        tamper(&store, RESOURCES, id, 10);
        match store.verify() {
            Err(StoreError::Corrupt { at, .. }) => assert_eq!(at, "projection resources"),
            other => panic!("projection drift not detected: {other:?}"),
        }
    }
}
