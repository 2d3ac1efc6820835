//! What a batch writes, held in memory until the flush and then written with one
//! set-based statement per table (`unnest` of column arrays), so a batch costs its reads
//! plus a constant number of round trips. Reads inside the batch consult it first.

use std::collections::{BTreeMap, HashMap, HashSet};

use postgres::Transaction;
use postgres::types::ToSql;
use uuid::Uuid;

use super::pos;

#[derive(Default)]
pub(super) struct Buffer {
    pub(super) events: EventRows,
    pub(super) stream_versions: HashMap<Uuid, u64>,
    pub(super) idempotency: HashMap<String, Vec<u8>>,
    pub(super) instances: HashMap<Uuid, Vec<u8>>,
    pub(super) resources: HashMap<Uuid, Vec<u8>>,
    pub(super) users: HashMap<Uuid, Vec<u8>>,
    pub(super) short_ids: HashMap<String, Uuid>,
    /// (key, id) -> present after the batch.
    pub(super) index: HashMap<(Vec<u8>, Uuid), bool>,
    /// Counts read or written in this batch: the current value.
    pub(super) counts: HashMap<Vec<u8>, u64>,
    pub(super) counts_dirty: HashSet<Vec<u8>>,
    /// Intervals opened in this batch: (key, id, from) -> to.
    pub(super) opened: BTreeMap<(Vec<u8>, Uuid, u64), Option<u64>>,
    /// Intervals open before this batch, closed in it: (key, id) -> to.
    pub(super) closed: HashMap<(Vec<u8>, Uuid), u64>,
    pub(super) count_history: BTreeMap<(Vec<u8>, u64), u64>,
    pub(super) times: BTreeMap<i64, u64>,
    pub(super) creations: Vec<(u64, Uuid)>,
    pub(super) state_hashes: Vec<(u64, [u8; 32])>,
    pub(super) versions: Vec<(Uuid, u64, Vec<u8>)>,
}

/// Appended events, column by column for one `unnest` insert.
#[derive(Default)]
pub(super) struct EventRows {
    pub(super) positions: Vec<i64>,
    pub(super) streams: Vec<Uuid>,
    pub(super) versions: Vec<i64>,
    pub(super) hashes: Vec<Vec<u8>>,
    pub(super) bodies: Vec<Vec<u8>>,
}

type Params<'a> = [&'a (dyn ToSql + Sync)];

/// Runs one statement unless its first column is empty.
fn run(
    tx: &mut Transaction<'_>,
    rows: usize,
    sql: &str,
    params: &Params<'_>,
) -> Result<(), postgres::Error> {
    if rows == 0 {
        return Ok(());
    }
    tx.execute(sql, params).map(|_| ())
}

impl Buffer {
    pub(super) fn flush(self, tx: &mut Transaction<'_>) -> Result<(), postgres::Error> {
        let Buffer {
            events,
            stream_versions: _,
            idempotency,
            instances,
            resources,
            users,
            short_ids,
            index,
            counts,
            counts_dirty,
            opened,
            closed,
            count_history,
            times,
            creations,
            state_hashes,
            versions,
        } = self;
        flush_events(tx, &events)?;
        flush_idempotency(tx, idempotency)?;
        for (table, views) in [
            ("instances", instances),
            ("resources", resources),
            ("users", users),
        ] {
            flush_views(tx, table, views)?;
        }
        flush_short_ids(tx, short_ids)?;
        flush_index(tx, index)?;
        flush_counts(tx, &counts, counts_dirty)?;
        flush_history(tx, closed, opened)?;
        flush_count_history(tx, count_history)?;
        flush_times(tx, times)?;
        flush_creations(tx, creations)?;
        flush_state_hashes(tx, state_hashes)?;
        flush_versions(tx, versions)
    }
}

fn flush_events(tx: &mut Transaction<'_>, e: &EventRows) -> Result<(), postgres::Error> {
    let (p, s, v, h, b) = (&e.positions, &e.streams, &e.versions, &e.hashes, &e.bodies);
    run(
        tx,
        p.len(),
        "INSERT INTO events (position, stream_id, version, hash, body)
         SELECT * FROM unnest($1::int8[], $2::uuid[], $3::int8[], $4::bytea[], $5::bytea[])",
        &[p, s, v, h, b],
    )
}

