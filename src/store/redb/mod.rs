//! The embedded default backend: one redb file in the data directory holding the log,
//! the stream index, the head of the hash chain, idempotency records and the projections,
//! and its journal beside it. Every batch is one write transaction: its log and
//! idempotency records are synced to the journal, then it commits in memory; every few
//! megabytes or seconds a batch commits the file durably instead (see [`journal`]).
//!
//! - [`tables`]: the tables and their key layout;
//! - [`journal`]: the durable record of the batches the file has not committed durably;
//! - [`keys`]: the index key numbers held in memory;
//! - [`write`]: the append and the projection tables it writes through;
//! - [`read`]: the snapshot and its index primitives;
//! - [`maintain`]: tail check, verify, rebuild and export.

mod journal;
mod keys;
mod maintain;
mod read;
mod tables;
mod write;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use ::redb::backends::FileBackend;
use ::redb::{Builder, Database, Durability, ReadableTable, ReadableTableMetadata, StorageBackend};

use super::chain::Checked;
use super::{EventStore, Snapshot, StoreError, WriteTxn};
pub use journal::FILE_NAME as JOURNAL_FILE_NAME;
use journal::{Entry, Journal, Record};
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
    /// The open file's journal. Taken only inside a write transaction (or with the
    /// handle's lock for a reopen), so it follows the file's commits in order.
    journal: Mutex<Journal>,
    journal_path: PathBuf,
    /// How full the journal may get before a batch commits the file durably.
    checkpoint_bytes: AtomicU64,
}

/// Opens the store's files: redb's own file backend and a plain file for the journal,
/// unless a test puts others underneath (fault-injecting ones, to show what the store
/// does when the disk fails). A reopen after an I/O error opens both afresh.
#[derive(Clone)]
pub struct Opener {
    pub db: Arc<OpenDatabase>,
    pub journal: Arc<OpenJournal>,
}

pub type OpenDatabase =
    dyn Fn(&Path, usize) -> Result<Database, ::redb::DatabaseError> + Send + Sync;
pub type OpenJournal =
    dyn Fn(&Path) -> Result<Box<dyn StorageBackend>, std::io::Error> + Send + Sync;

impl Default for Opener {
    fn default() -> Opener {
        Opener {
            db: Arc::new(|path: &Path, cache: usize| {
                Builder::new().set_cache_size(cache).create(path)
            }),
            journal: Arc::new(|path: &Path| {
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path)?;
                let backend = FileBackend::new(file).map_err(std::io::Error::other)?;
                Ok(Box::new(backend) as Box<dyn StorageBackend>)
            }),
        }
    }
}

/// What the next write after an I/O failure must be able to write before the store is
/// reopened: a commit needs room for new pages, and a disk that is still full would
/// only fail again (and take the readers' handle with it).
const ROOM_TO_RESUME: usize = 4 * 1024 * 1024;

fn open_db(opener: &Opener, path: &Path, cache: usize) -> Result<Database, StoreError> {
    (opener.db)(path, cache).map_err(|e| match e {
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
        Self::open_with(dir, cache_mb, Opener::default())
    }

    /// Opens the ledger through `opener`, which every reopen after an I/O error uses too.
    pub fn open_with(dir: &Path, cache_mb: u64, opener: Opener) -> Result<RedbStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(io)?;
        let path = dir.join(FILE_NAME);
        let cache = usize::try_from(cache_mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
        let db = open_db(&opener, &path, cache)?;
        let keys = Arc::new(KeyNumbers::load(&db)?);
        let journal_path = dir.join(JOURNAL_FILE_NAME);
        let file = (opener.journal)(&journal_path).map_err(journal::failed)?;
        let journal = recover(&db, &keys, file, None)?;
        let store = RedbStore {
            db: RwLock::new(Some(Arc::new(db))),
            path,
            cache,
            failed: AtomicBool::new(false),
            opener,
            keys,
            journal: Mutex::new(journal),
            journal_path,
            checkpoint_bytes: AtomicU64::new(crate::limits::JOURNAL_CHECKPOINT_BYTES),
        };
        store.create_tables()?;
        Ok(store)
    }

    /// Commits the file durably once the journal holds `bytes` (0: every batch, as
    /// without a journal), for tests and benchmarks that compare the two.
    pub fn set_checkpoint_bytes(&self, bytes: u64) {
        self.checkpoint_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Commits the file durably and starts the journal over, if it holds anything: the
    /// file alone then holds every acknowledged write. Done when the writer is idle and
    /// when the store closes.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        if self.failed.load(Ordering::Acquire) {
            // The handle is never written again; the reopen replays the journal.
            return Ok(());
        }
        let db = self.db()?;
        let txn = db.begin_write().map_err(io)?;
        let mut journal = journal::lock(&self.journal);
        if journal.len() == 0 {
            return txn.abort().map_err(io);
        }
        let result = txn.commit().map_err(io).and_then(|()| journal.reset());
        drop(journal);
        self.note(result)
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
        // The file lost what it had committed in memory: the journal brings it back, up
        // to the last record that was synced (a record the disk refused is cut off).
        let mut journal = journal::lock(&self.journal);
        let file = (self.opener.journal)(&self.journal_path).map_err(journal::failed)?;
        *journal = recover(&db, &self.keys, file, Some(journal.len()))?;
        drop(journal);
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
        let mut journal = Journaled {
            journal: &self.journal,
            checkpoint_bytes: self.checkpoint_bytes.load(Ordering::Relaxed),
        };
        let result = Self::write_on(&db, &self.keys, Some(&mut journal), f);
        if journal::lock(&self.journal).broken() {
            self.failed.store(true, Ordering::Release);
        }
        self.note(result)
    }

    fn settle(&self) -> Result<(), StoreError> {
        self.checkpoint()
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

/// A batch's way to its commit: the journal, and when it is due for a durable commit.
struct Journaled<'j> {
    journal: &'j Mutex<Journal>,
    checkpoint_bytes: u64,
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        // So the next open, or a copy of the file, finds every write in the file itself.
        if let Err(e) = self.checkpoint() {
            tracing::warn!(error = %e, "the journal stays for the next open to replay");
        }
    }
}

