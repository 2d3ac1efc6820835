//! The embedded store's journal: a batch is durable once its journal record is synced,
//! before the file commits it durably. Shown on copies of the data directory taken while
//! the store is open, which is what a crash leaves on the disk: the copy of the file alone
//! lacks the batches, the file with its journal holds every one, and a record cut short
//! by the crash is left out whole. `crash_loop` shows the same with SIGKILL.

use std::path::Path;

use instance_ledger::store::redb::{FILE_NAME, JOURNAL_FILE_NAME, RedbStore};
use instance_ledger::store::{EventStore, Maintenance};
use uuid::Uuid;

use reqwest::StatusCode;

use crate::harness::{Catalog, Server};
use crate::store_contract::image;

fn append(store: &RedbStore, name: &str) -> Uuid {
    let id = Uuid::now_v7();
    store
        .write(&mut |txn| txn.append(image(id, 1, name)).map(|_| ()))
        .expect("append");
    id
}

/// The files as the disk holds them now, in a directory of their own.
fn crash_copy(from: &Path, files: &[&str]) -> tempfile::TempDir {
    let to = tempfile::tempdir().expect("dir");
    for name in files {
        std::fs::copy(from.join(name), to.path().join(name)).expect("copy");
    }
    to
}

fn head(dir: &Path) -> u64 {
    let store = RedbStore::open(dir).expect("open");
    let head = store.read().expect("read").head().expect("head").position;
    let report = store.verify().expect("verify");
    assert_eq!(report.events, head, "{report:?}");
    head
}

#[test]
fn a_batch_is_durable_in_the_journal_before_the_file_commits_it() {
    let dir = tempfile::tempdir().expect("dir");
    let store = RedbStore::open(dir.path()).expect("open");
    let ids: Vec<Uuid> = ["a", "b", "c"].iter().map(|n| append(&store, n)).collect();

    // The file alone: none of the three is durable in it yet.
    let file_only = crash_copy(dir.path(), &[FILE_NAME]);
    assert_eq!(
        head(file_only.path()),
        0,
        "the file committed durably already"
    );

    // With its journal: every batch, each stream whole, and the journal folded in.
    let both = crash_copy(dir.path(), &[FILE_NAME, JOURNAL_FILE_NAME]);
    assert_eq!(head(both.path()), 3);
    let reopened = RedbStore::open(both.path()).expect("open");
    let snap = reopened.read().expect("read");
    for id in &ids {
        assert_eq!(snap.stream(*id).expect("stream").len(), 1);
    }
    drop(snap);
    drop(reopened);
    let journal = std::fs::metadata(both.path().join(JOURNAL_FILE_NAME)).expect("journal");
    assert_eq!(
        journal.len(),
        0,
        "the replay did not start the journal over"
    );

    // Closing the store folds the journal into the file.
    drop(store);
    assert_eq!(head(crash_copy(dir.path(), &[FILE_NAME]).path()), 3);
}

#[test]
fn a_journal_record_cut_short_by_a_crash_is_left_out_whole() {
    let dir = tempfile::tempdir().expect("dir");
    let store = RedbStore::open(dir.path()).expect("open");
    append(&store, "a");
    append(&store, "b");
    let copy = crash_copy(dir.path(), &[FILE_NAME, JOURNAL_FILE_NAME]);
    let journal = copy.path().join(JOURNAL_FILE_NAME);
    let len = std::fs::metadata(&journal).expect("journal").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .expect("open journal");
    file.set_len(len - 3).expect("cut");
    drop(file);
    assert_eq!(head(copy.path()), 1, "the cut record is not replayed");
    // The cut record is gone for good: the next batch follows the first.
    let reopened = RedbStore::open(copy.path()).expect("open");
    append(&reopened, "c");
    drop(reopened);
    assert_eq!(head(copy.path()), 2);
}

#[test]
fn without_a_journal_threshold_every_batch_commits_the_file_durably() {
    let dir = tempfile::tempdir().expect("dir");
    let store = RedbStore::open(dir.path()).expect("open");
    store.set_checkpoint_bytes(0);
    append(&store, "a");
    append(&store, "b");
    assert_eq!(head(crash_copy(dir.path(), &[FILE_NAME]).path()), 2);
    assert_eq!(
        std::fs::metadata(dir.path().join(JOURNAL_FILE_NAME))
            .expect("journal")
            .len(),
        0
    );
}

#[test]
fn settling_folds_the_journal_into_the_file() {
    let dir = tempfile::tempdir().expect("dir");
    let store = RedbStore::open(dir.path()).expect("open");
    append(&store, "a");
    assert_eq!(head(crash_copy(dir.path(), &[FILE_NAME]).path()), 0);
    store.settle().expect("settle");
    assert_eq!(head(crash_copy(dir.path(), &[FILE_NAME]).path()), 1);
}

/// A server with nothing to do folds its journal into the file by itself: a copy of the
/// file alone, taken while it runs, soon holds every write it acknowledged. Without the
/// writer's idle settle, the file would wait for a later batch that never comes.
#[tokio::test]
async fn an_idle_server_folds_its_journal_into_the_file() {
    let s = Server::start(&["--driver-delay-ms", "0"]);
    let c = Catalog::create(&s).await;
    let r = s.post("/v1/instances", c.instance("idle-1")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    // The create's completion lands after its answer: the file must hold it too.
    while s.get(&format!("/v1/instances/{id}")).await.body["state"] != "running" {
        assert!(std::time::Instant::now() < deadline, "never running");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let served = s.get("/v1/ledger/head").await.body["position"]
        .as_u64()
        .expect("head");
    loop {
        let copy = crash_copy(&s.data_dir, &[FILE_NAME]);
        let in_file = head(copy.path());
        if in_file == served {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the file holds position {in_file} of {served}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
