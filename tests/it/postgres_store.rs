//! What only the PostgreSQL backend has: driver claims between nodes, verify on a shared
//! database, batches decided again after a conflict with another node, and a batch that
//! waited for another node's head lock taking in what queued meanwhile.

on_postgres!(#[test] fn one_node_at_a_time_holds_a_transitions_claim);
/// Driver claims between nodes: one node holds a transition until its lease expires; a
/// newer version or the holder itself may claim again.
fn one_node_at_a_time_holds_a_transitions_claim() {
    use instance_ledger::store::EventStore;
    use instance_ledger::store::postgres::PgStore;
    use std::time::Duration;

    let dir = tempfile::tempdir().expect("dir");
    let url = crate::harness::postgres::database_for(dir.path());
    let a = PgStore::connect(&url, Duration::ZERO).expect("node a");
    let b = PgStore::connect(&url, Duration::ZERO).expect("node b");
    let id = uuid::Uuid::now_v7();
    let long = Duration::from_secs(60);
    assert!(a.claim(id, 3, long).expect("claim"), "the first claim wins");
    assert!(
        !b.claim(id, 3, long).expect("claim"),
        "a held claim is refused"
    );
    assert!(
        a.claim(id, 3, long).expect("claim"),
        "the holder may claim again"
    );
    assert!(
        b.claim(id, 4, long).expect("claim"),
        "a newer version is a new transition"
    );
    assert!(!a.claim(id, 4, long).expect("claim"));
    assert!(b.claim(id, 5, Duration::ZERO).expect("claim"));
    std::thread::sleep(Duration::from_millis(20));
    assert!(
        a.claim(id, 5, long).expect("claim"),
        "an expired claim is taken over"
    );
    drop((a, b));
    crate::harness::postgres::drop_database_for(dir.path());
}

on_postgres!(#[test] fn verify_detects_a_flipped_event_byte_and_a_drifted_projection);
/// `PgStore::verify` checks the chain and every projection: flipping a byte of a stored
/// event is named by position, a drifted projection by table, and an intact ledger passes.
fn verify_detects_a_flipped_event_byte_and_a_drifted_projection() {
    use instance_ledger::store::StoreError;

    let t = crate::harness::TestStore::open();
    t.store
        .write(&mut |txn| {
            for i in 0..5 {
                txn.append(crate::store_contract::image(
                    uuid::Uuid::now_v7(),
                    1,
                    &format!("img-{i}"),
                ))?;
            }
            Ok(())
        })
        .expect("write");
    assert_eq!(t.verify().expect("intact").events, 5);

    let flip =
        "UPDATE events SET body = set_byte(body, 40, get_byte(body, 40) # 1) WHERE position = 3";
    t.sql(flip);
    match t.verify() {
        Err(StoreError::Corrupt { at, .. }) => assert_eq!(at, "position 3"),
        other => panic!("a flipped byte was not detected: {other:?}"),
    }
    t.sql(flip);
    t.verify().expect("restored");

    t.sql("UPDATE resources SET view = set_byte(view, 10, get_byte(view, 10) # 1) WHERE id = (SELECT id FROM resources ORDER BY id LIMIT 1)");
    match t.verify() {
        Err(StoreError::Corrupt { at, .. }) => assert_eq!(at, "projection resources"),
        other => panic!("projection drift was not detected: {other:?}"),
    }
}

on_postgres!(#[test] fn a_conflicting_batch_is_decided_again_against_fresh_state);
/// A batch whose flush hits the unique (stream_id, version) constraint (another writer
/// got there first) is decided again against fresh state: not lost, not duplicated.
fn a_conflicting_batch_is_decided_again_against_fresh_state() {
    let t = crate::harness::TestStore::open();
    let stream = uuid::Uuid::now_v7();
    let mut attempts = 0;
    t.store
        .write(&mut |txn| {
            attempts += 1;
            let version = txn.stream_version(stream)? + 1;
            if attempts == 1 {
                // Another writer (bypassing the head lock, as no ledger node does) commits
                // this stream's version 1 while the batch is being decided.
                t.sql(&format!(
                    "INSERT INTO events (position, stream_id, version, hash, body)
                     VALUES (1000000, '{stream}', 1, '\\x00', '\\x00')"
                ));
            }
            txn.append(crate::store_contract::image(stream, version, "img"))?;
            Ok(())
        })
        .expect("the batch commits after deciding again");
    assert_eq!(attempts, 2, "decided once, conflicted, decided again");
    let snap = t.store.read().expect("read");
    let ours = snap.read_all(0, 1).expect("log");
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].position, 1);
    assert_eq!(ours[0].stream_id, stream);
    assert_eq!(
        ours[0].version, 2,
        "appended after the other writer's version 1"
    );
    assert_eq!(snap.head().expect("head").position, 1);
}

on_postgres!(#[test] fn a_burst_of_reads_stays_within_the_reader_pool);
/// A hundred snapshots taken at once by as many threads share the node's bounded pool of
/// read connections: the database never sees more than the bound (plus the writer's
/// and the listener's connections), and every read is served.
fn a_burst_of_reads_stays_within_the_reader_pool() {
    use instance_ledger::limits::POSTGRES_READERS;
    use instance_ledger::store::EventStore;
    use instance_ledger::store::postgres::PgStore;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    const READERS: usize = 100;
    let dir = tempfile::tempdir().expect("dir");
    let url = crate::harness::postgres::database_for(dir.path());
    let name = crate::harness::postgres::database_name(dir.path());
    let store = Arc::new(PgStore::connect(&url, Duration::ZERO).expect("connect"));
    let done = Arc::new(AtomicBool::new(false));
    let most = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (done, most) = (done.clone(), most.clone());
        std::thread::spawn(move || {
            crate::harness::postgres::admin(move |c| {
                while !done.load(Ordering::SeqCst) {
                    let row = c
                        .query_one(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                            &[&name],
                        )
                        .expect("count connections");
                    let n = usize::try_from(row.get::<_, i64>(0)).expect("a count");
                    most.fetch_max(n, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        })
    };
    let start = Arc::new(Barrier::new(READERS));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (store, start) = (store.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let snap = store.read().expect("a snapshot");
                let head = snap.head().expect("the head");
                // Held a moment, so the burst overlaps.
                std::thread::sleep(Duration::from_millis(30));
                head.position
            })
        })
        .collect();
    for r in readers {
        assert_eq!(r.join().expect("reader"), 0, "an empty ledger's head");
    }
    done.store(true, Ordering::SeqCst);
    sampler.join().expect("sampler");
    let most = most.load(Ordering::SeqCst);
    // The writer's connection and the commit listener come on top of the readers.
    assert!(
        most <= POSTGRES_READERS + 2,
        "{most} connections for {READERS} concurrent reads (bound {POSTGRES_READERS})"
    );
    assert!(
        most > 2,
        "the burst used several connections at once: {most}"
    );
    drop(store);
    crate::harness::postgres::drop_database_for(dir.path());
}

on_postgres!(#[tokio::test] async fn requests_that_queue_while_the_head_is_locked_share_the_batch_that_waited);
/// A batch waiting for the head lock (another node's batch holds it) takes in what queued
/// meanwhile once it has the lock: the creates sent while it waited commit with it, so
/// all of them carry that batch's one time, taken after the wait.
async fn requests_that_queue_while_the_head_is_locked_share_the_batch_that_waited() {
    use crate::harness::{Catalog, Server, postgres};
    use std::sync::Arc;
    use std::time::Duration;

    let s = Arc::new(Server::start(&["--driver-delay-ms", "60000"]));
    let c = Arc::new(Catalog::create(&s).await);
    let name = postgres::database_name(&s.data_dir);
    // Holds the head row as another node's batch would, until told to let go.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (locked, is_locked) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn({
        let url = postgres::url_of(&name);
        move || {
            let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("connect");
            let mut tx = client.transaction().expect("begin");
            tx.query_one("SELECT position FROM head FOR UPDATE", &[])
                .expect("lock the head");
            locked.send(()).expect("tell");
            released.recv().expect("wait to release");
            tx.commit().expect("release the head");
        }
    });
    is_locked.recv().expect("the head is locked");
    let create = |i: usize| {
        let (s, c) = (s.clone(), c.clone());
        tokio::spawn(async move { s.post("/v1/instances", c.instance(&format!("q-{i}"))).await })
    };
    let first = create(0);
    // The server's writer is in its batch, waiting for the lock.
    let waiting = name.clone();
    let watch = tokio::task::spawn_blocking(move || {
        postgres::admin(move |a| {
            for _ in 0..1000 {
                let n: i64 = a
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity
                     WHERE datname = $1 AND wait_event_type = 'Lock'",
                        &[&waiting],
                    )
                    .expect("activity")
                    .get(0);
                if n > 0 {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            panic!("the writer never waited for the head lock");
        })
    });
    watch.await.expect("watch");
    let rest: Vec<_> = (1..5).map(create).collect();
    // Time for them to pass their reads and queue behind the waiting batch (nothing
    // they do waits for the head).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    release.send(()).expect("release");
    holder.join().expect("holder");
    let mut times = std::collections::BTreeSet::new();
    for t in std::iter::once(first).chain(rest) {
        let r = t.await.expect("task");
        assert_eq!(r.status, reqwest::StatusCode::CREATED, "{}", r.body);
        times.insert(r.body["created_at"].to_string());
    }
    assert_eq!(
        times.len(),
        1,
        "the five creates committed in one batch, at one time: {times:?}"
    );
}

on_postgres!(#[tokio::test] async fn a_ledger_with_a_count_history_row_per_event_is_upgraded_to_count_blocks);
/// A ledger from before migration 0004 (projection version 10, a count-history row per
/// event) is upgraded by the next start: the migration replaces the table, the rebuild
/// refills it from the log, and every as-of total, at every position, answers as before.
async fn a_ledger_with_a_count_history_row_per_event_is_upgraded_to_count_blocks() {
    use crate::harness::{Catalog, Server, postgres};
    use reqwest::StatusCode;

    let mut s = Server::start(&["--driver-delay-ms", "0"]);
    let dir = s.take_dir().expect("dir");
    let c = Catalog::create(&s).await;
    // Creations and their completions: more than one block of 64 positions.
    for i in 0..40 {
        let r = s.post("/v1/instances", c.instance(&format!("u{i}"))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let mut head = 0;
    for _ in 0..200 {
        let r = s.get("/v1/instances?state=running&limit=1").await;
        head = s.position().await;
        if r.body["total"] == 40 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(head > 64, "the history spans more than one block: {head}");
    let filters = ["", "state=running&", "state=provisioning&", "name=u3&"];
    let totals = async |s: &Server| {
        let mut out = Vec::new();
        for p in 0..=head {
            for f in filters {
                let r = s
                    .get(&format!("/v1/instances?{f}at_position={p}&limit=1"))
                    .await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.body);
                out.push(r.body["total"].as_u64().expect("total"));
            }
        }
        out
    };
    let before = totals(&s).await;
    assert_eq!(before.last(), Some(&1), "u3 by name at the head");
    s.stop();
    // Back to the shape of migration 0003 and projection version 10.
    let url = postgres::url_of(&postgres::database_name(dir.path()));
    postgres::on(url.clone(), |c| {
        c.batch_execute(
            "DROP TABLE count_blocks;
             CREATE TABLE count_history (key bytea, position bigint, count bigint NOT NULL,
                                         PRIMARY KEY (key, position));
             INSERT INTO count_history VALUES ('\\x00', 1, 7);
             DELETE FROM ledger_migrations WHERE version = 4;
             UPDATE projection_version SET version = 10;",
        )
        .expect("downgrade");
    });
    let s = Server::start_in(dir.path(), &["--driver-delay-ms", "0"]);
    assert_eq!(totals(&s).await, before, "as-of totals after the upgrade");
    let (migrated, version, legacy): (i64, i32, bool) = postgres::on(url, |c| {
        let row = c
            .query_one(
                "SELECT (SELECT count(*) FROM ledger_migrations WHERE version = 4),
                        (SELECT version FROM projection_version),
                        to_regclass('count_history') IS NOT NULL",
                &[],
            )
            .expect("state");
        (row.get(0), row.get(1), row.get(2))
    });
    assert_eq!(
        (migrated, version, legacy),
        (
            1,
            i32::try_from(instance_ledger::store::projection::VERSION).expect("version"),
            false
        )
    );
    drop(s);
    drop(dir);
}
