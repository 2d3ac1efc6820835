//! Maintenance on PostgreSQL: `verify` replays the log into a scratch schema inside one
//! transaction and compares table by table (the scratch schema is rolled back), `rebuild`
//! replays it into the live projections after emptying them, `export` streams the log.
//! Both replays hold the head row, so appends wait until they are done.

use std::collections::HashMap;

use postgres::Transaction;
use uuid::Uuid;

use super::super::chain::Chain;
use super::super::projection::{Projector, StateHash, VERSION};
use super::super::{ExportRange, Head, Maintenance, StoreError, VerifyReport};
use super::buffer::{Buffer, Flush};
use super::migrate::MIGRATIONS;
use super::write::{Attempt, PgWrite};
use super::{PgStore, corrupt, hash32, pg, pos, unpos};

/// Every projection table, in the order a rebuild empties them.
const PROJECTIONS: [&str; 12] = [
    "instances",
    "resources",
    "users",
    "short_ids",
    "index_entries",
    "index_counts",
    "history",
    "count_blocks",
    "times",
    "creations",
    "state_hashes",
    "versions",
];

/// How many events one replay step reads and flushes.
const REPLAY_CHUNK: i64 = 1000;

/// Locks the head row (`FOR SHARE` keeps appends out while reading; `FOR UPDATE` also
/// while writing) and returns it.
fn locked_head(tx: &mut Transaction<'_>, mode: &str) -> Result<Head, StoreError> {
    let row = tx
        .query_one(&format!("SELECT position, hash FROM head {mode}"), &[])
        .map_err(pg)?;
    Ok(Head {
        position: unpos(row.get(0)),
        hash: hash32(row.get::<_, &[u8]>(1))?,
    })
}

/// Replays every event of `source` (a qualified events table) into the projection tables
/// the transaction's search path names, checking the log as it goes ([`Chain`]) and
/// calling `progress` with the position reached. Returns the number of events.
fn replay(
    tx: &mut Transaction<'_>,
    source: &str,
    head: Head,
    progress: &dyn Fn(u64),
) -> Result<u64, StoreError> {
    let read_events = format!(
        "SELECT position, hash, body FROM {source} WHERE position > $1 ORDER BY position LIMIT {REPLAY_CHUNK}"
    );
    // The tables grow from empty during a replay: a generic plan of the flush made at
    // the start would keep scanning them whole (see `PgStore::open_writer`).
    tx.batch_execute("SET LOCAL plan_cache_mode = force_custom_plan")
        .map_err(pg)?;
    let mut chain = Chain::new();
    let mut projector = Projector::new(StateHash::default());
    let mut statements = HashMap::new();
    loop {
        let rows = tx
            .query(&read_events, &[&pos(chain.head().position)])
            .map_err(pg)?;
        if rows.is_empty() {
            break;
        }
        let mut w = PgWrite {
            tx: &mut *tx,
            statements: &mut statements,
            buf: Buffer::default(),
            projector,
            head,
            dirty: false,
            // A rebuild only projects the log: it mints no short ids.
            rerun: false,
        };
        for row in &rows {
            let event = chain.next(unpos(row.get(0)), Some(row.get(1)), row.get(2))?;
            w.project(&event.env, &event.payload)?;
        }
        projector = std::mem::replace(&mut w.projector, Projector::new(StateHash::default()));
        let buf = std::mem::take(&mut w.buf);
        drop(w);
        buf.flush(
            &mut Flush {
                tx: &mut *tx,
                statements: &mut statements,
            },
            None,
        )
        .map_err(|e| match e {
            Attempt::Pg(e) => pg(e),
            Attempt::Store(e) => e,
        })?;
        progress(chain.head().position);
    }
    chain.ends_at(head)?;
    Ok(head.position)
}

fn quoted(schema: &str) -> String {
    format!("\"{}\"", schema.replace('"', "\"\""))
}

