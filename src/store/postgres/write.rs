//! The PostgreSQL write transaction: lock the head row, decide against the latest state
//! of every node, buffer the appends and their projections, flush, commit.

use std::collections::{HashMap, HashSet};

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Statement, Transaction};
use uuid::Uuid;

use super::super::chain::{Checked, follows};
use super::super::compact;
use super::super::envelope::{Envelope, NewEvent, Payload};
use super::super::projection::{
    ProjectionTables, Projector, StateHash, StoredView, decode_json, key_digest,
};
use super::super::{Head, StoreError, WriteTxn};
use super::buffer::{Buffer, Flush, View};
use super::{Conn, PgStore, hash32, pg, pos, unpos};
use crate::domain::catalog::Resource;
use crate::domain::identity::User;
use crate::domain::instance::Instance;

impl PgStore {
    /// One attempt at a batch: lock the head, run `f` against buffered tables, flush and
    /// commit. Returns the raw PostgreSQL error for flush failures so the caller can tell
    /// conflicts (re-run) from outages.
    ///
    /// A re-run (`rerun`) looks short ids up for real: the clash that failed the previous
    /// attempt may have been one.
    pub(super) fn attempt(
        conn: &mut Conn,
        f: &mut dyn FnMut(&mut dyn WriteTxn) -> Result<(), StoreError>,
        rerun: bool,
    ) -> Result<(), Attempt> {
        let Conn {
            client,
            statements,
            last_commit,
            permit: _,
        } = conn;
        let mut tx = client.transaction().map_err(Attempt::Pg)?;
        let locked = Conn::prepare(
            &mut tx,
            statements,
            "SELECT position, hash FROM head FOR UPDATE",
        )
        .map_err(Attempt::Store)?;
        let row = tx.query_one(&locked, &[]).map_err(Attempt::Pg)?;
        let head = Head {
            position: unpos(row.get(0)),
            hash: hash32(row.get::<_, &[u8]>(1)).map_err(Attempt::Store)?,
        };
        // The state hash follows from the log: unless another node committed since this
        // connection's last batch, it is the one that batch ended with.
        let state_hash = match last_commit.take() {
            Some((at, hash)) if at == head => hash,
            _ => {
                let last = Conn::prepare(
                    &mut tx,
                    statements,
                    "SELECT hash FROM state_hashes ORDER BY position DESC LIMIT 1",
                )
                .map_err(Attempt::Store)?;
                tx.query_opt(&last, &[])
                    .map_err(Attempt::Pg)?
                    .map(|r| StateHash::from_bytes(r.get::<_, &[u8]>(0)))
                    .unwrap_or_default()
            }
        };
        let mut w = PgWrite {
            tx: &mut tx,
            statements,
            buf: Buffer::default(),
            projector: Projector::new(state_hash),
            head,
            dirty: false,
            rerun,
        };
        f(&mut w).map_err(Attempt::Store)?;
        if !w.dirty {
            drop(w);
            tx.rollback().map_err(Attempt::Pg)?;
            *last_commit = Some((head, state_hash));
            return Ok(());
        }
        let new_head = w.head;
        let new_state_hash = w.projector.state_hash;
        let buf = std::mem::take(&mut w.buf);
        drop(w);
        buf.flush(
            &mut Flush {
                tx: &mut tx,
                statements,
            },
            (new_head != head).then_some(new_head),
        )?;
        tx.commit().map_err(Attempt::Pg)?;
        *last_commit = Some((new_head, new_state_hash));
        Ok(())
    }
}

pub(super) enum Attempt {
    Pg(postgres::Error),
    Store(StoreError),
}

pub(super) fn retryable(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE
            || *c == SqlState::T_R_DEADLOCK_DETECTED
            || *c == SqlState::UNIQUE_VIOLATION
    )
}

