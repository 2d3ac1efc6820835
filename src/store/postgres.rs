//! The scale-out backend: the same store contract on PostgreSQL, shared by several
//! stateless `ledger` nodes.
//!
//! Every write transaction first locks the single `head` row, so transactions that append
//! run one at a time across all nodes and positions are assigned in commit order: a reader
//! never sees position N+1 before N has committed (no sequence gaps by design). Because the
//! lock is taken before anything is read, each batch decides against the latest state of
//! every node; the unique (stream_id, version) constraint is the backstop, and a batch that
//! hits it, a serialization failure or a deadlock is re-run from the start against fresh
//! state. Writes within a batch are buffered and flushed as a few set-based statements, so
//! a batch costs its reads plus a constant number of round trips, and one commit.
//!
//! Reads run in `REPEATABLE READ READ ONLY` transactions: one consistent snapshot each.
//! A dedicated connection LISTENs on `ledger_commits` (notified inside every append
//! transaction, delivered at commit) to wake live feeds on every node; the table is the
//! truth, the notification only a wake-up.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use fallible_iterator::FallibleIterator;
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, NoTls, Statement, Transaction};
use uuid::Uuid;

use super::envelope::{Envelope, NewEvent, Payload};
use super::projection::{ProjectionTables, Projector, StateHash, decode_json, intersect, paged};
use super::{EventStore, Head, Snapshot, StoreError, VerifyReport, WriteTxn};
use crate::domain::catalog::Resource;
use crate::domain::identity::User;
use crate::domain::instance::Instance;
use crate::projection::{IndexKey, Page};

/// The migrations, in order: (version, name, SQL). Embedded so a node needs no files.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "0001_ledger.sql",
        include_str!("../../schema/postgres/0001_ledger.sql"),
    ),
    (
        2,
        "0002_driver_claims.sql",
        include_str!("../../schema/postgres/0002_driver_claims.sql"),
    ),
];

/// Arbitrary constant for the advisory lock that serializes migrations across nodes.
const MIGRATION_LOCK: i64 = 0x6c65_6467_6572;
const NOTIFY_CHANNEL: &str = "ledger_commits";
/// How often a batch is re-run after a conflict before the requests get a 503.
const MAX_ATTEMPTS: usize = 8;
/// Most idle read connections kept per node.
const IDLE_READERS: usize = 16;

fn pg(e: postgres::Error) -> StoreError {
    StoreError::Io(format!("postgres: {e}"))
}

fn corrupt(at: impl Into<String>, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        at: at.into(),
        detail: detail.to_string(),
    }
}

fn pos(p: u64) -> i64 {
    i64::try_from(p).unwrap_or(i64::MAX)
}

fn unpos(p: i64) -> u64 {
    u64::try_from(p).unwrap_or(0)
}

/// One connection with its prepared statements.
struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl Conn {
    /// `sql` prepared once per connection (statements outlive transactions).
    fn prepare(
        client: &mut impl postgres::GenericClient,
        cache: &mut HashMap<&'static str, Statement>,
        sql: &'static str,
    ) -> Result<Statement, StoreError> {
        if let Some(s) = cache.get(sql) {
            return Ok(s.clone());
        }
        let s = client.prepare(sql).map_err(pg)?;
        cache.insert(sql, s.clone());
        Ok(s)
    }
}

pub struct PgStore {
    config: postgres::Config,
    /// This process among the nodes sharing the database (driver claims).
    node: Uuid,
    /// The writer's connection (one writer thread per node); reconnected after a failure.
    writer: Mutex<Option<Conn>>,
    readers: Mutex<Vec<Conn>>,
}

impl PgStore {
    /// Connects and applies pending migrations, retrying an unreachable database with a
    /// log line per attempt until `wait` has passed.
    pub fn connect(url: &str, wait: Duration) -> Result<PgStore, StoreError> {
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Io(format!("invalid PostgreSQL URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        let store = PgStore {
            config,
            node: Uuid::new_v4(),
            writer: Mutex::new(None),
            readers: Mutex::new(Vec::new()),
        };
        let deadline = Instant::now() + wait;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match store.open_conn().and_then(|mut c| migrate(&mut c.client)) {
                Ok(()) => return Ok(store),
                Err(e) if Instant::now() < deadline => {
                    tracing::warn!(attempt, error = %e, "PostgreSQL is not reachable yet; retrying");
                    std::thread::sleep(Duration::from_millis(500).min(
                        deadline.saturating_duration_since(Instant::now())
                            + Duration::from_millis(1),
                    ));
                }
                Err(e) => {
                    return Err(StoreError::Io(format!(
                        "PostgreSQL was not reachable within {} s ({attempt} attempts): {e}",
                        wait.as_secs()
                    )));
                }
            }
        }
    }

    fn open_conn(&self) -> Result<Conn, StoreError> {
        let client = self.config.connect(NoTls).map_err(pg)?;
        Ok(Conn {
            client,
            statements: HashMap::new(),
        })
    }

    fn reader(&self) -> Result<Conn, StoreError> {
        let idle = self.readers.lock().ok().and_then(|mut r| r.pop());
        match idle {
            Some(c) if !c.client.is_closed() => Ok(c),
            _ => self.open_conn(),
        }
    }

    fn give_back(&self, conn: Conn) {
        if conn.client.is_closed() {
            return;
        }
        if let Ok(mut r) = self.readers.lock()
            && r.len() < IDLE_READERS
        {
            r.push(conn);
        }
    }