impl Maintenance for PgStore {
    /// The recorded head names the last event, and its hash matches.
    fn check_tail(&self) -> Result<Head, StoreError> {
        let mut conn = self.reader()?;
        let row = conn
            .client
            .query_one(
                "SELECT h.position, h.hash, e.hash, (SELECT max(position) FROM events)
                 FROM head h LEFT JOIN events e ON e.position = h.position",
                &[],
            )
            .map_err(pg)?;
        self.give_back(conn);
        let head = Head {
            position: unpos(row.get(0)),
            hash: hash32(row.get::<_, &[u8]>(1))?,
        };
        let last: Option<i64> = row.get(3);
        let stored: Option<&[u8]> = row.get(2);
        let consistent = match (head.position, stored) {
            (0, None) => last.is_none(),
            (_, Some(hash)) => hash == head.hash && last == Some(pos(head.position)),
            (_, None) => false,
        };
        if !consistent {
            return Err(corrupt(
                "head",
                "the recorded head does not match the last event",
            ));
        }
        Ok(head)
    }

    fn verify_with(&self, progress: &dyn Fn(u64)) -> Result<VerifyReport, StoreError> {
        let mut conn = self.open_conn()?;
        let mut tx = conn.client.transaction().map_err(pg)?;
        let live: String = tx
            .query_one("SELECT current_schema()", &[])
            .map_err(pg)?
            .get(0);
        let live = quoted(&live);
        let head = locked_head(&mut tx, "FOR SHARE")?;
        let scratch = format!("ledger_verify_{}", Uuid::new_v4().simple());
        tx.batch_execute(&format!(
            "CREATE SCHEMA {scratch}; SET LOCAL search_path = {scratch}"
        ))
        .map_err(pg)?;
        for (_, _, sql) in MIGRATIONS {
            tx.batch_execute(sql).map_err(pg)?;
        }
        let events = replay(&mut tx, &format!("{live}.events"), head, progress)?;
        for table in PROJECTIONS {
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
        let report = VerifyReport {
            events,
            instances: count(&mut tx, "instances")?,
            index_entries: count(&mut tx, "index_entries")?,
            head,
        };
        tx.rollback().map_err(pg)?;
        Ok(report)
    }

    fn rebuild_with(&self, progress: &dyn Fn(u64)) -> Result<u64, StoreError> {
        let mut conn = self.open_conn()?;
        let mut tx = conn.client.transaction().map_err(pg)?;
        let head = locked_head(&mut tx, "FOR UPDATE")?;
        tx.batch_execute(&format!("TRUNCATE {}", PROJECTIONS.join(", ")))
            .map_err(pg)?;
        let events = replay(&mut tx, "events", head, progress)?;
        tx.execute(
            "INSERT INTO projection_version (version) VALUES ($1)
             ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version",
            &[&i32::try_from(VERSION).unwrap_or(i32::MAX)],
        )
        .map_err(pg)?;
        tx.commit().map_err(pg)?;
        Ok(events)
    }

    /// No row: a ledger from before versions were recorded (a new one gets its row when
    /// the migrations run).
    fn projection_version(&self) -> Result<u32, StoreError> {
        let mut conn = self.reader()?;
        let row = conn
            .client
            .query_opt("SELECT version FROM projection_version", &[])
            .map_err(pg)?;
        self.give_back(conn);
        Ok(row.map_or(1, |r| u32::try_from(r.get::<_, i32>(0)).unwrap_or(0)))
    }

    fn export(
        &self,
        range: &ExportRange,
        out: &mut dyn std::io::Write,
        progress: &dyn Fn(u64),
    ) -> Result<u64, StoreError> {
        let write = |out: &mut dyn std::io::Write, bytes: &[u8]| {
            out.write_all(bytes)
                .map_err(|e| StoreError::Io(e.to_string()))
        };
        let mut conn = self.reader()?;
        let mut after = pos(range.from.saturating_sub(1));
        let to = pos(range.to.unwrap_or(u64::MAX));
        let mut n = 0;
        loop {
            let rows = conn
                .client
                .query(
                    "SELECT position, body FROM events WHERE position > $1 AND position <= $2
                     AND ($3::uuid IS NULL OR stream_id = $3) ORDER BY position LIMIT 1000",
                    &[&after, &to, &range.stream],
                )
                .map_err(pg)?;
            if rows.is_empty() {
                break;
            }
            for row in rows {
                after = row.get(0);
                write(out, row.get::<_, &[u8]>(1))?;
                write(out, b"\n")?;
                n += 1;
            }
            progress(unpos(after));
        }
        out.flush().map_err(|e| StoreError::Io(e.to_string()))?;
        self.give_back(conn);
        Ok(n)
    }
}