pub(super) struct PgWrite<'a, 'c> {
    pub(super) tx: &'a mut Transaction<'c>,
    pub(super) statements: &'a mut HashMap<&'static str, Statement>,
    pub(super) buf: Buffer,
    pub(super) projector: Projector,
    pub(super) head: Head,
    pub(super) dirty: bool,
    pub(super) rerun: bool,
}

impl PgWrite<'_, '_> {
    /// Projects one event into this transaction's tables (buffered).
    pub(super) fn project(&mut self, env: &Envelope, payload: &Payload) -> Result<(), StoreError> {
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
        if let Some(v) = self.buf.fetched.get(&(table, id)) {
            return Ok(v.clone());
        }
        let sql = match table {
            View::Instance => "SELECT view FROM instances WHERE id = $1",
            View::Resource => "SELECT view FROM resources WHERE id = $1",
            View::User => "SELECT view FROM users WHERE id = $1",
        };
        let view = self.query_opt(sql, &[&id])?.map(|r| r.get::<_, Vec<u8>>(0));
        self.buf.fetched.insert((table, id), view.clone());
        Ok(view)
    }
}

impl ProjectionTables for PgWrite<'_, '_> {
    /// PostgreSQL keeps no state-hash terms: the projector computes the old one.
    fn instance_bytes(&mut self, id: Uuid) -> Result<Option<StoredView>, StoreError> {
        Ok(self.view(View::Instance, id)?.map(|view| (view, None)))
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
        let key = key_digest(key);
        let key = key.as_slice();
        self.buf.index.insert((key.to_vec(), id), true);
        Ok(())
    }

    fn index_remove(&mut self, key: &[u8], id: Uuid) -> Result<(), StoreError> {
        let key = key_digest(key);
        let key = key.as_slice();
        self.buf.index.insert((key.to_vec(), id), false);
        Ok(())
    }

    fn shift_count(
        &mut self,
        key: &[u8],
        up: bool,
        history: Option<u64>,
    ) -> Result<(), StoreError> {
        let key = key_digest(key);
        let key = key.as_slice();
        self.buf.count_moves.push((key.to_vec(), up, history));
        Ok(())
    }

    fn open_interval(&mut self, key: &[u8], id: Uuid, position: u64) -> Result<(), StoreError> {
        let key = key_digest(key);
        let key = key.as_slice();
        self.buf.opened.insert((key.to_vec(), id, position), None);
        Ok(())
    }

