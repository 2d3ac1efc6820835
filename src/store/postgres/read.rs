//! The PostgreSQL read snapshot: one `REPEATABLE READ READ ONLY` transaction on a pooled
//! connection, with prepared statements per connection. Index runs are one ordered range
//! query each (uuid order is byte order, as in the embedded store).

use chrono::{DateTime, Utc};
use postgres::types::ToSql;
use uuid::Uuid;

use super::super::compact;
use super::super::count_blocks::{self, Moves};
use super::super::envelope::Envelope;
use super::super::projection::{StateHash, decode_json, key_digest, time_key};
use super::super::{Cut, Head, Ids, Snapshot, StoreError};
use super::{Conn, PgStore, bits, corrupt, hash32, pg, pos, unpos};
use crate::domain::catalog::Resource;
use crate::domain::identity::User;
use crate::domain::instance::Instance;

pub(super) struct PgRead<'s> {
    pub(super) store: &'s PgStore,
    pub(super) conn: std::cell::RefCell<Option<Conn>>,
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

fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
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

    fn view<T: serde::de::DeserializeOwned>(
        &self,
        sql: &'static str,
        id: Uuid,
        what: &str,
    ) -> Result<Option<T>, StoreError> {
        self.first(sql, &[&id])?
            .map(|r| decode_json(&format!("{what} {id}"), r.get::<_, &[u8]>(0)))
            .transpose()
    }
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
            .map(|r| compact::decode(&format!("instance {id}"), r.get::<_, &[u8]>(0)))
            .transpose()
    }

    fn instance_by_short_id(&self, short_id: &str) -> Result<Option<Uuid>, StoreError> {
        Ok(self
            .first("SELECT id FROM short_ids WHERE short_id = $1", &[&short_id])?
            .map(|r| r.get(0)))
    }

    fn resource(&self, id: Uuid) -> Result<Option<Resource>, StoreError> {
        self.view("SELECT view FROM resources WHERE id = $1", id, "resource")
    }

    fn resources(&self, ids: &[Uuid]) -> Result<Vec<Option<Resource>>, StoreError> {
        let rows = self.query(
            "SELECT id, view FROM resources WHERE id = ANY($1::uuid[])",
            &[&ids],
        )?;
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            let id: Uuid = row.get(0);
            let resource: Resource =
                decode_json(&format!("resource {id}"), row.get::<_, &[u8]>(1))?;
            found.insert(id, resource);
        }
        Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
    }

    fn user(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        self.view("SELECT view FROM users WHERE id = $1", id, "user")
    }

    fn idempotency(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .first("SELECT record FROM idempotency WHERE key = $1", &[&key])?
            .map(|r| r.get(0)))
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

    fn run(&self, key: &[u8], from: u128, limit: usize) -> Ids {
        let key = key_digest(key);
        let key = key.as_slice();
        Ok(Self::ids(self.query(
            "SELECT id FROM index_entries WHERE key = $1 AND id >= $2 ORDER BY id LIMIT $3",
            &[&key, &Uuid::from_u128(from), &limit_param(limit)],
        )?))
    }

    /// One round trip for the whole chunk instead of one per id.
    fn members(&self, key: &[u8], ids: &[u128]) -> Ids {
        let key = key_digest(key);
        let key = key.as_slice();
        let ids: Vec<Uuid> = ids.iter().copied().map(Uuid::from_u128).collect();
        Ok(Self::ids(self.query(
            "SELECT id FROM index_entries WHERE key = $1 AND id = ANY($2::uuid[]) ORDER BY id",
            &[&key, &ids],
        )?))
    }

    fn count(&self, key: &[u8]) -> Result<u64, StoreError> {
        let key = key_digest(key);
        let key = key.as_slice();
        Ok(self
            .first("SELECT count FROM index_counts WHERE key = $1", &[&key])?
            .map(|r| unpos(r.get(0)))
            .unwrap_or(0))
    }

    fn position_at(&self, at: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(self
            .first(
                "SELECT position FROM times WHERE at_ns <= $1 ORDER BY at_ns DESC LIMIT 1",
                &[&time_key(at)],
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
            compact::decode(
                &format!("instance {id} at position {at}"),
                r.get::<_, &[u8]>(1),
            )
        })
        .transpose()
    }

    fn last_created(&self, position: u64) -> Result<Option<u128>, StoreError> {
        Ok(self
            .first(
                "SELECT id FROM creations WHERE position <= $1 ORDER BY position DESC LIMIT 1",
                &[&pos(position)],
            )?
            .map(|r| r.get::<_, Uuid>(0).as_u128()))
    }

    fn run_at(&self, key: &[u8], from: u128, cut: Cut, limit: usize) -> Ids {
        let key = key_digest(key);
        let key = key.as_slice();
        let Cut { position, last } = cut;
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
                &limit_param(limit),
            ],
        )?))
    }

    /// An id's intervals under one key never overlap: at most one row per id holds.
    fn members_at(&self, key: &[u8], ids: &[u128], cut: Cut) -> Ids {
        let key = key_digest(key);
        let key = key.as_slice();
        let ids: Vec<Uuid> = ids.iter().copied().map(Uuid::from_u128).collect();
        Ok(Self::ids(self.query(
            "SELECT id FROM history WHERE key = $1 AND id = ANY($2::uuid[])
               AND from_position <= $3 AND (to_position IS NULL OR to_position > $3)
             ORDER BY id",
            &[&key, &ids, &pos(cut.position)],
        )?))
    }

    fn count_at(&self, key: &[u8], position: u64) -> Result<u64, StoreError> {
        let key = key_digest(key);
        let key = key.as_slice();
        let block = count_blocks::block_of(position);
        let row = self.first(
            "SELECT block, start, ups, downs FROM count_blocks WHERE key = $1 AND block <= $2
             ORDER BY block DESC LIMIT 1",
            &[&key, &pos(block)],
        )?;
        Ok(match row {
            None => 0,
            Some(r) => Moves::from_row((unpos(r.get(1)), bits(r.get(2)), bits(r.get(3))))
                .after(unpos(r.get(0)), position),
        })
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
