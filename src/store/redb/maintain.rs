//! Maintenance of the embedded store: the start-up tail check, `verify` (chain plus a
//! rebuild in memory compared table by table), `rebuild` in place, and `export`.

use ::redb::{
    Builder, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, TableHandle,
    WriteTransaction,
};

use super::super::chain::Chain;
use super::super::envelope;
use super::super::{ExportRange, Head, Maintenance, PROGRESS_EVERY, StoreError, VerifyReport};
use super::RedbStore;
use super::keys::KeyNumbers;
use super::tables::*;
use super::write::{drop_projection, open_projection};

/// Replays every event of `events` into the projection tables of `into`, checking the
/// chain as it goes ([`Chain`]) and calling `progress` with the events done so far.
/// Returns the walk, ending at the last event, and the key numbers it gave (`into` starts
/// without projections).
fn replay(
    events: &impl ReadableTable<u64, &'static [u8]>,
    into: &WriteTransaction,
    progress: &dyn Fn(u64),
) -> Result<(Chain, KeyNumbers), StoreError> {
    let none = KeyNumbers::default();
    let (mut tables, mut projector) = open_projection(into, &none)?;
    let mut chain = Chain::new();
    for row in events.iter().map_err(io)? {
        let (pos, stored) = row.map_err(io)?;
        let pos = pos.value();
        let (hash, body) = split_record(pos, stored.value())?;
        let event = chain.next(pos, Some(hash), body)?;
        projector.apply(&mut tables, &event.env, &event.payload)?;
        if pos % PROGRESS_EVERY == 0 {
            progress(pos);
        }
    }
    progress(chain.head().position);
    Ok((chain, KeyNumbers::from(tables.finish()?)))
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
    let key_of = |k: &[u8]| envelope::hex(&k[..k.len().min(24)]);
    let differs = |what: String| {
        Err(corrupt(
            format!("projection {name}"),
            format!("{what} (compared with a rebuild from the log)"),
        ))
    };
    let (mut a_row, mut b_row) = (ia.next(), ib.next());
    loop {
        match (a_row.take(), b_row.take()) {
            (None, None) => return Ok(n),
            (Some(x), Some(y)) => {
                let (ka, va) = x.map_err(io)?;
                let (kb, vb) = y.map_err(io)?;
                let ka: Vec<u8> = K::as_bytes(&ka.value()).as_ref().to_vec();
                let kb: Vec<u8> = K::as_bytes(&kb.value()).as_ref().to_vec();
                let (ka, kb) = (ka.as_slice(), kb.as_slice());
                // Keys in the same order on both sides: the first unequal pair says which
                // side lacks an entry.
                match K::compare(ka, kb) {
                    std::cmp::Ordering::Less => {
                        return differs(format!("extra entry {}", key_of(ka)));
                    }
                    std::cmp::Ordering::Greater => {
                        return differs(format!("missing entry {}", key_of(kb)));
                    }
                    std::cmp::Ordering::Equal => {}
                }
                if V::as_bytes(&va.value()).as_ref() != V::as_bytes(&vb.value()).as_ref() {
                    return differs(format!("entry {} differs", key_of(ka)));
                }
                n += 1;
                (a_row, b_row) = (ia.next(), ib.next());
            }
            (Some(x), None) => {
                let (ka, _) = x.map_err(io)?;
                return differs(format!(
                    "extra entry {}",
                    key_of(K::as_bytes(&ka.value()).as_ref())
                ));
            }
            (None, Some(y)) => {
                let (kb, _) = y.map_err(io)?;
                return differs(format!(
                    "missing entry {}",
                    key_of(K::as_bytes(&kb.value()).as_ref())
                ));
            }
        }
    }
}

