//! The embedded default backend: one redb file in the data directory holding the log,
//! the stream index, the head of the hash chain, idempotency records and the projections.
//! Every batch is one write transaction with one durable commit.
//!
//! - [`tables`]: the tables and their key layout;
//! - [`keys`]: the index key numbers held in memory;
//! - [`write`]: the append and the projection tables it writes through;
//! - [`read`]: the snapshot and its index primitives;
//! - [`maintain`]: tail check, verify, rebuild and export.

mod keys;
mod maintain;
mod read;
mod tables;
mod write;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use ::redb::{Builder, Database, ReadableTable, ReadableTableMetadata};

use super::{EventStore, Snapshot, StoreError, WriteTxn};
use keys::KeyNumbers;
use read::RedbRead;
pub use tables::FILE_NAME;
use tables::*;
use write::{RedbWrite, open_projection};

pub struct RedbStore {
    /// The open file. `None` only between dropping a failed handle and reopening it.
    db: RwLock<Option<Arc<Database>>>,
    path: PathBuf,
    cache: usize,
    /// Set when a write failed on I/O: redb refuses the handle from then on (a failed
    /// fsync must not be retried on it), so the next write reopens the file, once there
    /// is room to write. Reads go on through the old handle until then.
    failed: AtomicBool,
    opener: Opener,
    /// The index key numbers of the open file, in memory (see [`keys`]).
    keys: Arc<KeyNumbers>,
}

/// Opens the database file: redb's own file backend unless a test puts another one
/// underneath (a fault-injecting one, to show what the store does when the disk fails).
pub type Opener =
    Arc<dyn Fn(&Path, usize) -> Result<Database, ::redb::DatabaseError> + Send + Sync>;

fn file_opener() -> Opener {
    Arc::new(|path: &Path, cache: usize| Builder::new().set_cache_size(cache).create(path))
}

/// What the next write after an I/O failure must be able to write before the store is
/// reopened: a commit needs room for new pages, and a disk that is still full would
/// only fail again (and take the readers' handle with it).
const ROOM_TO_RESUME: usize = 4 * 1024 * 1024;

fn open_db(opener: &Opener, path: &Path, cache: usize) -> Result<Database, StoreError> {
    opener(path, cache).map_err(|e| match e {
        ::redb::DatabaseError::DatabaseAlreadyOpen => {
            StoreError::Locked(path.display().to_string())
        }
        // A truncated or overwritten file: damage, not an I/O hiccup.
        ::redb::DatabaseError::Storage(::redb::StorageError::Corrupted(detail)) => {
            StoreError::Corrupt {
                at: format!("store file {}", path.display()),
                detail,
            }
        }
        other => io(other),
    })
}

/// redb's page cache when none is configured (its own default).
pub const DEFAULT_CACHE_MB: u64 = 1024;

impl RedbStore {
    /// Opens (creating if needed) the ledger in `dir` with the default page cache.
    pub fn open(dir: &Path) -> Result<RedbStore, StoreError> {
        Self::open_with_cache(dir, DEFAULT_CACHE_MB)
    }

    /// Opens the ledger with a page cache of `cache_mb` MiB. Reads that miss it go to the
    /// operating system, so as-of reads over a long log stay flat only while the pages
    /// they touch fit here.
    pub fn open_with_cache(dir: &Path, cache_mb: u64) -> Result<RedbStore, StoreError> {
        Self::open_with(dir, cache_mb, file_opener())
    }

    /// Opens the ledger through `opener`, which every reopen after an I/O error uses too.
    pub fn open_with(dir: &Path, cache_mb: u64, opener: Opener) -> Result<RedbStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(io)?;
        let path = dir.join(FILE_NAME);
        let cache = usize::try_from(cache_mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
        let db = open_db(&opener, &path, cache)?;
        let keys = Arc::new(KeyNumbers::load(&db)?);
        let store = RedbStore {
            db: RwLock::new(Some(Arc::new(db))),
            path,
            cache,
            failed: AtomicBool::new(false),
            opener,
            keys,
        };
        store.create_tables()?;
        Ok(store)
    }

    /// The open handle, for one transaction.
    /// No handle means a reopen after an I/O error failed (the disk still failed); the
    /// next caller, reader or writer, tries again.
    pub(super) fn db(&self) -> Result<Arc<Database>, StoreError> {
        let open = self
            .db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match open {
            Some(db) => Ok(db),
            None => {
                self.reopen()?;
                self.db
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone()
                    .ok_or_else(|| StoreError::Io("the store could not be reopened".into()))
            }
        }
    }

    /// The handle a write may use: after an I/O failure, a fresh one once there is room.
    fn writable(&self) -> Result<Arc<Database>, StoreError> {
        if self.failed.load(Ordering::Acquire) {
            self.room_to_resume()?;
            self.reopen()?;
        }
        self.db()
    }

