//! A failing disk under the embedded store, through a fault-injecting redb backend that
//! wraps the real file: when a write or an fsync fails, the store refuses the commit
//! (nothing acknowledged), stops acknowledging while the disk keeps failing, never calls
//! the failed handle again (a failed fsync is not retried on it: the kernel may already
//! have dropped the dirty pages), and recovers by itself by reopening the file once the
//! disk works. What was committed before stays; what failed is not half there.

use std::fs::OpenOptions;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use instance_ledger::domain::catalog::Kind;
use instance_ledger::projection::index;
use instance_ledger::store::redb::{Opener, RedbStore};
use instance_ledger::store::{EventStore, Maintenance, StoreError};
use redb::backends::FileBackend;
use redb::{BackendError, Builder, StorageBackend};
use uuid::Uuid;

use crate::store_contract::image;

/// What the disk does now.
const HEALTHY: u8 = 0;
const FAILING_SYNC: u8 = 1;
const FAILING_WRITE: u8 = 2;

#[derive(Debug, Default)]
struct Disk {
    mode: AtomicU8,
    handles: AtomicUsize,
    failures: AtomicUsize,
    /// Calls that reached a handle after it had failed once.
    calls_after_failure: AtomicUsize,
}

#[derive(Debug)]
struct Faulty {
    file: FileBackend,
    disk: Arc<Disk>,
    failed: std::sync::atomic::AtomicBool,
}

impl Faulty {
    fn fail_if(&self, mode: u8) -> Result<(), std::io::Error> {
        if self.failed.load(Ordering::SeqCst) {
            self.disk.calls_after_failure.fetch_add(1, Ordering::SeqCst);
        }
        if self.disk.mode.load(Ordering::SeqCst) == mode {
            self.failed.store(true, Ordering::SeqCst);
            self.disk.failures.fetch_add(1, Ordering::SeqCst);
            return Err(std::io::Error::from_raw_os_error(5)); // EIO
        }
        Ok(())
    }
}

impl StorageBackend for Faulty {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.file.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.file.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.fail_if(FAILING_WRITE)?;
        self.file.set_len(len)
    }
    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.fail_if(FAILING_SYNC)?;
        self.file.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.fail_if(FAILING_WRITE)?;
        self.file.write(offset, data)
    }
    fn close(&self) -> Result<(), std::io::Error> {
        self.file.close()
    }
    fn try_lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_range(s, e)
    }
    fn try_lock_shared_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_shared_range(s, e)
    }
    fn lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_range(s, e)
    }
    fn lock_shared_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_shared_range(s, e)
    }
    fn unlock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
        self.file.unlock_range(s, e)
    }
    fn query_lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
        self.file.query_lock_range(s, e)
    }
}

/// The store's file and its journal, both on the faulty disk.
fn opener(disk: Arc<Disk>) -> Opener {
    let open = |disk: &Arc<Disk>, path: &Path| -> Result<Faulty, std::io::Error> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        disk.handles.fetch_add(1, Ordering::SeqCst);
        Ok(Faulty {
            file: FileBackend::new(file).map_err(std::io::Error::other)?,
            disk: disk.clone(),
            failed: Default::default(),
        })
    };
    let journal_disk = disk.clone();
    Opener {
        db: Arc::new(move |path: &Path, cache: usize| {
            Builder::new()
                .set_cache_size(cache)
                .create_with_backend(open(&disk, path)?)
        }),
        journal: Arc::new(move |path: &Path| {
            Ok(Box::new(open(&journal_disk, path)?) as Box<dyn StorageBackend>)
        }),
    }
}

fn append(store: &RedbStore, stream: Uuid, name: &str) -> Result<(), StoreError> {
    store.write(&mut |txn| txn.append(image(stream, 1, name)).map(|_| ()))
}

/// Each disk fault, with batches committed through the journal and with every batch
/// committing the file durably (as one does when the journal is due).
const CASES: [(u8, bool); 4] = [
    (FAILING_SYNC, false),
    (FAILING_WRITE, false),
    (FAILING_SYNC, true),
    (FAILING_WRITE, true),
];

/// A store over a disk that works for now, holding one image ("before").
fn with_one_image(durable: bool) -> (tempfile::TempDir, Arc<Disk>, RedbStore, Uuid) {
    let dir = tempfile::tempdir().expect("dir");
    let disk = Arc::new(Disk::default());
    let store = RedbStore::open_with(dir.path(), 16, opener(disk.clone())).expect("open");
    if durable {
        store.set_checkpoint_bytes(0);
    }
    let before = Uuid::now_v7();
    append(&store, before, "before").expect("a healthy disk commits");
    (dir, disk, store, before)
}

