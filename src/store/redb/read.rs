//! The embedded store's read snapshot: one redb read transaction (MVCC), with the tables a
//! page walks opened once per snapshot.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use ::redb::{ReadOnlyTable, ReadTransaction, ReadableTable};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::super::compact;
use super::super::envelope::Envelope;
use super::super::projection::{StateHash, decode_json, key_digest, time_key};
use super::super::{Cut, Head, Ids, Snapshot, StoreError};
use super::keys::KeyNumbers;
use super::tables::*;
use crate::domain::catalog::Resource;
use crate::domain::identity::User;
use crate::domain::instance::Instance;
use crate::domain::lifecycle::State;

pub(super) struct RedbRead {
    pub(super) txn: ReadTransaction,
    keys: Arc<KeyNumbers>,
    /// Key numbers looked up in this snapshot (`None`: the key was never used).
    numbers: RefCell<HashMap<Vec<u8>, Option<u32>>>,
    index: OnceCell<ReadOnlyTable<(u32, u128), ()>>,
    history: OnceCell<ReadOnlyTable<(u32, u128, u64), u64>>,
}

/// Gets a table opened once per snapshot (leapfrog pages seek it many times).
fn cached<'c, K: ::redb::Key + 'static, V: ::redb::Value + 'static>(
    cell: &'c OnceCell<ReadOnlyTable<K, V>>,
    txn: &ReadTransaction,
    def: ::redb::TableDefinition<'static, K, V>,
) -> Result<&'c ReadOnlyTable<K, V>, StoreError> {
    if let Some(t) = cell.get() {
        return Ok(t);
    }
    let table = txn.open_table(def).map_err(io)?;
    Ok(cell.get_or_init(|| table))
}

impl RedbRead {
    pub(super) fn new(txn: ReadTransaction, keys: Arc<KeyNumbers>) -> RedbRead {
        RedbRead {
            txn,
            keys,
            numbers: RefCell::new(HashMap::new()),
            index: OnceCell::new(),
            history: OnceCell::new(),
        }
    }

    /// The key's number (a page looks the same keys up many times).
    fn number(&self, key: &[u8]) -> Result<Option<u32>, StoreError> {
        if let Some(n) = self.numbers.borrow().get(key) {
            return Ok(*n);
        }
        let n = self.keys.get(&key_digest(key));
        self.numbers.borrow_mut().insert(key.to_vec(), n);
        Ok(n)
    }

    fn event(
        &self,
        events: &impl ReadableTable<u64, &'static [u8]>,
        pos: u64,
    ) -> Result<Envelope, StoreError> {
        let guard = events
            .get(pos)
            .map_err(io)?
            .ok_or_else(|| corrupt(format!("position {pos}"), "missing event"))?;
        let (_, body) = split_record(pos, guard.value())?;
        decode_json(&format!("position {pos}"), body)
    }

    fn decoded<T: serde::de::DeserializeOwned>(
        &self,
        def: ::redb::TableDefinition<'static, u128, &'static [u8]>,
        id: Uuid,
        what: &str,
    ) -> Result<Option<T>, StoreError> {
        let t = self.txn.open_table(def).map_err(io)?;
        let guard = t.get(id.as_u128()).map_err(io)?;
        guard
            .map(|g| decode_json(&format!("{what} {id}"), g.value()))
            .transpose()
    }
}

impl Snapshot for RedbRead {
    fn head(&self) -> Result<Head, StoreError> {
        read_head(&self.txn)
    }

    fn instance(&self, id: Uuid) -> Result<Option<Instance>, StoreError> {
        self.instance_at(id, u64::MAX)
    }

    fn instance_by_short_id(&self, short_id: &str) -> Result<Option<Uuid>, StoreError> {
        let Some(ordinal) = crate::domain::short_id::ordinal(short_id) else {
            return Ok(None);
        };
        let t = self.txn.open_table(SHORT_IDS).map_err(io)?;
        Ok(t.get(ordinal)
            .map_err(io)?
            .map(|g| Uuid::from_u128(g.value())))
    }