    /// Whether the file system takes [`ROOM_TO_RESUME`] bytes now, durably.
    fn room_to_resume(&self) -> Result<(), StoreError> {
        use std::io::Write;
        let probe = self.path.with_extension("room-probe");
        let result = std::fs::File::create(&probe).and_then(|mut f| {
            f.write_all(&vec![0u8; ROOM_TO_RESUME])?;
            f.sync_all()
        });
        let _ = std::fs::remove_file(&probe);
        result.map_err(io)
    }

    /// Drops the failed handle and opens the file again (redb recovers it to the last
    /// commit). A reader still holding the old handle makes this wait for a later write.
    fn reopen(&self) -> Result<(), StoreError> {
        let mut slot = self.db.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = slot.take() {
            match Arc::try_unwrap(old) {
                Ok(db) => drop(db),
                Err(held) => {
                    *slot = Some(held);
                    return Err(StoreError::Io(
                        "the store is being reopened after an I/O error; retry shortly".into(),
                    ));
                }
            }
        }
        let db = open_db(&self.opener, &self.path, self.cache)?;
        // A commit that reported a failure may have reached the disk all the same: the
        // numbers follow the file as it was recovered.
        self.keys.replace(KeyNumbers::load(&db)?);
        *slot = Some(Arc::new(db));
        self.failed.store(false, Ordering::Release);
        tracing::warn!(path = %self.path.display(), "reopened the store after an I/O error");
        Ok(())
    }

    /// Remembers an I/O failure of a write, so the next write reopens the file.
    fn note(&self, result: Result<(), StoreError>) -> Result<(), StoreError> {
        if let Err(StoreError::Io(_) | StoreError::Full(_)) = &result {
            self.failed.store(true, Ordering::Release);
        }
        result
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates missing tables; a new ledger records that today's code projects it.
    fn create_tables(&self) -> Result<(), StoreError> {
        let txn = self.db()?.begin_write().map_err(io)?;
        {
            let events = txn.open_table(EVENTS).map_err(io)?;
            txn.open_table(STREAMS).map_err(io)?;
            let mut meta = txn.open_table(META).map_err(io)?;
            txn.open_table(IDEMPOTENCY).map_err(io)?;
            open_projection(&txn, &KeyNumbers::default())?;
            let unversioned = meta.get(PROJECTION_VERSION_KEY).map_err(io)?.is_none();
            if unversioned && events.is_empty().map_err(io)? {
                meta.insert(
                    PROJECTION_VERSION_KEY,
                    super::projection::VERSION.to_be_bytes().as_slice(),
                )
                .map_err(io)?;
            }
        }
        txn.commit().map_err(io)
    }
}

impl EventStore for RedbStore {
    fn write(
        &self,
        f: &mut dyn FnMut(&mut dyn WriteTxn) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let db = self.writable()?;
        let result = Self::write_on(&db, &self.keys, f);
        self.note(result)
    }

    fn read(&self) -> Result<Box<dyn Snapshot + '_>, StoreError> {
        Ok(Box::new(RedbRead::new(
            begin_read(&*self.db()?)?,
            self.keys.clone(),
        )))
    }

    fn size_bytes(&self) -> Result<Option<u64>, StoreError> {
        Ok(Some(std::fs::metadata(&self.path).map_err(io)?.len()))
    }
}

impl RedbStore {
    /// One write transaction on `db`: `f`, then one durable commit if it wrote anything.
    fn write_on(
        db: &Database,
        keys: &KeyNumbers,
        f: &mut dyn FnMut(&mut dyn WriteTxn) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let txn = db.begin_write().map_err(io)?;
        let dirty;
        let new_keys;
        {
            let mut meta = txn.open_table(META).map_err(io)?;
            let head = decode_head(meta.get(HEAD_KEY).map_err(io)?.as_ref().map(|g| g.value()))?;
            let (projection, projector) = open_projection(&txn, keys)?;
            let mut w = RedbWrite {
                events: txn.open_table(EVENTS).map_err(io)?,
                streams: txn.open_table(STREAMS).map_err(io)?,
                idempotency: txn.open_table(IDEMPOTENCY).map_err(io)?,
                projection,
                projector,
                head,
                dirty: false,
            };
            f(&mut w)?;
            dirty = w.dirty;
            new_keys = w.projection.finish()?;
            if w.head != head {
                meta.insert(HEAD_KEY, encode_head(&w.head).as_slice())
                    .map_err(io)?;
            }
        }
        if !dirty {
            return txn.abort().map_err(io);
        }
        // Published before the commit, so no reader sees committed rows under a key it
        // cannot resolve; taken back if the commit fails.
        keys.publish(&new_keys);
        txn.commit()
            .map_err(io)
            .inspect_err(|_| keys.retract(&new_keys))
    }
}