fn flush_idempotency(
    tx: &mut Transaction<'_>,
    records: HashMap<String, Vec<u8>>,
) -> Result<(), postgres::Error> {
    let (k, r): (Vec<String>, Vec<Vec<u8>>) = records.into_iter().unzip();
    run(
        tx,
        k.len(),
        "INSERT INTO idempotency (key, record) SELECT * FROM unnest($1::text[], $2::bytea[])
         ON CONFLICT (key) DO UPDATE SET record = EXCLUDED.record",
        &[&k, &r],
    )
}

fn flush_views(
    tx: &mut Transaction<'_>,
    table: &str,
    views: HashMap<Uuid, Vec<u8>>,
) -> Result<(), postgres::Error> {
    let (ids, v): (Vec<Uuid>, Vec<Vec<u8>>) = views.into_iter().unzip();
    run(
        tx,
        ids.len(),
        &format!(
            "INSERT INTO {table} (id, view) SELECT * FROM unnest($1::uuid[], $2::bytea[])
             ON CONFLICT (id) DO UPDATE SET view = EXCLUDED.view"
        ),
        &[&ids, &v],
    )
}

fn flush_short_ids(
    tx: &mut Transaction<'_>,
    short_ids: HashMap<String, Uuid>,
) -> Result<(), postgres::Error> {
    let (s, ids): (Vec<String>, Vec<Uuid>) = short_ids.into_iter().unzip();
    run(
        tx,
        s.len(),
        "INSERT INTO short_ids (short_id, id) SELECT * FROM unnest($1::text[], $2::uuid[])",
        &[&s, &ids],
    )
}

fn flush_index(
    tx: &mut Transaction<'_>,
    index: HashMap<(Vec<u8>, Uuid), bool>,
) -> Result<(), postgres::Error> {
    let (mut add_k, mut add_i, mut del_k, mut del_i) = (vec![], vec![], vec![], vec![]);
    for ((k, id), present) in index {
        if present {
            add_k.push(k);
            add_i.push(id);
        } else {
            del_k.push(k);
            del_i.push(id);
        }
    }
    run(
        tx,
        del_k.len(),
        "DELETE FROM index_entries e USING unnest($1::bytea[], $2::uuid[]) AS d(key, id)
         WHERE e.key = d.key AND e.id = d.id",
        &[&del_k, &del_i],
    )?;
    run(
        tx,
        add_k.len(),
        "INSERT INTO index_entries (key, id) SELECT * FROM unnest($1::bytea[], $2::uuid[])
         ON CONFLICT DO NOTHING",
        &[&add_k, &add_i],
    )
}

fn flush_counts(
    tx: &mut Transaction<'_>,
    counts: &HashMap<Vec<u8>, u64>,
    dirty: HashSet<Vec<u8>>,
) -> Result<(), postgres::Error> {
    let (mut set_k, mut set_n, mut zero_k) = (vec![], vec![], vec![]);
    for k in dirty {
        match counts.get(&k).copied().unwrap_or(0) {
            0 => zero_k.push(k),
            n => {
                set_k.push(k);
                set_n.push(pos(n));
            }
        }
    }
    run(
        tx,
        zero_k.len(),
        "DELETE FROM index_counts WHERE key = ANY($1::bytea[])",
        &[&zero_k],
    )?;
    run(
        tx,
        set_k.len(),
        "INSERT INTO index_counts (key, count) SELECT * FROM unnest($1::bytea[], $2::int8[])
         ON CONFLICT (key) DO UPDATE SET count = EXCLUDED.count",
        &[&set_k, &set_n],
    )
}