    /// One attempt at a batch: lock the head, run `f` against buffered tables, flush and
    /// commit. Returns the raw PostgreSQL error for flush failures so the caller can tell
    /// conflicts (re-run) from outages.
    fn attempt(
        conn: &mut Conn,
        f: &mut dyn FnMut(&mut dyn WriteTxn) -> Result<(), StoreError>,
    ) -> Result<(), Attempt> {
        let Conn { client, statements } = conn;
        let mut tx = client.transaction().map_err(Attempt::Pg)?;
        let row = tx
            .query_one("SELECT position, hash FROM head FOR UPDATE", &[])
            .map_err(Attempt::Pg)?;
        let head = Head {
            position: unpos(row.get(0)),
            hash: hash32(row.get::<_, &[u8]>(1)).map_err(Attempt::Store)?,
        };
        let state_hash = tx
            .query_opt(
                "SELECT hash FROM state_hashes ORDER BY position DESC LIMIT 1",
                &[],
            )
            .map_err(Attempt::Pg)?
            .map(|r| StateHash::from_bytes(r.get::<_, &[u8]>(0)))
            .unwrap_or_default();
        let mut w = PgWrite {
            tx: &mut tx,
            statements,
            buf: Buffer::default(),
            projector: Projector::new(state_hash),
            head,
            dirty: false,
        };
        f(&mut w).map_err(Attempt::Store)?;
        if !w.dirty {
            drop(w);
            tx.rollback().map_err(Attempt::Pg)?;
            return Ok(());
        }
        let new_head = w.head;
        let buf = std::mem::take(&mut w.buf);
        drop(w);
        buf.flush(&mut tx).map_err(Attempt::Pg)?;
        if new_head != head {
            tx.execute(
                "UPDATE head SET position = $1, hash = $2",
                &[&pos(new_head.position), &new_head.hash.as_slice()],
            )
            .map_err(Attempt::Pg)?;
            tx.execute(
                "SELECT pg_notify($1, $2)",
                &[&NOTIFY_CHANNEL, &new_head.position.to_string()],
            )
            .map_err(Attempt::Pg)?;
        }
        tx.commit().map_err(Attempt::Pg)
    }

    /// Calls `wake(position)` whenever any node commits, from a dedicated LISTEN
    /// connection that reconnects by itself. After a reconnect it wakes with the current
    /// head, since notifications sent meanwhile are lost. Stops once `wake` returns false
    /// (nobody listens any more).
    pub fn listen(&self, wake: Box<dyn Fn(u64) -> bool + Send>) -> Result<(), StoreError> {
        let config = self.config.clone();
        std::thread::Builder::new()
            .name("ledger-listen".into())
            .spawn(move || {
                loop {
                    match listen_once(&config, &*wake) {
                        Ok(()) => return,
                        Err(e) => tracing::warn!(error = %e, "the PostgreSQL commit listener lost its connection; reconnecting"),
                    }
                    std::thread::sleep(Duration::from_millis(500));
                    if !wake(0) {
                        return;
                    }
                }
            })
            .map(|_| ())
            .map_err(|e| StoreError::Io(format!("cannot start the commit listener: {e}")))
    }

    /// Checks the whole hash chain and rebuilds every projection from the log into a
    /// scratch schema, comparing each table with the live one. Runs in one transaction
    /// that holds the head row shared, so appends wait while it runs; the scratch schema
    /// is rolled back with it.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        let mut conn = self.open_conn()?;
        let mut tx = conn.client.transaction().map_err(pg)?;
        let live: String = tx
            .query_one("SELECT current_schema()", &[])
            .map_err(pg)?
            .get(0);
        let live = format!("\"{}\"", live.replace('"', "\"\""));
        let row = tx
            .query_one("SELECT position, hash FROM head FOR SHARE", &[])
            .map_err(pg)?;
        let head = Head {
            position: unpos(row.get(0)),
            hash: hash32(row.get::<_, &[u8]>(1))?,
        };
        let scratch = format!("ledger_verify_{}", Uuid::new_v4().simple());
        tx.batch_execute(&format!(
            "CREATE SCHEMA {scratch}; SET LOCAL search_path = {scratch}"
        ))
        .map_err(pg)?;
        for (_, _, sql) in MIGRATIONS {
            tx.batch_execute(sql).map_err(pg)?;
        }
        let read_events = format!(
            "SELECT position, hash, body FROM {live}.events WHERE position > $1 ORDER BY position LIMIT 1000"
        );
        let mut report = VerifyReport::default();
        let mut prev = [0u8; 32];
        let mut projector = Projector::new(StateHash::default());
        let mut statements = HashMap::new();
        loop {
            let rows = tx.query(&read_events, &[&pos(report.events)]).map_err(pg)?;
            if rows.is_empty() {
                break;
            }
            let mut w = PgWrite {
                tx: &mut tx,
                statements: &mut statements,
                buf: Buffer::default(),
                projector,
                head,
                dirty: false,
            };
            for row in &rows {
                let at = unpos(row.get(0));
                let hash: &[u8] = row.get(1);
                let env = super::projection::check_link(at, hash, row.get(2), &prev)?;
                if at != report.events + 1 {
                    return Err(corrupt(
                        format!("position {}", report.events + 1),
                        "missing event",
                    ));
                }
                prev = hash32(hash)?;
                let payload = env
                    .payload()
                    .map_err(|e| corrupt(format!("position {at}"), e))?;
                w.project(&env, &payload)?;
                report.events += 1;
            }
            projector = std::mem::replace(&mut w.projector, Projector::new(StateHash::default()));
            let buf = std::mem::take(&mut w.buf);
            drop(w);
            buf.flush(&mut tx).map_err(pg)?;
        }
        if head.position != report.events || head.hash != prev {
            return Err(corrupt(
                "head",
                "the recorded head does not match the last event",
            ));
        }
        for table in [
            "instances",
            "resources",
            "users",
            "short_ids",
            "index_entries",
            "index_counts",
            "history",
            "count_history",
            "times",
            "creations",
            "state_hashes",
            "versions",
        ] {
            let differing: i64 = tx
                .query_one(
                    &format!(
                        "SELECT count(*) FROM ((TABLE {live}.{table} EXCEPT ALL TABLE {scratch}.{table})
                         UNION ALL (TABLE {scratch}.{table} EXCEPT ALL TABLE {live}.{table})) d"
                    ),
                    &[],
                )
                .map_err(pg)?
                .get(0);
            if differing > 0 {
                return Err(corrupt(
                    format!("projection {table}"),
                    format!("{differing} rows differ from a rebuild from the log"),
                ));
            }
        }
        let count = |tx: &mut Transaction<'_>, table: &str| -> Result<u64, StoreError> {
            let n: i64 = tx
                .query_one(&format!("SELECT count(*) FROM {live}.{table}"), &[])
                .map_err(pg)?
                .get(0);
            Ok(unpos(n))
        };
        report.instances = count(&mut tx, "instances")?;
        report.index_entries = count(&mut tx, "index_entries")?;
        report.head = head;
        tx.rollback().map_err(pg)?;
        Ok(report)
    }

    /// Every stored event, exactly as stored, one per line.
    pub fn export(&self, out: &mut dyn std::io::Write) -> Result<u64, StoreError> {
        let mut conn = self.reader()?;
        let mut after = 0i64;
        let mut n = 0;
        loop {
            let rows = conn
                .client
                .query(
                    "SELECT position, body FROM events WHERE position > $1 ORDER BY position LIMIT 1000",
                    &[&after],
                )
                .map_err(pg)?;
            if rows.is_empty() {
                break;
            }
            for row in rows {
                after = row.get(0);
                out.write_all(row.get::<_, &[u8]>(1))
                    .map_err(|e| StoreError::Io(e.to_string()))?;
                out.write_all(b"\n")
                    .map_err(|e| StoreError::Io(e.to_string()))?;
                n += 1;
            }
        }
        out.flush().map_err(|e| StoreError::Io(e.to_string()))?;
        Ok(n)
    }
}