    fn close_interval(&mut self, key: &[u8], id: Uuid, position: u64) -> Result<(), StoreError> {
        let key = key_digest(key);
        let key = key.as_slice();
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

    fn record_time(&mut self, nanos: i64, position: u64) -> Result<(), StoreError> {
        self.buf.times.insert(nanos, position);
        Ok(())
    }

    fn record_creation(&mut self, position: u64, id: Uuid) -> Result<(), StoreError> {
        self.buf.creations.push((position, id));
        Ok(())
    }

    fn record_version(
        &mut self,
        id: Uuid,
        position: u64,
        state_hash: &[u8; 32],
        view: &[u8],
        _term: &[u8; 32],
    ) -> Result<(), StoreError> {
        self.buf.state_hashes.push((position, *state_hash));
        self.buf.versions.push((id, position, view.to_vec()));
        Ok(())
    }
}

impl WriteTxn for PgWrite<'_, '_> {
    fn instance(&mut self, id: Uuid) -> Result<Option<Instance>, StoreError> {
        self.view(View::Instance, id)?
            .map(|b| compact::decode(&format!("instance {id}"), &b))
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
        let key = key_digest(key);
        let key = key.as_slice();
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

    /// Only this batch's own short ids are looked at on a first attempt: a candidate is
    /// the id of a position after the head, which no other creation has had, so only an
    /// id minted at random long ago can clash. That rare clash is left to the table's
    /// primary key, whose violation re-runs the batch, and a re-run looks every candidate
    /// up. That saves a round trip per creation.
    fn short_id_taken(&mut self, short_id: &str) -> Result<bool, StoreError> {
        if self.buf.short_ids.contains_key(short_id) {
            return Ok(true);
        }
        if !self.rerun {
            return Ok(false);
        }
        Ok(self
            .query_opt("SELECT 1 FROM short_ids WHERE short_id = $1", &[&short_id])?
            .is_some())
    }

    fn idempotency(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(r) = self.buf.idempotency.get(key) {
            return Ok(Some(r.clone()));
        }
        if let Some(r) = self.buf.idempotency_read.get(key) {
            return Ok(r.clone());
        }
        let record = self
            .query_opt("SELECT record FROM idempotency WHERE key = $1", &[&key])?
            .map(|r| r.get::<_, Vec<u8>>(0));
        self.buf
            .idempotency_read
            .insert(key.to_string(), record.clone());
        Ok(record)
    }

    fn prefetch(&mut self, instances: &[Uuid], idempotency: &[String]) -> Result<(), StoreError> {
        // A batch often holds several requests for one instance.
        let instances: Vec<Uuid> = instances
            .iter()
            .copied()
            .filter(|id| {
                !self.buf.instances.contains_key(id)
                    && !self.buf.fetched.contains_key(&(View::Instance, *id))
            })
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if !instances.is_empty() {
            // An instance's stream version is its view's; the view is read once here.
            let mut views: HashMap<Uuid, Vec<u8>> = HashMap::new();
            for row in self.query(
                "SELECT i.id, i.view,
                        (SELECT max(e.version) FROM events e WHERE e.stream_id = i.id)
                 FROM instances i WHERE i.id = ANY($1::uuid[])",
                &[&instances],
            )? {
                let id: Uuid = row.get(0);
                if let Some(version) = row.get::<_, Option<i64>>(2) {
                    self.buf.stream_versions.entry(id).or_insert(unpos(version));
                }
                views.insert(id, row.get(1));
            }
            for id in instances {
                self.buf
                    .fetched
                    .insert((View::Instance, id), views.remove(&id));
            }
        }
        let keys: Vec<&String> = idempotency
            .iter()
            .filter(|k| {
                !self.buf.idempotency.contains_key(*k)
                    && !self.buf.idempotency_read.contains_key(*k)
            })
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if !keys.is_empty() {
            let mut records: HashMap<String, Vec<u8>> = self
                .query(
                    "SELECT key, record FROM idempotency WHERE key = ANY($1::text[])",
                    &[&keys],
                )?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            for key in keys {
                let record = records.remove(key);
                self.buf.idempotency_read.insert(key.clone(), record);
            }
        }
        Ok(())
    }

    fn mint_stream(&mut self) -> Uuid {
        let id = Uuid::now_v7();
        self.buf.stream_versions.insert(id, 0);
        for view in View::ALL {
            self.buf.fetched.insert((view, id), None);
        }
        id
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
        self.put(&sealed.env, sealed.body, sealed.hash, &sealed.payload)?;
        Ok(sealed.env)
    }

    fn append_checked(&mut self, event: &Checked, body: &[u8]) -> Result<(), StoreError> {
        let current = self.stream_version(event.env.stream_id)?;
        follows(&self.head, current, event)?;
        self.put(&event.env, body.to_vec(), event.hash, &event.payload)
    }
}

impl PgWrite<'_, '_> {
    /// Buffers one sealed event's row and projections and moves the head.
    fn put(
        &mut self,
        env: &Envelope,
        body: Vec<u8>,
        hash: [u8; 32],
        payload: &Payload,
    ) -> Result<(), StoreError> {
        let rows = &mut self.buf.events;
        rows.positions.push(pos(env.position));
        rows.streams.push(env.stream_id);
        rows.versions.push(pos(env.version));
        rows.hashes.push(hash.to_vec());
        rows.bodies.push(body);
        self.buf.stream_versions.insert(env.stream_id, env.version);
        self.project(env, payload)?;
        self.head = Head {
            position: env.position,
            hash,
        };
        self.dirty = true;
        Ok(())
    }
}
