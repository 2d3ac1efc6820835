//! The store contract, backend-neutral: appends at a stale version are refused and write
//! nothing, a transaction reads its own writes, a failed transaction leaves no trace, and
//! the log reads back gap-free in position order with a chained hash. Runs on both
//! backends.

use chrono::DateTime;
use instance_ledger::domain::catalog::{CatalogEvent, Spec};
use instance_ledger::store::envelope::{self, Payload, Provenance};
use instance_ledger::store::{NewEvent, StoreError, StreamKind};
use uuid::Uuid;

/// A catalog event: the smallest append a store test needs.
pub fn image(stream: Uuid, version: u64, name: &str) -> NewEvent {
    NewEvent {
        stream_id: stream,
        version,
        kind: StreamKind::Image,
        payload: Payload::Catalog(CatalogEvent::ImageCreated(Spec::Named {
            name: name.into(),
        })),
        at: DateTime::from_timestamp(1_700_000_000, 0).expect("time"),
        provenance: Provenance {
            actor: "t".into(),
            token_id: None,
            request_id: "r".into(),
            origin: "native".into(),
            idempotency_key: None,
        },
    }
}

on_each_backend!(#[test] fn a_stale_version_is_refused_and_the_whole_transaction_leaves_no_trace);
fn a_stale_version_is_refused_and_the_whole_transaction_leaves_no_trace() {
    let t = crate::harness::TestStore::open();
    let stream = Uuid::now_v7();
    t.store
        .write(&mut |txn| txn.append(image(stream, 1, "a")).map(|_| ()))
        .expect("first append");
    let other = Uuid::now_v7();
    let result = t.store.write(&mut |txn| {
        txn.append(image(other, 1, "written first"))?;
        txn.put_idempotency("k", b"record")?;
        txn.append(image(stream, 1, "again"))?;
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
    let snap = t.store.read().expect("read");
    assert_eq!(
        snap.head().expect("head").position,
        1,
        "nothing was written"
    );
    assert!(snap.stream(other).expect("stream").is_empty());
    assert_eq!(snap.resource(other).expect("resource"), None);
    assert_eq!(snap.idempotency("k").expect("idempotency"), None);
}

on_each_backend!(#[test] fn a_transaction_reads_its_own_writes_and_the_log_reads_back_chained);
fn a_transaction_reads_its_own_writes_and_the_log_reads_back_chained() {
    let t = crate::harness::TestStore::open();
    let streams: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    for round in 0..3 {
        t.store
            .write(&mut |txn| {
                for s in &streams {
                    let v = txn.stream_version(*s)? + 1;
                    txn.append(image(*s, v, &format!("r{round}")))?;
                    assert_eq!(txn.stream_version(*s)?, v, "sees its own append");
                    assert!(txn.resource(*s)?.is_some(), "sees its own projection");
                }
                txn.put_idempotency(&format!("k{round}"), b"x")?;
                assert_eq!(txn.idempotency(&format!("k{round}"))?, Some(b"x".to_vec()));
                Ok(())
            })
            .expect("write");
    }
    let snap = t.store.read().expect("read");
    let head = snap.head().expect("head");
    assert_eq!(head.position, 15);
    let log = snap.read_all(0, usize::MAX).expect("log");
    let mut prev = [0u8; 32];
    for (i, e) in log.iter().enumerate() {
        assert_eq!(e.position, i as u64 + 1, "gap-free, in order");
        assert_eq!(
            e.prev_hash,
            envelope::hex(&prev),
            "chained at {}",
            e.position
        );
        prev = snap.event_hash(e.position).expect("hash");
    }
    assert_eq!(prev, head.hash, "the head is the last event's hash");
    for s in &streams {
        let versions: Vec<u64> = snap
            .stream(*s)
            .expect("stream")
            .iter()
            .map(|e| e.version)
            .collect();
        assert_eq!(versions, vec![1, 2, 3]);
    }
    assert_eq!(snap.read_all(10, 3).expect("page").len(), 3);
}

/// A creation with the given short id, as the writer would append it.
fn created(stream: Uuid, short_id: &str) -> NewEvent {
    use instance_ledger::domain::instance;
    let id = Uuid::now_v7;
    let mut spec = crate::service::spec(id(), id(), id(), id());
    spec.short_id = short_id.into();
    spec.name = format!("vm-{short_id}");
    NewEvent {
        kind: StreamKind::Instance,
        payload: Payload::Instance(instance::Event::Created(Box::new(spec))),
        ..image(stream, 1, "unused")
    }
}

on_each_backend!(#[test] fn short_ids_minted_at_random_or_by_ordinal_are_found_before_and_after_a_rebuild);
fn short_ids_minted_at_random_or_by_ordinal_are_found_before_and_after_a_rebuild() {
    use instance_ledger::domain::short_id;
    use instance_ledger::projection::Filter;
    let t = crate::harness::TestStore::open();
    // Ledgers from before ordinals hold random ids; new ones are the ids of positions.
    let instances: Vec<(Uuid, String)> = [
        short_id::from_random(rand::random()),
        short_id::from_ordinal(2),
        short_id::from_ordinal(3),
        short_id::from_random(rand::random()),
    ]
    .into_iter()
    .map(|s| (Uuid::now_v7(), s))
    .collect();
    t.store
        .write(&mut |txn| {
            for (id, s) in &instances {
                assert!(!txn.short_id_taken(s)?, "{s} is free before its creation");
                txn.append(created(*id, s))?;
                assert!(
                    txn.short_id_taken(s)?,
                    "{s} is taken in its own transaction"
                );
            }
            Ok(())
        })
        .expect("write");
    let found = |when: &str| {
        let snap = t.store.read().expect("read");
        for (id, s) in &instances {
            assert_eq!(
                snap.instance_by_short_id(s).expect("lookup"),
                Some(*id),
                "{s} {when}"
            );
            // Each name is a key of its own, numbered anew by the rebuild.
            let name = Filter::Name(format!("vm-{s}")).index_key();
            assert_eq!(
                snap.seek(&name, 0).expect("seek").map(Uuid::from_u128),
                Some(*id),
                "the name of {s} {when}"
            );
        }
        let unused = short_id::from_ordinal(1_000_000);
        assert_eq!(snap.instance_by_short_id(&unused).expect("lookup"), None);
        assert_eq!(
            snap.instance_by_short_id("i-NOTVALID").expect("lookup"),
            None
        );
    };
    found("after the append");
    t.store.rebuild().expect("rebuild");
    found("after a rebuild");
}

on_each_backend!(#[test] fn resources_read_together_come_back_in_the_order_asked);
/// `Snapshot::resources` (one query on PostgreSQL) answers each id in the order asked,
/// absent ones as `None` and a repeated id twice, as one lookup per id would.
fn resources_read_together_come_back_in_the_order_asked() {
    use instance_ledger::domain::catalog::Spec;

    let t = crate::harness::TestStore::open();
    let (a, b, missing) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    t.store
        .write(&mut |txn| {
            txn.append(image(a, 1, "a"))?;
            txn.append(image(b, 1, "b"))?;
            Ok(())
        })
        .expect("write");
    let snap = t.store.read().expect("read");
    let names: Vec<Option<String>> = snap
        .resources(&[b, missing, a, b])
        .expect("resources")
        .into_iter()
        .map(|r| {
            r.map(|r| match r.spec {
                Spec::Named { name } => name,
                other => format!("{other:?}"),
            })
        })
        .collect();
    assert_eq!(
        names,
        [Some("b".into()), None, Some("a".into()), Some("b".into())]
    );
    assert!(snap.resources(&[]).expect("none asked").is_empty());
}