/// Listens until `wake` says stop (Ok) or the connection fails (Err: reconnect).
fn listen_once(
    config: &postgres::Config,
    wake: &dyn Fn(u64) -> bool,
) -> Result<(), postgres::Error> {
    let mut client = config.connect(NoTls)?;
    client.batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}"))?;
    let head: i64 = client.query_one("SELECT position FROM head", &[])?.get(0);
    if !wake(unpos(head)) {
        return Ok(());
    }
    loop {
        let mut notifications = client.notifications();
        // Wakes at least every second to notice that nobody listens any more.
        let mut it = notifications.timeout_iter(Duration::from_secs(1));
        while let Some(n) = it.next()? {
            if let Ok(p) = n.payload().parse::<u64>()
                && !wake(p)
            {
                return Ok(());
            }
        }
        if !wake(0) {
            return Ok(());
        }
    }
}

enum Attempt {
    Pg(postgres::Error),
    Store(StoreError),
}

fn retryable(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE
            || *c == SqlState::T_R_DEADLOCK_DETECTED
            || *c == SqlState::UNIQUE_VIOLATION
    )
}

fn hash32(raw: &[u8]) -> Result<[u8; 32], StoreError> {
    raw.try_into()
        .map_err(|_| corrupt("head", "hash is not 32 bytes"))
}

impl EventStore for PgStore {
    fn write(
        &self,
        f: &mut dyn FnMut(&mut dyn WriteTxn) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut slot = self
            .writer
            .lock()
            .map_err(|_| StoreError::Io("the writer connection lock is poisoned".into()))?;
        for attempt in 1..=MAX_ATTEMPTS {
            if slot.as_ref().is_none_or(|c| c.client.is_closed()) {
                *slot = Some(self.open_conn()?);
            }
            let Some(conn) = slot.as_mut() else {
                continue;
            };
            match Self::attempt(conn, f) {
                Ok(()) => return Ok(()),
                Err(Attempt::Store(e)) => return Err(e),
                Err(Attempt::Pg(e)) if retryable(&e) && attempt < MAX_ATTEMPTS => {
                    tracing::info!(attempt, error = %e, "write conflict; deciding the batch again against fresh state");
                    metrics::counter!("ledger_write_retries_total").increment(1);
                }
                Err(Attempt::Pg(e)) => {
                    // The connection may be broken; the next batch opens a new one.
                    if conn.client.is_closed() || e.code().is_none() {
                        *slot = None;
                    }
                    return Err(pg(e));
                }
            }
        }
        Err(StoreError::Io(
            "postgres: the batch kept conflicting with other nodes".into(),
        ))
    }

    fn read(&self) -> Result<Box<dyn Snapshot + '_>, StoreError> {
        let mut conn = self.reader()?;
        if let Err(e) = conn
            .client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        {
            // A pooled connection may have died since; one fresh attempt.
            conn = self.open_conn()?;
            conn.client
                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .map_err(|_| pg(e))?;
        }
        Ok(Box::new(PgRead {
            store: self,
            conn: std::cell::RefCell::new(Some(conn)),
        }))
    }

    fn watch_commits(&self, wake: Box<dyn Fn(u64) -> bool + Send>) -> Result<(), StoreError> {
        self.listen(wake)
    }

    fn size_bytes(&self) -> Result<Option<u64>, StoreError> {
        let mut conn = self.reader()?;
        let bytes: i64 = conn
            .client
            .query_one("SELECT pg_database_size(current_database())", &[])
            .map_err(pg)?
            .get(0);
        self.give_back(conn);
        Ok(Some(unpos(bytes)))
    }

    fn claim(&self, id: Uuid, version: u64, lease: Duration) -> Result<bool, StoreError> {
        let mut conn = self.reader()?;
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        // A claim is taken over only for a newer version, after it expired, or by its own
        // node (a retry).
        let row = conn
            .client
            .query_opt(
                "INSERT INTO driver_claims (instance_id, version, node, expires_at)
                 VALUES ($1, $2, $3, now() + $4::float8 * interval '1 millisecond')
                 ON CONFLICT (instance_id) DO UPDATE
                   SET version = EXCLUDED.version, node = EXCLUDED.node, expires_at = EXCLUDED.expires_at
                   WHERE driver_claims.version < EXCLUDED.version
                      OR driver_claims.expires_at < now()
                      OR driver_claims.node = EXCLUDED.node
                 RETURNING node",
                &[&id, &pos(version), &self.node, &(lease_ms as f64)],
            )
            .map_err(pg)?;
        self.give_back(conn);
        Ok(row.is_some())
    }
}

