//! What a batch writes, held in memory until the flush and then written in one
//! statement: one data-modifying CTE per table, each an `unnest` of column arrays, plus
//! the head and the commit notification. A batch costs its reads (prefetched together),
//! one read of the counts it moves, that statement and the commit, however many events
//! it holds. Reads inside the batch consult the buffer first.

use std::collections::{BTreeMap, HashMap, HashSet};

use postgres::types::ToSql;
use postgres::{Statement, Transaction};
use uuid::Uuid;

use super::super::Head;
use super::super::count_blocks::{self, MovedTwice, Moves};
use super::super::projection::shifted;
use super::listen::NOTIFY_CHANNEL;
use super::write::Attempt;
use super::{corrupt, pos, signed, unpos};

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
    /// Count moves in order: (key, up, position for the count history). Applied at the
    /// flush to the stored counts, read in one statement.
    pub(super) count_moves: Vec<(Vec<u8>, bool, Option<u64>)>,
    /// Intervals opened in this batch: (key, id, from) -> to.
    pub(super) opened: BTreeMap<(Vec<u8>, Uuid, u64), Option<u64>>,
    /// Intervals open before this batch, closed in it: (key, id) -> to.
    pub(super) closed: HashMap<(Vec<u8>, Uuid), u64>,
    pub(super) times: BTreeMap<i64, u64>,
    pub(super) creations: Vec<(u64, Uuid)>,
    pub(super) state_hashes: Vec<(u64, [u8; 32])>,
    pub(super) versions: Vec<(Uuid, u64, Vec<u8>)>,
    /// Views read from the tables in this batch (`None`: absent), so each is read once.
    pub(super) fetched: HashMap<(View, Uuid), Option<Vec<u8>>>,
    /// Idempotency records read in this batch (`None`: absent).
    pub(super) idempotency_read: HashMap<String, Option<Vec<u8>>>,
}

/// The current-view tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum View {
    Instance,
    Resource,
    User,
}

