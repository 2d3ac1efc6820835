//! The scale-out backend: the same store contract on PostgreSQL, shared by several
//! stateless `ledger` nodes.
//!
//! Every write transaction first locks the single `head` row, so transactions that append
//! run one at a time across all nodes and positions are assigned in commit order: a reader
//! never sees position N+1 before N has committed (no sequence gaps by design). Because the
//! lock is taken before anything is read, each batch decides against the latest state of
//! every node; the unique (stream_id, version) constraint is the backstop, and a batch that
//! hits it, a serialization failure or a deadlock is re-run from the start against fresh
//! state.
//!
//! - [`migrate`]: the embedded migrations of `schema/postgres/`;
//! - [`write`] and [`buffer`]: the append transaction and its set-based flush;
//! - [`read`]: `REPEATABLE READ READ ONLY` snapshots on a small connection pool;
//! - [`listen`]: LISTEN/NOTIFY wake-ups of live feeds on every node;
//! - [`maintain`]: verify, rebuild and export.

mod buffer;
mod listen;
mod maintain;
mod migrate;
mod pool;
mod read;
mod write;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use postgres::{Client, NoTls, Statement};
use uuid::Uuid;

use super::{EventStore, Snapshot, StoreError, WriteTxn};
use migrate::migrate;
use read::PgRead;
use write::{Attempt, retryable};

/// How often a batch is re-run after a conflict before the requests get a 503.
const MAX_ATTEMPTS: usize = 8;

pub(super) fn pg(e: postgres::Error) -> StoreError {
    if e.code() == Some(&postgres::error::SqlState::DISK_FULL) {
        return StoreError::Full(format!("postgres: {e}"));
    }
    StoreError::Io(format!("postgres: {e}"))
}

pub(super) fn corrupt(at: impl Into<String>, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        at: at.into(),
        detail: detail.to_string(),
    }
}

pub(super) fn pos(p: u64) -> i64 {
    i64::try_from(p).unwrap_or(i64::MAX)
}

pub(super) fn unpos(p: i64) -> u64 {
    u64::try_from(p).unwrap_or(0)
}

/// A count block's bit mask as PostgreSQL stores it: the same 64 bits in a `bigint`.
pub(super) fn signed(mask: u64) -> i64 {
    i64::from_ne_bytes(mask.to_ne_bytes())
}

/// A count block's bit mask from its `bigint`.
pub(super) fn bits(stored: i64) -> u64 {
    u64::from_ne_bytes(stored.to_ne_bytes())
}

/// One connection with its prepared statements.
pub(super) struct Conn {
    pub(super) client: Client,
    pub(super) statements: HashMap<&'static str, Statement>,
    /// The writer's head and fleet state hash after its last batch.
    pub(super) last_commit: Option<(super::Head, super::projection::StateHash)>,
    /// A reader's slot in the pool, freed when the connection is dropped.
    permit: Option<pool::Permit>,
}

impl Conn {
    /// `sql` prepared once per connection (statements outlive transactions).
    pub(super) fn prepare(
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
    readers: std::sync::Arc<pool::ReaderPool>,
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
            readers: Default::default(),
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

    pub(super) fn open_conn(&self) -> Result<Conn, StoreError> {
        let client = self.config.connect(NoTls).map_err(pg)?;
        Ok(Conn {
            client,
            statements: HashMap::new(),
            last_commit: None,
            permit: None,
        })
    }

    /// A read connection from the pool (an idle one, or a new one while there is room).
    pub(super) fn reader(&self) -> Result<Conn, StoreError> {
        self.take_reader(true)
    }

    fn take_reader(&self, reuse: bool) -> Result<Conn, StoreError> {
        match self.readers.take(reuse)? {
            pool::Taken::Idle(conn) => Ok(*conn),
            pool::Taken::Open(permit) => {
                let mut conn = self.open_reader()?;
                conn.permit = Some(permit);
                Ok(conn)
            }
        }
    }

    /// The writer's connection. Its statements are planned for their parameters each
    /// time: a generic plan made while the tables were small keeps scanning them whole
    /// once they are large (measured: the flush went from 4 to 14 ms per batch at 3,000
    /// instances), and replanning costs far less than that.
    fn open_writer(&self) -> Result<Conn, StoreError> {
        self.open_conn_with("SET plan_cache_mode = force_custom_plan")
    }

    /// A connection for the pool. Its commits do not wait for the WAL flush: readers run
    /// read-only snapshots, which flush nothing, and driver claims, which are leases. A
    /// claim lost in a database crash only lets another node claim the same completion,
    /// whose append is checked against the instance's version, so one of them lands.
    /// Waiting for an fsync per claim cost the writer's batch commits their disk.
    fn open_reader(&self) -> Result<Conn, StoreError> {
        self.open_conn_with("SET synchronous_commit = off")
    }

    /// A new connection with one session setting applied.
    fn open_conn_with(&self, setting: &str) -> Result<Conn, StoreError> {
        let mut conn = self.open_conn()?;
        conn.client.batch_execute(setting).map_err(pg)?;
        Ok(conn)
    }

    pub(super) fn give_back(&self, conn: Conn) {
        self.readers.give_back(conn);
    }
}

pub(super) fn hash32(raw: &[u8]) -> Result<[u8; 32], StoreError> {
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
                *slot = Some(self.open_writer()?);
            }
            let Some(conn) = slot.as_mut() else {
                continue;
            };
            match Self::attempt(conn, f, attempt > 1) {
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
            drop(conn);
            conn = self.take_reader(false)?;
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
        let claim = Conn::prepare(
            &mut conn.client,
            &mut conn.statements,
            "INSERT INTO driver_claims (instance_id, version, node, expires_at)
                 VALUES ($1, $2, $3, now() + $4::float8 * interval '1 millisecond')
                 ON CONFLICT (instance_id) DO UPDATE
                   SET version = EXCLUDED.version, node = EXCLUDED.node, expires_at = EXCLUDED.expires_at
                   WHERE driver_claims.version < EXCLUDED.version
                      OR driver_claims.expires_at < now()
                      OR driver_claims.node = EXCLUDED.node
                 RETURNING node",
        )?;
        let row = conn
            .client
            .query_opt(
                &claim,
                &[&id, &pos(version), &self.node, &(lease_ms as f64)],
            )
            .map_err(pg)?;
        self.give_back(conn);
        Ok(row.is_some())
    }
}