/// What a batch wrote, kept in memory until the flush. Reads consult it first, so the
/// batch sees its own writes.
#[derive(Default)]
struct Buffer {
    events: EventRows,
    stream_versions: HashMap<Uuid, u64>,
    idempotency: HashMap<String, Vec<u8>>,
    instances: HashMap<Uuid, Vec<u8>>,
    resources: HashMap<Uuid, Vec<u8>>,
    users: HashMap<Uuid, Vec<u8>>,
    short_ids: HashMap<String, Uuid>,
    /// (key, id) -> present after the batch.
    index: HashMap<(Vec<u8>, Uuid), bool>,
    /// Counts read or written in this batch: the current value.
    counts: HashMap<Vec<u8>, u64>,
    counts_dirty: HashSet<Vec<u8>>,
    /// Intervals opened in this batch: (key, id, from) -> to.
    opened: BTreeMap<(Vec<u8>, Uuid, u64), Option<u64>>,
    /// Intervals open before this batch, closed in it: (key, id) -> to.
    closed: HashMap<(Vec<u8>, Uuid), u64>,
    count_history: BTreeMap<(Vec<u8>, u64), u64>,
    times: BTreeMap<i64, u64>,
    creations: Vec<(u64, Uuid)>,
    state_hashes: Vec<(u64, [u8; 32])>,
    versions: Vec<(Uuid, u64, Vec<u8>)>,
}

impl Buffer {
    fn flush(self, tx: &mut Transaction<'_>) -> Result<(), postgres::Error> {
        fn run(
            tx: &mut Transaction<'_>,
            sql: &str,
            params: &[&(dyn ToSql + Sync)],
        ) -> Result<(), postgres::Error> {
            tx.execute(sql, params).map(|_| ())
        }
        if !self.events.positions.is_empty() {
            let e = &self.events;
            let (p, s, v, h, b) = (&e.positions, &e.streams, &e.versions, &e.hashes, &e.bodies);
            run(
                tx,
                "INSERT INTO events (position, stream_id, version, hash, body)
                 SELECT * FROM unnest($1::int8[], $2::uuid[], $3::int8[], $4::bytea[], $5::bytea[])",
                &[p, s, v, h, b],
            )?;
        }
        if !self.idempotency.is_empty() {
            let (k, r): (Vec<String>, Vec<Vec<u8>>) = self.idempotency.into_iter().unzip();
            run(
                tx,
                "INSERT INTO idempotency (key, record) SELECT * FROM unnest($1::text[], $2::bytea[])
                 ON CONFLICT (key) DO UPDATE SET record = EXCLUDED.record",
                &[&k, &r],
            )?;
        }
        for (table, views) in [
            ("instances", self.instances),
            ("resources", self.resources),
            ("users", self.users),
        ] {
            if views.is_empty() {
                continue;
            }
            let (ids, v): (Vec<Uuid>, Vec<Vec<u8>>) = views.into_iter().unzip();
            run(
                tx,
                &format!(
                    "INSERT INTO {table} (id, view) SELECT * FROM unnest($1::uuid[], $2::bytea[])
                     ON CONFLICT (id) DO UPDATE SET view = EXCLUDED.view"
                ),
                &[&ids, &v],
            )?;
        }
        if !self.short_ids.is_empty() {
            let (s, ids): (Vec<String>, Vec<Uuid>) = self.short_ids.into_iter().unzip();
            run(
                tx,
                "INSERT INTO short_ids (short_id, id) SELECT * FROM unnest($1::text[], $2::uuid[])",
                &[&s, &ids],
            )?;
        }
        let (mut add_k, mut add_i, mut del_k, mut del_i) = (vec![], vec![], vec![], vec![]);
        for ((k, id), present) in self.index {
            if present {
                add_k.push(k);
                add_i.push(id);
            } else {
                del_k.push(k);
                del_i.push(id);
            }
        }
        if !del_k.is_empty() {
            run(
                tx,
                "DELETE FROM index_entries e USING unnest($1::bytea[], $2::uuid[]) AS d(key, id)
                 WHERE e.key = d.key AND e.id = d.id",
                &[&del_k, &del_i],
            )?;
        }
        if !add_k.is_empty() {
            run(
                tx,
                "INSERT INTO index_entries (key, id) SELECT * FROM unnest($1::bytea[], $2::uuid[])
                 ON CONFLICT DO NOTHING",
                &[&add_k, &add_i],
            )?;
        }
        let (mut set_k, mut set_n, mut zero_k) = (vec![], vec![], vec![]);
        for k in self.counts_dirty {
            match self.counts.get(&k).copied().unwrap_or(0) {
                0 => zero_k.push(k),
                n => {
                    set_k.push(k);
                    set_n.push(pos(n));
                }
            }
        }
        if !zero_k.is_empty() {
            run(
                tx,
                "DELETE FROM index_counts WHERE key = ANY($1::bytea[])",
                &[&zero_k],
            )?;
        }
        if !set_k.is_empty() {
            run(
                tx,
                "INSERT INTO index_counts (key, count) SELECT * FROM unnest($1::bytea[], $2::int8[])
                 ON CONFLICT (key) DO UPDATE SET count = EXCLUDED.count",
                &[&set_k, &set_n],
            )?;
        }
        // Close intervals that were open before the batch first, so the update cannot
        // touch the ones this batch opens.
        if !self.closed.is_empty() {
            let mut k = vec![];
            let mut ids = vec![];
            let mut to = vec![];
            for ((key, id), p) in self.closed {
                k.push(key);
                ids.push(id);
                to.push(pos(p));
            }
            run(
                tx,
                "UPDATE history h SET to_position = c.to_position
                 FROM unnest($1::bytea[], $2::uuid[], $3::int8[]) AS c(key, id, to_position)
                 WHERE h.key = c.key AND h.id = c.id AND h.to_position IS NULL",
                &[&k, &ids, &to],
            )?;
        }
        if !self.opened.is_empty() {
            let mut k = vec![];
            let mut ids = vec![];
            let mut from = vec![];
            let mut to: Vec<Option<i64>> = vec![];
            for ((key, id, f), t) in self.opened {
                k.push(key);
                ids.push(id);
                from.push(pos(f));
                to.push(t.map(pos));
            }
            run(
                tx,
                "INSERT INTO history (key, id, from_position, to_position)
                 SELECT * FROM unnest($1::bytea[], $2::uuid[], $3::int8[], $4::int8[])",
                &[&k, &ids, &from, &to],
            )?;
        }
        if !self.count_history.is_empty() {
            let mut k = vec![];
            let mut p = vec![];
            let mut n = vec![];
            for ((key, at), count) in self.count_history {
                k.push(key);
                p.push(pos(at));
                n.push(pos(count));
            }
            run(
                tx,
                "INSERT INTO count_history (key, position, count)
                 SELECT * FROM unnest($1::bytea[], $2::int8[], $3::int8[])
                 ON CONFLICT (key, position) DO UPDATE SET count = EXCLUDED.count",
                &[&k, &p, &n],
            )?;
        }
        if !self.times.is_empty() {
            let (t, p): (Vec<i64>, Vec<i64>) =
                self.times.into_iter().map(|(t, p)| (t, pos(p))).unzip();
            run(
                tx,
                "INSERT INTO times (at_ns, position) SELECT * FROM unnest($1::int8[], $2::int8[])
                 ON CONFLICT (at_ns) DO UPDATE SET position = EXCLUDED.position",
                &[&t, &p],
            )?;
        }
        if !self.creations.is_empty() {
            let (p, ids): (Vec<i64>, Vec<Uuid>) =
                self.creations.into_iter().map(|(p, i)| (pos(p), i)).unzip();
            run(
                tx,
                "INSERT INTO creations (position, id) SELECT * FROM unnest($1::int8[], $2::uuid[])",
                &[&p, &ids],
            )?;
        }
        if !self.state_hashes.is_empty() {
            let (p, h): (Vec<i64>, Vec<Vec<u8>>) = self
                .state_hashes
                .into_iter()
                .map(|(p, h)| (pos(p), h.to_vec()))
                .unzip();
            run(
                tx,
                "INSERT INTO state_hashes (position, hash) SELECT * FROM unnest($1::int8[], $2::bytea[])",
                &[&p, &h],
            )?;
        }
        if !self.versions.is_empty() {
            let mut ids = vec![];
            let mut p = vec![];
            let mut v = vec![];
            for (id, at, view) in self.versions {
                ids.push(id);
                p.push(pos(at));
                v.push(view);
            }
            run(
                tx,
                "INSERT INTO versions (id, position, view) SELECT * FROM unnest($1::uuid[], $2::int8[], $3::bytea[])",
                &[&ids, &p, &v],
            )?;
        }
        Ok(())
    }
}