impl Maintenance for RedbStore {
    fn check_tail(&self) -> Result<Head, StoreError> {
        let read = begin_read(&*self.db()?)?;
        let head = read_head(&read)?;
        let events = read.open_table(EVENTS).map_err(io)?;
        let last = events.last().map_err(io)?;
        match (head.position, last) {
            (0, None) => Ok(head),
            (_, Some((pos, stored))) if pos.value() == head.position => {
                let (hash, body) = split_record(head.position, stored.value())?;
                if hash != head.hash || envelope::hash(body) != head.hash {
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

    fn verify_with(&self, progress: &dyn Fn(u64)) -> Result<VerifyReport, StoreError> {
        let read = begin_read(&*self.db()?)?;
        let events = read.open_table(EVENTS).map_err(io)?;
        let scratch = Builder::new()
            .create_with_backend(::redb::backends::InMemoryBackend::new())
            .map_err(io)?;
        let txn = scratch.begin_write().map_err(io)?;
        let (chain, _) = replay(&events, &txn, progress)?;
        txn.commit().map_err(io)?;
        let head = read_head(&read)?;
        chain.ends_at(head)?;
        let rebuilt = scratch.begin_read().map_err(io)?;
        let report = VerifyReport {
            events: head.position,
            // Every instance ever created (purged ones included) has one creation.
            instances: compare(&read, &rebuilt, CREATIONS)?,
            index_entries: compare(&read, &rebuilt, INDEX)?,
            head,
        };
        compare(&read, &rebuilt, RESOURCES)?;
        compare(&read, &rebuilt, USERS)?;
        compare(&read, &rebuilt, SHORT_IDS)?;
        compare(&read, &rebuilt, KEY_DIGESTS)?;
        compare(&read, &rebuilt, INDEX_COUNTS)?;
        compare(&read, &rebuilt, STATE_COUNTS)?;
        compare(&read, &rebuilt, STATE_COUNT_HISTORY)?;
        compare(&read, &rebuilt, HISTORY)?;
        compare(&read, &rebuilt, COUNT_HISTORY)?;
        compare(&read, &rebuilt, TIMES)?;
        compare(&read, &rebuilt, VERSIONS)?;
        compare(&read, &rebuilt, CURRENT)?;
        Ok(report)
    }

    /// One write transaction: drop the projections, replay the log into them, commit.
    /// Any damage to the log aborts it, leaving the store as it was. The key numbers in
    /// memory change with the commit: a rebuild runs before the server serves (at
    /// start-up, or offline), with no snapshot open that could mix the two numberings.
    fn rebuild_with(&self, progress: &dyn Fn(u64)) -> Result<u64, StoreError> {
        let txn = self.db()?.begin_write().map_err(io)?;
        drop_projection(&txn)?;
        let (chain, numbered) = {
            let events = txn.open_table(EVENTS).map_err(io)?;
            replay(&events, &txn, progress)?
        };
        let head = {
            let meta = txn.open_table(META).map_err(io)?;
            let guard = meta.get(HEAD_KEY).map_err(io)?;
            decode_head(guard.as_ref().map(|g| g.value()))?
        };
        chain.ends_at(head)?;
        txn.open_table(META)
            .map_err(io)?
            .insert(
                PROJECTION_VERSION_KEY,
                super::super::projection::VERSION.to_be_bytes().as_slice(),
            )
            .map_err(io)?;
        txn.commit().map_err(io)?;
        self.keys.replace(numbered);
        Ok(head.position)
    }

    fn projection_version(&self) -> Result<u32, StoreError> {
        let read = begin_read(&*self.db()?)?;
        let meta = read.open_table(META).map_err(io)?;
        let guard = meta.get(PROJECTION_VERSION_KEY).map_err(io)?;
        match guard.as_ref().map(|g| g.value()) {
            None => Ok(1),
            Some(raw) => {
                let bytes: [u8; 4] = raw
                    .try_into()
                    .map_err(|_| corrupt("projection version", "unexpected length"))?;
                Ok(u32::from_be_bytes(bytes))
            }
        }
    }

    fn export(
        &self,
        range: &ExportRange,
        out: &mut dyn std::io::Write,
        progress: &dyn Fn(u64),
    ) -> Result<u64, StoreError> {
        let read = begin_read(&*self.db()?)?;
        let events = read.open_table(EVENTS).map_err(io)?;
        let mut n = 0;
        let rows = events
            .range(range.from.max(1)..=range.to.unwrap_or(u64::MAX))
            .map_err(io)?;
        for row in rows {
            let (pos, stored) = row.map_err(io)?;
            let pos = pos.value();
            let (_, body) = split_record(pos, stored.value())?;
            if range.includes(pos, body)? {
                out.write_all(body).map_err(io)?;
                out.write_all(b"\n").map_err(io)?;
                n += 1;
            }
            if pos % PROGRESS_EVERY == 0 {
                progress(pos);
            }
        }
        out.flush().map_err(io)?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::{CatalogEvent, Spec};
    use crate::store::envelope::{NewEvent, Payload, Provenance};
    use crate::store::{EventStore, StreamKind};
    use uuid::Uuid;

    fn provenance() -> Provenance {
        Provenance {
            actor: "t".into(),
            token_id: None,
            request_id: "r".into(),
            origin: "native".into(),
            idempotency_key: None,
        }
    }

    fn image(stream_id: Uuid, version: u64, name: String) -> NewEvent {
        NewEvent {
            stream_id,
            version,
            kind: StreamKind::Image,
            payload: Payload::Catalog(CatalogEvent::ImageCreated(Spec::Named { name })),
            at: chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("time"),
            provenance: provenance(),
        }
    }

    fn store_with_events(n: usize) -> (tempfile::TempDir, RedbStore) {
        let dir = tempfile::tempdir().expect("dir");
        let store = RedbStore::open(dir.path()).expect("open");
        store
            .write(&mut |txn| {
                for i in 0..n {
                    txn.append(image(Uuid::now_v7(), 1, format!("img-{i}")))?;
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
        let txn = store.db().expect("db").begin_write().expect("txn");
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
            txn.append(image(stream, 1, "again".into()))?;
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
            let read = store.db().expect("db").begin_read().expect("read");
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
    fn a_drifted_projection_is_detected_and_a_rebuild_repairs_it() {
        let (_dir, store) = store_with_events(3);
        let id = {
            let read = store.db().expect("db").begin_read().expect("read");
            let t = read.open_table(RESOURCES).expect("table");
            let first = t.iter().expect("iter").next().expect("row").expect("row");
            first.0.value()
        };
        tamper(&store, RESOURCES, id, 10);
        match store.verify() {
            Err(StoreError::Corrupt { at, .. }) => assert_eq!(at, "projection resources"),
            other => panic!("projection drift not detected: {other:?}"),
        }
        assert_eq!(store.rebuild().expect("rebuild"), 3);
        store.verify().expect("a rebuild repairs projection damage");
    }

    #[test]
    fn projections_built_by_older_code_are_rebuilt_once() {
        let (_dir, store) = store_with_events(4);
        assert_eq!(
            store.projection_version().expect("version"),
            crate::store::projection::VERSION
        );
        assert_eq!(
            crate::store::ensure_current_projections(&store).expect("ensure"),
            None
        );
        // A ledger written before versions were recorded, with a projection it lacked.
        let txn = store.db().expect("db").begin_write().expect("txn");
        txn.open_table(META)
            .expect("meta")
            .remove(PROJECTION_VERSION_KEY)
            .expect("remove");
        txn.delete_table(INDEX).expect("drop index");
        txn.commit().expect("commit");
        assert_eq!(store.projection_version().expect("version"), 1);
        assert!(
            store.verify().is_err(),
            "the index differs from what today's code builds"
        );
        assert_eq!(
            crate::store::ensure_current_projections(&store).expect("ensure"),
            Some(4)
        );
        assert_eq!(
            store.projection_version().expect("version"),
            crate::store::projection::VERSION
        );
        store.verify().expect("rebuilt by today's code");
    }

    #[test]
    fn a_store_of_projection_version_4_loses_its_legacy_tables_in_the_upgrade() {
        let (_dir, store) = store_with_events(3);
        // The tables version 4 kept: current views apart, index entries by key bytes.
        let txn = store.db().expect("db").begin_write().expect("txn");
        txn.open_table(META)
            .expect("meta")
            .insert(PROJECTION_VERSION_KEY, 4u32.to_be_bytes().as_slice())
            .expect("version");
        for legacy in LEGACY_TABLES {
            txn.open_table(TableDefinition::<&[u8], &[u8]>::new(legacy))
                .expect("legacy table")
                .insert(b"key".as_slice(), b"old".as_slice())
                .expect("row");
        }
        txn.commit().expect("commit");
        assert_eq!(
            crate::store::ensure_current_projections(&store).expect("ensure"),
            Some(3)
        );
        let read = store.db().expect("db").begin_read().expect("read");
        let names: Vec<String> = read
            .list_tables()
            .expect("tables")
            .map(|t| t.name().to_string())
            .collect();
        for legacy in LEGACY_TABLES {
            assert!(
                !names.iter().any(|n| n == legacy),
                "{legacy} left: {names:?}"
            );
        }
        store.verify().expect("rebuilt by today's code");
    }

    #[test]
    fn a_rebuild_refuses_a_damaged_log_and_changes_nothing() {
        let (_dir, store) = store_with_events(3);
        tamper(&store, EVENTS, 2, 40);
        match store.rebuild() {
            Err(StoreError::Corrupt { at, .. }) => assert_eq!(at, "position 2"),
            other => panic!("a damaged log was rebuilt over: {other:?}"),
        }
        tamper(&store, EVENTS, 2, 40);
        store
            .verify()
            .expect("the projections were left as they were");
    }
}