impl View {
    pub(super) const ALL: [View; 3] = [View::Instance, View::Resource, View::User];
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

/// The transaction and the connection's prepared statements (prepared once per
/// connection; statements outlive transactions).
pub(super) struct Flush<'a, 'c> {
    pub(super) tx: &'a mut Transaction<'c>,
    pub(super) statements: &'a mut HashMap<&'static str, Statement>,
}

impl Flush<'_, '_> {
    fn statement(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.tx.prepare(sql)?;
        self.statements.insert(sql, s.clone());
        Ok(s)
    }
}

/// The whole batch in one statement. Every sub-statement sees the snapshot from before
/// the statement and none sees another's rows, which the buffer makes safe: each
/// (key, id) of the index is either removed or added, each count is either deleted or
/// set, and the intervals closed are the ones open before the batch (this batch's own
/// are inserted already closed). Empty arrays insert nothing. `$44` says whether the
/// head moved (a replay writes projections only). A count block an earlier batch began
/// ([`count_blocks`]) keeps its starting count and gains this batch's bits: its
/// positions are new, so the bits never overlap.
const FLUSH: &str = "WITH
  e  AS (INSERT INTO events (position, stream_id, version, hash, body)
         SELECT * FROM unnest($1::int8[], $2::uuid[], $3::int8[], $4::bytea[], $5::bytea[])),
  ik AS (INSERT INTO idempotency (key, record) SELECT * FROM unnest($6::text[], $7::bytea[])
         ON CONFLICT (key) DO UPDATE SET record = EXCLUDED.record),
  vi AS (INSERT INTO instances (id, view) SELECT * FROM unnest($8::uuid[], $9::bytea[])
         ON CONFLICT (id) DO UPDATE SET view = EXCLUDED.view),
  vr AS (INSERT INTO resources (id, view) SELECT * FROM unnest($10::uuid[], $11::bytea[])
         ON CONFLICT (id) DO UPDATE SET view = EXCLUDED.view),
  vu AS (INSERT INTO users (id, view) SELECT * FROM unnest($12::uuid[], $13::bytea[])
         ON CONFLICT (id) DO UPDATE SET view = EXCLUDED.view),
  si AS (INSERT INTO short_ids (short_id, id) SELECT * FROM unnest($14::text[], $15::uuid[])),
  xd AS (DELETE FROM index_entries x USING unnest($16::bytea[], $17::uuid[]) AS d(key, id)
         WHERE x.key = d.key AND x.id = d.id),
  xa AS (INSERT INTO index_entries (key, id) SELECT * FROM unnest($18::bytea[], $19::uuid[])
         ON CONFLICT DO NOTHING),
  cz AS (DELETE FROM index_counts WHERE key = ANY($20::bytea[])),
  cs AS (INSERT INTO index_counts (key, count) SELECT * FROM unnest($21::bytea[], $22::int8[])
         ON CONFLICT (key) DO UPDATE SET count = EXCLUDED.count),
  hc AS (UPDATE history h SET to_position = c.to_position
         FROM unnest($23::bytea[], $24::uuid[], $25::int8[]) AS c(key, id, to_position)
         WHERE h.key = c.key AND h.id = c.id AND h.to_position IS NULL),
  ho AS (INSERT INTO history (key, id, from_position, to_position)
         SELECT * FROM unnest($26::bytea[], $27::uuid[], $28::int8[], $29::int8[])),
  ch AS (INSERT INTO count_blocks (key, block, start, ups, downs)
         SELECT * FROM unnest($30::bytea[], $31::int8[], $32::int8[], $33::int8[], $34::int8[])
         ON CONFLICT (key, block) DO UPDATE
         SET ups = count_blocks.ups | EXCLUDED.ups, downs = count_blocks.downs | EXCLUDED.downs),
  ti AS (INSERT INTO times (at_ns, position) SELECT * FROM unnest($35::int8[], $36::int8[])
         ON CONFLICT (at_ns) DO UPDATE SET position = EXCLUDED.position),
  cr AS (INSERT INTO creations (position, id) SELECT * FROM unnest($37::int8[], $38::uuid[])),
  sh AS (INSERT INTO state_hashes (position, hash)
         SELECT * FROM unnest($39::int8[], $40::bytea[])),
  ve AS (INSERT INTO versions (id, position, view)
         SELECT * FROM unnest($41::uuid[], $42::int8[], $43::bytea[])),
  hd AS (UPDATE head SET position = $45::int8, hash = $46::bytea WHERE $44::bool)
SELECT pg_notify($47::text, $48::text) WHERE $44::bool";

const READ_COUNTS: &str = "SELECT key, count FROM index_counts WHERE key = ANY($1::bytea[])";

/// Column arrays of a two-column table.
fn columns<A, B>(rows: impl IntoIterator<Item = (A, B)>) -> (Vec<A>, Vec<B>) {
    rows.into_iter().unzip()
}

impl Buffer {
    /// Writes the batch; with `moved`, also the new head and the commit notification.
    pub(super) fn flush(self, tx: &mut Flush<'_, '_>, moved: Option<Head>) -> Result<(), Attempt> {
        let Buffer {
            events: e,
            stream_versions: _,
            idempotency,
            instances,
            resources,
            users,
            short_ids,
            index,
            count_moves,
            opened,
            closed,
            times,
            creations,
            state_hashes,
            versions,
            fetched: _,
            idempotency_read: _,
        } = self;
        let counts = Counts::apply(tx, count_moves)?;
        let (idem_k, idem_r) = columns(idempotency);
        let (inst_i, inst_v) = columns(instances);
        let (res_i, res_v) = columns(resources);
        let (user_i, user_v) = columns(users);
        let (short_s, short_i) = columns(short_ids);
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
        let (mut close_k, mut close_i, mut close_to) = (vec![], vec![], vec![]);
        for ((key, id), to) in closed {
            close_k.push(key);
            close_i.push(id);
            close_to.push(pos(to));
        }
        let (mut open_k, mut open_i, mut open_from) = (vec![], vec![], vec![]);
        let mut open_to: Vec<Option<i64>> = vec![];
        for ((key, id, from), to) in opened {
            open_k.push(key);
            open_i.push(id);
            open_from.push(pos(from));
            open_to.push(to.map(pos));
        }
        let (time_t, time_p) = columns(times.into_iter().map(|(t, p)| (t, pos(p))));
        let (creation_p, creation_i) = columns(creations.into_iter().map(|(p, i)| (pos(p), i)));
        let (hash_p, hash_h) = columns(state_hashes.into_iter().map(|(p, h)| (pos(p), h.to_vec())));
        let (mut version_i, mut version_p, mut version_v) = (vec![], vec![], vec![]);
        for (id, at, view) in versions {
            version_i.push(id);
            version_p.push(pos(at));
            version_v.push(view);
        }
        let head = moved.unwrap_or_default();
        let (head_position, head_hash) = (pos(head.position), head.hash.to_vec());
        let notified = head.position.to_string();
        let statement = tx.statement(FLUSH).map_err(Attempt::Pg)?;
        let params: [&(dyn ToSql + Sync); 48] = [
            &e.positions,
            &e.streams,
            &e.versions,
            &e.hashes,
            &e.bodies,
            &idem_k,
            &idem_r,
            &inst_i,
            &inst_v,
            &res_i,
            &res_v,
            &user_i,
            &user_v,
            &short_s,
            &short_i,
            &del_k,
            &del_i,
            &add_k,
            &add_i,
            &counts.zero,
            &counts.set_keys,
            &counts.set_counts,
            &close_k,
            &close_i,
            &close_to,
            &open_k,
            &open_i,
            &open_from,
            &open_to,
            &counts.block_keys,
            &counts.blocks,
            &counts.block_starts,
            &counts.block_ups,
            &counts.block_downs,
            &time_t,
            &time_p,
            &creation_p,
            &creation_i,
            &hash_p,
            &hash_h,
            &version_i,
            &version_p,
            &version_v,
            &moved.is_some(),
            &head_position,
            &head_hash,
            &NOTIFY_CHANNEL,
            &notified,
        ];
        tx.tx
            .execute(&statement, &params)
            .map(|_| ())
            .map_err(Attempt::Pg)
    }
}

/// The counts a batch moved, as the flush writes them.
#[derive(Default)]
struct Counts {
    zero: Vec<Vec<u8>>,
    set_keys: Vec<Vec<u8>>,
    set_counts: Vec<i64>,
    block_keys: Vec<Vec<u8>>,
    blocks: Vec<i64>,
    block_starts: Vec<i64>,
    block_ups: Vec<i64>,
    block_downs: Vec<i64>,
}

impl Counts {
    /// Applies the moves in order to the stored counts (read in one statement), and
    /// gathers those of instance events into their count blocks.
    fn apply(
        tx: &mut Flush<'_, '_>,
        moves: Vec<(Vec<u8>, bool, Option<u64>)>,
    ) -> Result<Counts, Attempt> {
        let mut out = Counts::default();
        if moves.is_empty() {
            return Ok(out);
        }
        let keys: Vec<&[u8]> = moves
            .iter()
            .map(|(k, _, _)| k.as_slice())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let statement = tx.statement(READ_COUNTS).map_err(Attempt::Pg)?;
        let mut counts: HashMap<Vec<u8>, u64> = tx
            .tx
            .query(&statement, &[&keys])
            .map_err(Attempt::Pg)?
            .iter()
            .map(|r| (r.get::<_, Vec<u8>>(0), unpos(r.get(1))))
            .collect();
        // A block begun by an earlier batch is started here at the count before this
        // batch's first move in it; the flush keeps the stored start of such a block.
        let mut blocks: BTreeMap<(Vec<u8>, u64), Moves> = BTreeMap::new();
        for (key, up, at) in moves {
            let count = counts.entry(key.clone()).or_insert(0);
            if let Some(at) = at {
                blocks
                    .entry((key, count_blocks::block_of(at)))
                    .or_insert_with(|| Moves::starting(*count))
                    .shift(at, up)
                    .map_err(|MovedTwice| {
                        Attempt::Store(corrupt(
                            "count history",
                            format!("two moves one way at position {at}"),
                        ))
                    })?;
            }
            *count = shifted(*count, up);
        }
        for (k, n) in counts {
            match n {
                0 => out.zero.push(k),
                n => {
                    out.set_keys.push(k);
                    out.set_counts.push(pos(n));
                }
            }
        }
        for ((key, block), moves) in blocks {
            let (start, ups, downs) = moves.row();
            out.block_keys.push(key);
            out.blocks.push(pos(block));
            out.block_starts.push(pos(start));
            out.block_ups.push(signed(ups));
            out.block_downs.push(signed(downs));
        }
        Ok(out)
    }
}