/// Appended events, column by column for one `unnest` insert.
#[derive(Default)]
struct EventRows {
    positions: Vec<i64>,
    streams: Vec<Uuid>,
    versions: Vec<i64>,
    hashes: Vec<Vec<u8>>,
    bodies: Vec<Vec<u8>>,
}

struct PgWrite<'a, 'c> {
    tx: &'a mut Transaction<'c>,
    statements: &'a mut HashMap<&'static str, Statement>,
    buf: Buffer,
    projector: Projector,
    head: Head,
    dirty: bool,
}

impl PgWrite<'_, '_> {
    /// Projects one event into this transaction's tables (buffered).
    fn project(&mut self, env: &Envelope, payload: &Payload) -> Result<(), StoreError> {
        let mut projector =
            std::mem::replace(&mut self.projector, Projector::new(StateHash::default()));
        let applied = projector.apply(self, env, payload);
        self.projector = projector;
        applied.map(|_| ())
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<postgres::Row>, StoreError> {
        let stmt = Conn::prepare(self.tx, self.statements, sql)?;
        self.tx.query_opt(&stmt, params).map_err(pg)
    }

    fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, StoreError> {
        let stmt = Conn::prepare(self.tx, self.statements, sql)?;
        self.tx.query(&stmt, params).map_err(pg)
    }

    fn view(&mut self, table: View, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        let buffered = match table {
            View::Instance => self.buf.instances.get(&id),
            View::Resource => self.buf.resources.get(&id),
            View::User => self.buf.users.get(&id),
        };
        if let Some(v) = buffered {
            return Ok(Some(v.clone()));
        }
        let sql = match table {
            View::Instance => "SELECT view FROM instances WHERE id = $1",
            View::Resource => "SELECT view FROM resources WHERE id = $1",
            View::User => "SELECT view FROM users WHERE id = $1",
        };
        Ok(self.query_opt(sql, &[&id])?.map(|r| r.get::<_, Vec<u8>>(0)))
    }
}

#[derive(Clone, Copy)]
enum View {
    Instance,
    Resource,
    User,
}

impl ProjectionTables for PgWrite<'_, '_> {
    fn instance_bytes(&mut self, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        self.view(View::Instance, id)
    }

    fn put_instance(&mut self, id: Uuid, bytes: &[u8]) -> Result<(), StoreError> {
        self.buf.instances.insert(id, bytes.to_vec());
        Ok(())
    }

    fn resource_bytes(&mut self, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        self.view(View::Resource, id)
    }

    fn put_resource(&mut self, id: Uuid, bytes: &[u8]) -> Result<(), StoreError> {
        self.buf.resources.insert(id, bytes.to_vec());
        Ok(())
    }

    fn user_bytes(&mut self, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        self.view(View::User, id)
    }