fn flush_history(
    tx: &mut Transaction<'_>,
    closed: HashMap<(Vec<u8>, Uuid), u64>,
    opened: BTreeMap<(Vec<u8>, Uuid, u64), Option<u64>>,
) -> Result<(), postgres::Error> {
    // Close intervals that were open before the batch first, so the update cannot touch
    // the ones this batch opens.
    let (mut k, mut ids, mut to) = (vec![], vec![], vec![]);
    for ((key, id), p) in closed {
        k.push(key);
        ids.push(id);
        to.push(pos(p));
    }
    run(
        tx,
        k.len(),
        "UPDATE history h SET to_position = c.to_position
         FROM unnest($1::bytea[], $2::uuid[], $3::int8[]) AS c(key, id, to_position)
         WHERE h.key = c.key AND h.id = c.id AND h.to_position IS NULL",
        &[&k, &ids, &to],
    )?;
    let (mut k, mut ids, mut from, mut to) = (vec![], vec![], vec![], Vec::<Option<i64>>::new());
    for ((key, id, f), t) in opened {
        k.push(key);
        ids.push(id);
        from.push(pos(f));
        to.push(t.map(pos));
    }
    run(
        tx,
        k.len(),
        "INSERT INTO history (key, id, from_position, to_position)
         SELECT * FROM unnest($1::bytea[], $2::uuid[], $3::int8[], $4::int8[])",
        &[&k, &ids, &from, &to],
    )
}

fn flush_count_history(
    tx: &mut Transaction<'_>,
    rows: BTreeMap<(Vec<u8>, u64), u64>,
) -> Result<(), postgres::Error> {
    let (mut k, mut p, mut n) = (vec![], vec![], vec![]);
    for ((key, at), count) in rows {
        k.push(key);
        p.push(pos(at));
        n.push(pos(count));
    }
    run(
        tx,
        k.len(),
        "INSERT INTO count_history (key, position, count)
         SELECT * FROM unnest($1::bytea[], $2::int8[], $3::int8[])
         ON CONFLICT (key, position) DO UPDATE SET count = EXCLUDED.count",
        &[&k, &p, &n],
    )
}

fn flush_times(tx: &mut Transaction<'_>, times: BTreeMap<i64, u64>) -> Result<(), postgres::Error> {
    let (t, p): (Vec<i64>, Vec<i64>) = times.into_iter().map(|(t, p)| (t, pos(p))).unzip();
    run(
        tx,
        t.len(),
        "INSERT INTO times (at_ns, position) SELECT * FROM unnest($1::int8[], $2::int8[])
         ON CONFLICT (at_ns) DO UPDATE SET position = EXCLUDED.position",
        &[&t, &p],
    )
}

fn flush_creations(
    tx: &mut Transaction<'_>,
    creations: Vec<(u64, Uuid)>,
) -> Result<(), postgres::Error> {
    let (p, ids): (Vec<i64>, Vec<Uuid>) = creations.into_iter().map(|(p, i)| (pos(p), i)).unzip();
    run(
        tx,
        p.len(),
        "INSERT INTO creations (position, id) SELECT * FROM unnest($1::int8[], $2::uuid[])",
        &[&p, &ids],
    )
}

fn flush_state_hashes(
    tx: &mut Transaction<'_>,
    hashes: Vec<(u64, [u8; 32])>,
) -> Result<(), postgres::Error> {
    let (p, h): (Vec<i64>, Vec<Vec<u8>>) = hashes
        .into_iter()
        .map(|(p, h)| (pos(p), h.to_vec()))
        .unzip();
    run(
        tx,
        p.len(),
        "INSERT INTO state_hashes (position, hash) SELECT * FROM unnest($1::int8[], $2::bytea[])",
        &[&p, &h],
    )
}

fn flush_versions(
    tx: &mut Transaction<'_>,
    versions: Vec<(Uuid, u64, Vec<u8>)>,
) -> Result<(), postgres::Error> {
    let (mut ids, mut p, mut v) = (vec![], vec![], vec![]);
    for (id, at, view) in versions {
        ids.push(id);
        p.push(pos(at));
        v.push(view);
    }
    run(
        tx,
        ids.len(),
        "INSERT INTO versions (id, position, view) SELECT * FROM unnest($1::uuid[], $2::int8[], $3::bytea[])",
        &[&ids, &p, &v],
    )
}