/// Replays the journal in `file` (its first `kept` bytes, after a failure) into `db`, the
/// file as it was opened (its durable state), commits that durably and starts the journal
/// over. Records at or before the file's head are there already and skipped.
fn recover(
    db: &Database,
    keys: &KeyNumbers,
    file: Box<dyn StorageBackend>,
    kept: Option<u64>,
) -> Result<Journal, StoreError> {
    let mut bytes = Journal::contents(&*file)?;
    if let Some(kept) = kept {
        bytes.truncate(usize::try_from(kept).unwrap_or(usize::MAX));
    }
    let (records, _) = journal::records(&bytes)?;
    if !records.is_empty() {
        let replayed = records.iter().flatten().count();
        RedbStore::write_on(db, keys, None, &mut |txn| replay(txn, &records))?;
        tracing::info!(
            records = records.len(),
            entries = replayed,
            "replayed the journal"
        );
    }
    Journal::new(file, 0)
}

fn replay(txn: &mut dyn WriteTxn, records: &[Vec<Entry<'_>>]) -> Result<(), StoreError> {
    for entry in records.iter().flatten() {
        match entry {
            Entry::Event { position, stored } => {
                if *position <= txn.head_position()? {
                    continue;
                }
                let Some((hash, body)) = stored.split_at_checked(32) else {
                    return Err(journal::damaged(format!(
                        "the event at position {position} is shorter than its hash"
                    )));
                };
                txn.append_checked(&Checked::decode(*position, Some(hash), body)?, body)?;
            }
            // Written once per key, so writing one the file holds already changes nothing.
            Entry::Idempotency { key, record } => txn.put_idempotency(key, record)?,
        }
    }
    Ok(())
}

impl RedbStore {
    /// One write transaction on `db`: `f`, then, if it wrote anything, a commit: through
    /// the journal for a batch (`journaled`), durable for anything else (a replay).
    fn write_on(
        db: &Database,
        keys: &KeyNumbers,
        journaled: Option<&mut Journaled<'_>>,
        f: &mut dyn FnMut(&mut dyn WriteTxn) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut txn = db.begin_write().map_err(io)?;
        let dirty;
        let new_keys;
        let record;
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
                journal: journaled.is_some().then(Record::default),
            };
            f(&mut w)?;
            dirty = w.dirty;
            new_keys = w.projection.finish()?;
            record = w.journal.take();
            if w.head != head {
                meta.insert(HEAD_KEY, encode_head(&w.head).as_slice())
                    .map_err(io)?;
            }
        }
        if !dirty {
            return txn.abort().map_err(io);
        }
        let (Some(journaled), Some(mut record)) = (journaled, record) else {
            return Self::commit(txn, keys, &new_keys);
        };
        let mut journal = journal::lock(journaled.journal);
        if journal.due(journaled.checkpoint_bytes) {
            // This commit makes every batch before it durable in the file too.
            Self::commit(txn, keys, &new_keys)?;
            // Should the journal not start over, what it holds is in the file now: the
            // journal is marked broken, and the next write reopens the store, whose
            // replay skips all of it.
            let _ = journal.reset();
            return Ok(());
        }
        // Set before the record is synced: nothing may fail between the sync and the
        // commit but the commit, whose failure takes the record back.
        txn.set_durability(Durability::None).map_err(io)?;
        // Durable once the record is synced; nothing is published before.
        let mark = journal.append(&mut record)?;
        Self::commit(txn, keys, &new_keys).inspect_err(|_| journal.undo(mark))
    }

    fn commit(
        txn: ::redb::WriteTransaction,
        keys: &KeyNumbers,
        new_keys: &keys::NewKeys,
    ) -> Result<(), StoreError> {
        // Published before the commit, so no reader sees committed rows under a key it
        // cannot resolve; taken back if the commit fails.
        keys.publish(new_keys);
        txn.commit()
            .map_err(io)
            .inspect_err(|_| keys.retract(new_keys))
    }
}