    fn user(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        self.decoded(USERS, id, "user")
    }

    fn resource(&self, id: Uuid) -> Result<Option<Resource>, StoreError> {
        self.decoded(RESOURCES, id, "resource")
    }

    fn idempotency(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let t = self.txn.open_table(IDEMPOTENCY).map_err(io)?;
        Ok(t.get(key).map_err(io)?.map(|g| g.value().to_vec()))
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

    fn read_all(&self, after: u64, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        let events = self.txn.open_table(EVENTS).map_err(io)?;
        let mut out = Vec::new();
        for row in events
            .range(after.saturating_add(1)..)
            .map_err(io)?
            .take(limit)
        {
            let (pos, stored) = row.map_err(io)?;
            let pos = pos.value();
            let (_, body) = split_record(pos, stored.value())?;
            out.push(decode_json(&format!("position {pos}"), body)?);
        }
        Ok(out)
    }

    fn run(&self, key: &[u8], from: u128, limit: usize) -> Ids {
        let Some(k) = self.number(key)? else {
            return Ok(Vec::new());
        };
        let index = cached(&self.index, &self.txn, INDEX)?;
        index
            .range((k, from)..=(k, u128::MAX))
            .map_err(io)?
            .take(limit)
            .map(|row| Ok(row.map_err(io)?.0.value().1))
            .collect()
    }

    fn count(&self, key: &[u8]) -> Result<u64, StoreError> {
        let Some(k) = self.number(key)? else {
            return Ok(0);
        };
        let counts = self.txn.open_table(INDEX_COUNTS).map_err(io)?;
        if let Some(n) = counts.get(k).map_err(io)? {
            return Ok(n.value());
        }
        // Instance keys keep their count in the count history only.
        let history = self.txn.open_table(COUNT_HISTORY).map_err(io)?;
        last_count(&history, k, u64::MAX)
    }

    fn count_in_state(&self, key: &[u8], state: State) -> Result<Option<u64>, StoreError> {
        let Some(k) = self.number(key)? else {
            return Ok(Some(0));
        };
        let pair = (k, state_code(state));
        // A pair lives in one of the two tables: with its history or without.
        let counts = self.txn.open_table(STATE_COUNTS).map_err(io)?;
        if let Some(n) = counts.get(pair).map_err(io)? {
            return Ok(Some(n.value()));
        }
        let history = self.txn.open_table(STATE_COUNT_HISTORY).map_err(io)?;
        last_state_count(&history, pair, u64::MAX).map(Some)
    }

    fn count_in_state_at(
        &self,
        key: &[u8],
        state: State,
        position: u64,
    ) -> Result<Option<u64>, StoreError> {
        let Some(k) = self.number(key)? else {
            return Ok(Some(0));
        };
        let history = self.txn.open_table(STATE_COUNT_HISTORY).map_err(io)?;
        last_state_count(&history, (k, state_code(state)), position).map(Some)
    }

    /// A point lookup: a range would cost a second descent for its upper bound.
    fn contains(&self, key: &[u8], id: u128) -> Result<bool, StoreError> {
        let Some(k) = self.number(key)? else {
            return Ok(false);
        };
        let index = cached(&self.index, &self.txn, INDEX)?;
        Ok(index.get((k, id)).map_err(io)?.is_some())
    }

    fn position_at(&self, at: DateTime<Utc>) -> Result<u64, StoreError> {
        let times = self.txn.open_table(TIMES).map_err(io)?;
        let last = times.range(..=time_key(at)).map_err(io)?.next_back();
        match last {
            Some(row) => Ok(row.map_err(io)?.1.value()),
            None => Ok(0),
        }
    }

    fn instance_at(&self, id: Uuid, position: u64) -> Result<Option<Instance>, StoreError> {
        let versions = self.txn.open_table(VERSIONS).map_err(io)?;
        let current = self.txn.open_table(CURRENT).map_err(io)?;
        let (at, view) = match current_view(&current, &versions, id.as_u128())? {
            None => return Ok(None),
            Some(c) if c.position <= position => (c.position, c.view),
            Some(_) => {
                let streams = self.txn.open_table(STREAMS).map_err(io)?;
                let Some(at) = last_event_at(&streams, id.as_u128(), position)? else {
                    return Ok(None);
                };
                let row = versions.get(at).map_err(io)?.ok_or_else(|| {
                    corrupt(format!("instance {id} at position {at}"), "missing view")
                })?;
                (at, split_version(at, row.value())?.1.to_vec())
            }
        };
        compact::decode(&format!("instance {id} at position {at}"), &view).map(Some)
    }

    fn last_created(&self, position: u64) -> Result<Option<u128>, StoreError> {
        let creations = self.txn.open_table(CREATIONS).map_err(io)?;
        match creations.range(..=position).map_err(io)?.next_back() {
            Some(row) => Ok(Some(row.map_err(io)?.1.value())),
            None => Ok(None),
        }
    }

    /// One key's history intervals in `from..=last`, kept where they hold the position.
    fn run_at(&self, key: &[u8], from: u128, cut: Cut, limit: usize) -> Ids {
        let Cut { position, last } = cut;
        let mut out = Vec::new();
        if from > last || limit == 0 {
            return Ok(out);
        }
        let Some(k) = self.number(key)? else {
            return Ok(out);
        };
        let history = cached(&self.history, &self.txn, HISTORY)?;
        for row in history
            .range((k, from, 0)..=(k, last, u64::MAX))
            .map_err(io)?
        {
            let (entry, to) = row.map_err(io)?;
            let (_, id, start) = entry.value();
            // An id's intervals under one key never overlap: at most one holds `position`.
            if start <= position && position < to.value() {
                out.push(id);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Only the id's last interval opened at or before the position can hold it (an id's
    /// intervals under one key never overlap), so one step back from the position decides.
    fn contains_at(&self, key: &[u8], id: u128, cut: Cut) -> Result<bool, StoreError> {
        let Some(k) = self.number(key)? else {
            return Ok(false);
        };
        let history = cached(&self.history, &self.txn, HISTORY)?;
        let last = history
            .range((k, id, 0)..=(k, id, cut.position))
            .map_err(io)?
            .next_back();
        match last {
            None => Ok(false),
            Some(row) => Ok(cut.position < row.map_err(io)?.1.value()),
        }
    }

    fn count_at(&self, key: &[u8], position: u64) -> Result<u64, StoreError> {
        let Some(k) = self.number(key)? else {
            return Ok(0);
        };
        let counts = self.txn.open_table(COUNT_HISTORY).map_err(io)?;
        last_count(&counts, k, position)
    }

    fn event_hash(&self, position: u64) -> Result<[u8; 32], StoreError> {
        let events = self.txn.open_table(EVENTS).map_err(io)?;
        let guard = events
            .get(position)
            .map_err(io)?
            .ok_or_else(|| corrupt(format!("position {position}"), "missing event"))?;
        let (hash, _) = split_record(position, guard.value())?;
        let mut out = [0u8; 32];
        out.copy_from_slice(hash);
        Ok(out)
    }

    fn state_hash_at(&self, position: u64) -> Result<[u8; 32], StoreError> {
        let versions = self.txn.open_table(VERSIONS).map_err(io)?;
        let last = versions.range(..=position).map_err(io)?.next_back();
        match last {
            Some(row) => {
                let (at, row) = row.map_err(io)?;
                let (hash, _) = split_version(at.value(), row.value())?;
                Ok(StateHash::from_bytes(hash).to_bytes())
            }
            None => Ok(StateHash::default().to_bytes()),
        }
    }
}