    fn put_user(&mut self, id: Uuid, bytes: &[u8]) -> Result<(), StoreError> {
        self.buf.users.insert(id, bytes.to_vec());
        Ok(())
    }

    fn put_short_id(&mut self, short_id: &str, id: Uuid) -> Result<(), StoreError> {
        self.buf.short_ids.insert(short_id.to_string(), id);
        Ok(())
    }

    fn index_add(&mut self, key: &[u8], id: Uuid) -> Result<(), StoreError> {
        self.buf.index.insert((key.to_vec(), id), true);
        Ok(())
    }

    fn index_remove(&mut self, key: &[u8], id: Uuid) -> Result<(), StoreError> {
        self.buf.index.insert((key.to_vec(), id), false);
        Ok(())
    }

    fn count(&mut self, key: &[u8]) -> Result<u64, StoreError> {
        if let Some(n) = self.buf.counts.get(key) {
            return Ok(*n);
        }
        let n = self
            .query_opt("SELECT count FROM index_counts WHERE key = $1", &[&key])?
            .map(|r| unpos(r.get(0)))
            .unwrap_or(0);
        self.buf.counts.insert(key.to_vec(), n);
        Ok(n)
    }

    fn set_count(&mut self, key: &[u8], count: u64) -> Result<(), StoreError> {
        self.buf.counts.insert(key.to_vec(), count);
        self.buf.counts_dirty.insert(key.to_vec());
        Ok(())
    }

    fn open_interval(&mut self, key: &[u8], id: Uuid, position: u64) -> Result<(), StoreError> {
        self.buf.opened.insert((key.to_vec(), id, position), None);
        Ok(())
    }

    fn close_interval(&mut self, key: &[u8], id: Uuid, position: u64) -> Result<(), StoreError> {
        // An interval this batch opened is closed in the buffer; otherwise the one open in
        // the table is closed at the flush.
        let lo = (key.to_vec(), id, 0);
        let hi = (key.to_vec(), id, u64::MAX);
        if let Some((_, to)) = self.buf.opened.range_mut(lo..=hi).next_back() {
            if to.is_none() {
                *to = Some(position);
            }
            return Ok(());
        }
        self.buf
            .closed
            .entry((key.to_vec(), id))
            .or_insert(position);
        Ok(())
    }

    fn record_count(&mut self, key: &[u8], position: u64, count: u64) -> Result<(), StoreError> {
        self.buf
            .count_history
            .insert((key.to_vec(), position), count);
        Ok(())
    }

    fn record_time(&mut self, nanos: i64, position: u64) -> Result<(), StoreError> {
        self.buf.times.insert(nanos, position);
        Ok(())
    }

    fn record_creation(&mut self, position: u64, id: Uuid) -> Result<(), StoreError> {
        self.buf.creations.push((position, id));
        Ok(())
    }

    fn record_state_hash(&mut self, position: u64, hash: &[u8; 32]) -> Result<(), StoreError> {
        self.buf.state_hashes.push((position, *hash));
        Ok(())
    }

    fn record_version(&mut self, id: Uuid, position: u64, bytes: &[u8]) -> Result<(), StoreError> {
        self.buf.versions.push((id, position, bytes.to_vec()));
        Ok(())
    }
}

impl WriteTxn for PgWrite<'_, '_> {
    fn instance(&mut self, id: Uuid) -> Result<Option<Instance>, StoreError> {
        self.view(View::Instance, id)?
            .map(|b| decode_json(&format!("instance {id}"), &b))
            .transpose()
    }

    fn resource(&mut self, id: Uuid) -> Result<Option<Resource>, StoreError> {
        self.view(View::Resource, id)?
            .map(|b| decode_json(&format!("resource {id}"), &b))
            .transpose()
    }

    fn user(&mut self, id: Uuid) -> Result<Option<User>, StoreError> {
        self.view(View::User, id)?
            .map(|b| decode_json(&format!("user {id}"), &b))
            .transpose()
    }

    fn first_with(&mut self, key: &[u8]) -> Result<Option<Uuid>, StoreError> {
        let mut removed = HashSet::new();
        let mut best: Option<Uuid> = None;
        for ((k, id), present) in &self.buf.index {
            if k.as_slice() != key {
                continue;
            }
            if *present {
                best = Some(best.map_or(*id, |b| b.min(*id)));
            } else {
                removed.insert(*id);
            }
        }
        let limit = i64::try_from(removed.len() + 1).unwrap_or(i64::MAX);
        let rows = self.query(
            "SELECT id FROM index_entries WHERE key = $1 ORDER BY id LIMIT $2",
            &[&key, &limit],
        )?;
        let stored = rows
            .iter()
            .map(|r| r.get::<_, Uuid>(0))
            .find(|id| !removed.contains(id));
        Ok(match (best, stored) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    fn short_id_taken(&mut self, short_id: &str) -> Result<bool, StoreError> {
        if self.buf.short_ids.contains_key(short_id) {
            return Ok(true);
        }
        Ok(self
            .query_opt("SELECT 1 FROM short_ids WHERE short_id = $1", &[&short_id])?
            .is_some())
    }

    fn idempotency(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(r) = self.buf.idempotency.get(key) {
            return Ok(Some(r.clone()));
        }
        Ok(self
            .query_opt("SELECT record FROM idempotency WHERE key = $1", &[&key])?
            .map(|r| r.get::<_, Vec<u8>>(0)))
    }

    fn put_idempotency(&mut self, key: &str, record: &[u8]) -> Result<(), StoreError> {
        self.buf
            .idempotency
            .insert(key.to_string(), record.to_vec());
        self.dirty = true;
        Ok(())
    }

    fn stream_version(&mut self, id: Uuid) -> Result<u64, StoreError> {
        if let Some(v) = self.buf.stream_versions.get(&id) {
            return Ok(*v);
        }
        let v = self
            .query_opt(
                "SELECT version FROM events WHERE stream_id = $1 ORDER BY version DESC LIMIT 1",
                &[&id],
            )?
            .map(|r| unpos(r.get(0)))
            .unwrap_or(0);
        self.buf.stream_versions.insert(id, v);
        Ok(v)
    }

    fn head_position(&mut self) -> Result<u64, StoreError> {
        Ok(self.head.position)
    }

    fn append(&mut self, event: NewEvent) -> Result<Envelope, StoreError> {
        let current = self.stream_version(event.stream_id)?;
        let sealed = event.seal(current, &self.head)?;
        let env = sealed.env;
        let rows = &mut self.buf.events;
        rows.positions.push(pos(env.position));
        rows.streams.push(env.stream_id);
        rows.versions.push(pos(env.version));
        rows.hashes.push(sealed.hash.to_vec());
        rows.bodies.push(sealed.body);
        self.buf.stream_versions.insert(env.stream_id, env.version);
        self.project(&env, &sealed.payload)?;
        self.head = Head {
            position: env.position,
            hash: sealed.hash,
        };
        self.dirty = true;
        Ok(env)
    }
}

struct PgRead<'s> {
    store: &'s PgStore,
    conn: std::cell::RefCell<Option<Conn>>,
}

impl Drop for PgRead<'_> {
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.get_mut().take()
            && conn.client.batch_execute("ROLLBACK").is_ok()
        {
            self.store.give_back(conn);
        }
    }
}