#[test]
fn a_failing_disk_stops_acknowledgements_and_the_store_reopens_once_it_works() {
    for (mode, durable) in CASES {
        let (dir, disk, store, before) = with_one_image(durable);

        disk.mode.store(mode, Ordering::SeqCst);
        let lost: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        for id in &lost {
            let result = append(&store, *id, "during");
            assert!(
                matches!(result, Err(StoreError::Io(_))),
                "mode {mode} durable {durable}: a failing disk acknowledged a write: {result:?}"
            );
        }
        assert!(
            disk.failures.load(Ordering::SeqCst) >= 3,
            "mode {mode} durable {durable}: no fault hit"
        );

        // The disk works again: a read reopens the file if the last write could not, and
        // finds only what was committed.
        disk.mode.store(HEALTHY, Ordering::SeqCst);
        let head = store.read().expect("read").head().expect("head").position;
        assert_eq!(
            head, 1,
            "mode {mode} durable {durable}: refused writes left nothing"
        );
        let after = Uuid::now_v7();
        append(&store, after, "after").expect("writes resume once the disk works");
        assert_eq!(
            disk.calls_after_failure.load(Ordering::SeqCst),
            0,
            "mode {mode} durable {durable}: a handle was written or synced again after it failed"
        );
        assert!(
            disk.handles.load(Ordering::SeqCst) >= 2,
            "mode {mode} durable {durable}: recovered without reopening the file"
        );

        let snap = store.read().expect("read");
        assert_eq!(
            snap.head().expect("head").position,
            2,
            "mode {mode} durable {durable}"
        );
        assert_eq!(snap.stream(before).expect("stream").len(), 1);
        assert_eq!(snap.stream(after).expect("stream").len(), 1);
        for id in &lost {
            assert!(
                snap.stream(*id).expect("stream").is_empty(),
                "mode {mode} durable {durable}"
            );
        }
        drop(snap);
        drop(store);

        // From the disk, as a restart finds it: the chain and projections verify.
        let store = RedbStore::open(dir.path()).expect("reopen");
        let report = store.verify().expect("verify");
        assert_eq!(
            report.events, 2,
            "mode {mode} durable {durable}: {report:?}"
        );
    }
}

/// The first id under an image name's index key.
fn named(store: &RedbStore, name: &str) -> Option<Uuid> {
    let key = index::resource_name_key(Kind::Image, name);
    let snap = store.read().expect("read");
    snap.seek(&key, 0).expect("seek").map(Uuid::from_u128)
}

#[test]
fn a_key_numbered_by_a_commit_that_failed_is_not_taken_for_the_next_key() {
    for (mode, durable) in CASES {
        let (dir, disk, store, before) = with_one_image(durable);
        // The disk fails once the transaction has numbered its new key ("lost"): at the
        // commit. The next write numbers a key of its own with the next free number; had
        // the failed one kept it in memory, both keys would share it and a lookup of
        // "lost" would find the other's image.
        let lost = Uuid::now_v7();
        let result = store.write(&mut |txn| {
            txn.append(image(lost, 1, "lost"))?;
            disk.mode.store(mode, Ordering::SeqCst);
            Ok(())
        });
        assert!(
            matches!(result, Err(StoreError::Io(_))),
            "mode {mode} durable {durable}: {result:?}"
        );
        disk.mode.store(HEALTHY, Ordering::SeqCst);
        let after = Uuid::now_v7();
        append(&store, after, "after").expect("writes resume once the disk works");
        // A failed fsync does not say the pages never reached the file: the reopened file
        // may hold the refused commit (never acknowledged), and then its key with it.
        let kept = store.read().expect("read").head().expect("head").position == 3;
        assert!(
            !kept || mode == FAILING_SYNC,
            "mode {mode} durable {durable}: a failed write was kept"
        );
        assert_eq!(
            named(&store, "before"),
            Some(before),
            "mode {mode} durable {durable}"
        );
        assert_eq!(
            named(&store, "after"),
            Some(after),
            "mode {mode} durable {durable}"
        );
        assert_eq!(
            named(&store, "lost"),
            kept.then_some(lost),
            "mode {mode} durable {durable}"
        );
        drop(store);
        let store = RedbStore::open(dir.path()).expect("reopen");
        assert_eq!(
            named(&store, "after"),
            Some(after),
            "mode {mode} durable {durable}: from the disk"
        );
        // The rebuild beside it numbers the keys afresh: one number per key, or it differs.
        let report = store.verify().expect("verify");
        assert_eq!(
            report.events,
            2 + u64::from(kept),
            "mode {mode} durable {durable}: {report:?}"
        );
    }
}