impl PgRead<'_> {
    fn query(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, StoreError> {
        let mut slot = self.conn.borrow_mut();
        let conn = slot
            .as_mut()
            .ok_or_else(|| StoreError::Io("postgres: the snapshot's connection is gone".into()))?;
        let stmt = Conn::prepare(&mut conn.client, &mut conn.statements, sql)?;
        conn.client.query(&stmt, params).map_err(pg)
    }

    fn first(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<postgres::Row>, StoreError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    fn envelope(pos: i64, body: &[u8]) -> Result<Envelope, StoreError> {
        decode_json(&format!("position {pos}"), body)
    }

    fn ids(rows: Vec<postgres::Row>) -> Vec<u128> {
        rows.iter().map(|r| r.get::<_, Uuid>(0).as_u128()).collect()
    }

    fn seek(&self, key: &[u8], from: u128) -> Result<Option<u128>, StoreError> {
        Ok(self
            .first(
                "SELECT id FROM index_entries WHERE key = $1 AND id >= $2 ORDER BY id LIMIT 1",
                &[&key, &Uuid::from_u128(from)],
            )?
            .map(|r| r.get::<_, Uuid>(0).as_u128()))
    }

    fn seek_at(
        &self,
        key: &[u8],
        from: u128,
        last: u128,
        position: u64,
        limit: i64,
    ) -> Result<Vec<u128>, StoreError> {
        if from > last {
            return Ok(vec![]);
        }
        Ok(Self::ids(self.query(
            "SELECT id FROM history WHERE key = $1 AND id >= $2 AND id <= $3
               AND from_position <= $4 AND (to_position IS NULL OR to_position > $4)
             ORDER BY id LIMIT $5",
            &[
                &key,
                &Uuid::from_u128(from),
                &Uuid::from_u128(last),
                &pos(position),
                &limit,
            ],
        )?))
    }

    fn total(&self, keys: &[IndexKey]) -> Result<u64, StoreError> {
        match keys {
            [] => Ok(0),
            [one] => Ok(self
                .first(
                    "SELECT count FROM index_counts WHERE key = $1",
                    &[&one.as_slice()],
                )?
                .map(|r| unpos(r.get(0)))
                .unwrap_or(0)),
            many => Ok(intersect(many, 0, usize::MAX, |k, t| self.seek(k, t))?.len() as u64),
        }
    }
}

fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl Snapshot for PgRead<'_> {
    fn head(&self) -> Result<Head, StoreError> {
        let row = self
            .first("SELECT position, hash FROM head", &[])?
            .ok_or_else(|| corrupt("head", "missing"))?;
        Ok(Head {
            position: unpos(row.get(0)),
            hash: hash32(row.get::<_, &[u8]>(1))?,
        })
    }

    fn instance(&self, id: Uuid) -> Result<Option<Instance>, StoreError> {
        self.first("SELECT view FROM instances WHERE id = $1", &[&id])?
            .map(|r| decode_json(&format!("instance {id}"), r.get::<_, &[u8]>(0)))
            .transpose()
    }

    fn instance_by_short_id(&self, short_id: &str) -> Result<Option<Uuid>, StoreError> {
        Ok(self
            .first("SELECT id FROM short_ids WHERE short_id = $1", &[&short_id])?
            .map(|r| r.get(0)))
    }

    fn resource(&self, id: Uuid) -> Result<Option<Resource>, StoreError> {
        self.first("SELECT view FROM resources WHERE id = $1", &[&id])?
            .map(|r| decode_json(&format!("resource {id}"), r.get::<_, &[u8]>(0)))
            .transpose()
    }

    fn user(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        self.first("SELECT view FROM users WHERE id = $1", &[&id])?
            .map(|r| decode_json(&format!("user {id}"), r.get::<_, &[u8]>(0)))
            .transpose()
    }

    fn idempotency(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .first("SELECT record FROM idempotency WHERE key = $1", &[&key])?
            .map(|r| r.get(0)))
    }

    fn page(
        &self,
        keys: &[IndexKey],
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let start = match after {
            None => 0,
            Some(id) if id.as_u128() == u128::MAX => {
                return Ok(paged(vec![], limit, self.total(keys)?));
            }
            Some(id) => id.as_u128() + 1,
        };
        let ids = match keys {
            // One key: the page is one ordered range of its run.
            [one] => Self::ids(self.query(
                "SELECT id FROM index_entries WHERE key = $1 AND id >= $2 ORDER BY id LIMIT $3",
                &[
                    &one.as_slice(),
                    &Uuid::from_u128(start),
                    &limit_param(limit.saturating_add(1)),
                ],
            )?),
            many => intersect(many, start, limit.saturating_add(1), |k, t| self.seek(k, t))?,
        };
        Ok(paged(ids, limit, self.total(keys)?))
    }

    fn stream(&self, id: Uuid) -> Result<Vec<Envelope>, StoreError> {
        self.query(
            "SELECT position, body FROM events WHERE stream_id = $1 ORDER BY version",
            &[&id],
        )?
        .iter()
        .map(|r| Self::envelope(r.get(0), r.get::<_, &[u8]>(1)))
        .collect()
    }

    fn read_all(&self, after: u64, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        self.query(
            "SELECT position, body FROM events WHERE position > $1 ORDER BY position LIMIT $2",
            &[&pos(after), &limit_param(limit)],
        )?
        .iter()
        .map(|r| Self::envelope(r.get(0), r.get::<_, &[u8]>(1)))
        .collect()
    }

    fn position_at(&self, at: DateTime<Utc>) -> Result<u64, StoreError> {
        let nanos = super::projection::time_key(at);
        Ok(self
            .first(
                "SELECT position FROM times WHERE at_ns <= $1 ORDER BY at_ns DESC LIMIT 1",
                &[&nanos],
            )?
            .map(|r| unpos(r.get(0)))
            .unwrap_or(0))
    }

    fn instance_at(&self, id: Uuid, position: u64) -> Result<Option<Instance>, StoreError> {
        self.first(
            "SELECT position, view FROM versions WHERE id = $1 AND position <= $2
             ORDER BY position DESC LIMIT 1",
            &[&id, &pos(position)],
        )?
        .map(|r| {
            let at: i64 = r.get(0);
            decode_json(
                &format!("instance {id} at position {at}"),
                r.get::<_, &[u8]>(1),
            )
        })
        .transpose()
    }

    fn page_at(
        &self,
        keys: &[IndexKey],
        position: u64,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let Some(last) = self
            .first(
                "SELECT id FROM creations WHERE position <= $1 ORDER BY position DESC LIMIT 1",
                &[&pos(position)],
            )?
            .map(|r| r.get::<_, Uuid>(0).as_u128())
        else {
            return Ok(paged(vec![], limit, 0));
        };
        let start = match after {
            None => 0,
            Some(id) if id.as_u128() == u128::MAX => u128::MAX,
            Some(id) => id.as_u128() + 1,
        };
        let seek =
            |k: &[u8], t: u128| Ok(self.seek_at(k, t, last, position, 1)?.into_iter().next());
        let ids = match keys {
            [one] => self.seek_at(
                one,
                start,
                last,
                position,
                limit_param(limit.saturating_add(1)),
            )?,
            many => intersect(many, start, limit.saturating_add(1), seek)?,
        };
        let total = match keys {
            [] => 0,
            [one] => self
                .first(
                    "SELECT count FROM count_history WHERE key = $1 AND position <= $2
                     ORDER BY position DESC LIMIT 1",
                    &[&one.as_slice(), &pos(position)],
                )?
                .map(|r| unpos(r.get(0)))
                .unwrap_or(0),
            many => intersect(many, 0, usize::MAX, seek)?.len() as u64,
        };
        Ok(paged(ids, limit, total))
    }

    fn event_hash(&self, position: u64) -> Result<[u8; 32], StoreError> {
        let row = self
            .first(
                "SELECT hash FROM events WHERE position = $1",
                &[&pos(position)],
            )?
            .ok_or_else(|| corrupt(format!("position {position}"), "missing event"))?;
        hash32(row.get::<_, &[u8]>(0))
            .map_err(|_| corrupt(format!("position {position}"), "hash is not 32 bytes"))
    }

    fn state_hash_at(&self, position: u64) -> Result<[u8; 32], StoreError> {
        Ok(self
            .first(
                "SELECT hash FROM state_hashes WHERE position <= $1 ORDER BY position DESC LIMIT 1",
                &[&pos(position)],
            )?
            .map(|r| StateHash::from_bytes(r.get::<_, &[u8]>(0)).to_bytes())
            .unwrap_or_else(|| StateHash::default().to_bytes()))
    }
}

/// Applies the embedded migrations not yet applied, under an advisory lock, checking the
/// checksums of those already applied.
fn migrate(client: &mut Client) -> Result<(), StoreError> {
    use sha2::{Digest, Sha256};
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .map_err(pg)?;
    let result = (|| {
        let exists = client
            .query_one("SELECT to_regclass('ledger_migrations') IS NOT NULL", &[])
            .map_err(pg)?
            .get::<_, bool>(0);
        if !exists {
            client
                .batch_execute(
                    "CREATE TABLE ledger_migrations (
                     version    int PRIMARY KEY,
                     name       text NOT NULL,
                     checksum   bytea NOT NULL,
                     applied_at timestamptz NOT NULL DEFAULT now()
                 )",
                )
                .map_err(pg)?;
        }
        for (version, name, sql) in MIGRATIONS {
            let checksum = Sha256::digest(sql.as_bytes()).to_vec();
            let applied = client
                .query_opt(
                    "SELECT checksum FROM ledger_migrations WHERE version = $1",
                    &[version],
                )
                .map_err(pg)?;
            match applied {
                Some(row) if row.get::<_, Vec<u8>>(0) == checksum => continue,
                Some(_) => {
                    return Err(StoreError::Io(format!(
                        "migration {name} was changed after it was applied; restore it and add a new migration instead"
                    )));
                }
                None => {
                    let mut tx = client.transaction().map_err(pg)?;
                    tx.batch_execute(sql).map_err(pg)?;
                    tx.execute(
                        "INSERT INTO ledger_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                        &[version, name, &checksum],
                    )
                    .map_err(pg)?;
                    tx.commit().map_err(pg)?;
                    tracing::info!(migration = name, "applied");
                }
            }
        }
        Ok(())
    })();
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .map_err(pg);
    result.and(unlocked.map(|_| ()))
}
