//! The journal: the durable half of a batch's commit on the embedded store. A batch's
//! stored events and idempotency records are appended here as one record and synced (one
//! write, one `fdatasync`) before its redb transaction commits without durability, in
//! memory and visible to readers. Every so often (`limits::JOURNAL_CHECKPOINT_BYTES`,
//! `limits::JOURNAL_CHECKPOINT_AGE`) a batch commits the file durably instead, which makes
//! every earlier batch durable there too, and the journal starts over. Opening the store
//! replays what the journal holds past the file's durable head through the same append
//! an import uses, so the file ends as if every batch had committed durably.
//!
//! Why: a durable redb commit writes the changed leaves and branches of a dozen trees and
//! syncs them (about 55 page writes per commit, measured with strace); a journal record is
//! one sequential write. The journal never decides or projects anything: it carries bytes
//! the transaction has already written, each event with the hash that checks it.
//!
//! Record: `len: u32 LE`, `crc32: u32 LE` of the body, body. Body: entries, each a tag
//! byte, then for an event (1) `position: u64 LE`, `n: u32 LE` and the n stored bytes
//! (the 32-byte hash, then the envelope's bytes); for an idempotency record (2) `n: u32
//! LE`, the key, `m: u32 LE`, the record. A record that is cut short or fails its
//! checksum is a write a crash interrupted (never acknowledged): the journal ends
//! before it.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use ::redb::StorageBackend;

use super::super::StoreError;
use crate::limits::JOURNAL_CHECKPOINT_AGE;

/// The journal's file in the data directory, beside the store's file.
pub const FILE_NAME: &str = "ledger.journal";

const HEADER: usize = 8;
const EVENT: u8 = 1;
const IDEMPOTENCY: u8 = 2;

pub(super) fn failed(e: std::io::Error) -> StoreError {
    super::tables::io(::redb::StorageError::Io(e))
}

pub(super) fn damaged(detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        at: "journal".into(),
        detail: detail.into(),
    }
}

/// The open journal file and how much of it holds whole, synced records.
pub(super) struct Journal {
    file: Box<dyn StorageBackend>,
    /// Bytes of whole records that were synced: a reopen after a failed append cuts the
    /// file back to this, so a record the disk refused is not replayed.
    len: u64,
    checkpointed: Instant,
    /// The handle failed: it is never written or synced again (the kernel may have
    /// dropped the pages a failed sync was to write); the store reopens the journal.
    broken: bool,
}

/// The journal behind its lock. A panic while it was held cannot leave it half-changed
/// in a way that matters: its length moves only after a record is whole and synced.
pub(super) fn lock(journal: &Mutex<Journal>) -> MutexGuard<'_, Journal> {
    journal.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One batch's record, put together while the transaction writes.
pub(super) struct Record {
    buf: Vec<u8>,
}

impl Default for Record {
    fn default() -> Record {
        Record {
            buf: vec![0; HEADER],
        }
    }
}

fn put_len(buf: &mut Vec<u8>, n: usize) -> Result<(), StoreError> {
    let n = u32::try_from(n).map_err(|_| damaged("an entry over 4 GiB"))?;
    buf.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

impl Record {
    /// An event as stored in the log: its position and its stored bytes (hash + body).
    pub(super) fn event(&mut self, position: u64, stored: &[u8]) -> Result<(), StoreError> {
        self.buf.push(EVENT);
        self.buf.extend_from_slice(&position.to_le_bytes());
        put_len(&mut self.buf, stored.len())?;
        self.buf.extend_from_slice(stored);
        Ok(())
    }

    pub(super) fn idempotency(&mut self, key: &str, record: &[u8]) -> Result<(), StoreError> {
        self.buf.push(IDEMPOTENCY);
        put_len(&mut self.buf, key.len())?;
        self.buf.extend_from_slice(key.as_bytes());
        put_len(&mut self.buf, record.len())?;
        self.buf.extend_from_slice(record);
        Ok(())
    }

    /// The framed bytes: length and checksum filled in.
    fn sealed(&mut self) -> Result<&[u8], StoreError> {
        let body = self.buf.len() - HEADER;
        let len = u32::try_from(body).map_err(|_| damaged("a batch over 4 GiB"))?;
        let crc = crc32fast::hash(&self.buf[HEADER..]);
        self.buf[..4].copy_from_slice(&len.to_le_bytes());
        self.buf[4..HEADER].copy_from_slice(&crc.to_le_bytes());
        Ok(&self.buf)
    }
}

/// What a replay finds in one record.
pub(super) enum Entry<'a> {
    Event { position: u64, stored: &'a [u8] },
    Idempotency { key: &'a str, record: &'a [u8] },
}

/// The records of a journal's bytes: each a list of entries. Stops at the first record
/// that is cut short or fails its checksum, and says where the whole records end.
pub(super) fn records(bytes: &[u8]) -> Result<(Vec<Vec<Entry<'_>>>, u64), StoreError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while bytes.len() - at >= HEADER {
        let len = u32::from_le_bytes(read4(&bytes[at..])) as usize;
        let crc = u32::from_le_bytes(read4(&bytes[at + 4..]));
        let start = at + HEADER;
        let Some(body) = bytes.get(start..start.saturating_add(len)) else {
            break;
        };
        if crc32fast::hash(body) != crc {
            break;
        }
        out.push(entries(body)?);
        at = start + len;
    }
    Ok((out, at as u64))
}

fn read4(b: &[u8]) -> [u8; 4] {
    let mut out = [0; 4];
    out.copy_from_slice(&b[..4]);
    out
}

/// The entries of a body whose checksum held: anything malformed now is damage, not a
/// torn write.
fn entries(mut body: &[u8]) -> Result<Vec<Entry<'_>>, StoreError> {
    fn take<'a>(body: &mut &'a [u8], n: usize) -> Result<&'a [u8], StoreError> {
        if body.len() < n {
            return Err(damaged("a record ends inside an entry"));
        }
        let (head, rest) = body.split_at(n);
        *body = rest;
        Ok(head)
    }
    fn sized<'a>(body: &mut &'a [u8]) -> Result<&'a [u8], StoreError> {
        let n = u32::from_le_bytes(read4(take(body, 4)?)) as usize;
        take(body, n)
    }
    let mut out = Vec::new();
    while let Some((&tag, rest)) = body.split_first() {
        body = rest;
        match tag {
            EVENT => {
                let mut position = [0; 8];
                position.copy_from_slice(take(&mut body, 8)?);
                out.push(Entry::Event {
                    position: u64::from_le_bytes(position),
                    stored: sized(&mut body)?,
                });
            }
            IDEMPOTENCY => {
                let key = std::str::from_utf8(sized(&mut body)?)
                    .map_err(|_| damaged("an idempotency key is not UTF-8"))?;
                out.push(Entry::Idempotency {
                    key,
                    record: sized(&mut body)?,
                });
            }
            other => return Err(damaged(format!("unknown entry tag {other}"))),
        }
    }
    Ok(out)
}

impl Journal {
    /// Takes an opened journal file whose first `len` bytes are known to be whole records
    /// (the rest, if any, is cut off now).
    pub(super) fn new(file: Box<dyn StorageBackend>, len: u64) -> Result<Journal, StoreError> {
        if file.len().map_err(failed)? != len {
            file.set_len(len).map_err(failed)?;
            file.sync_data().map_err(failed)?;
        }
        Ok(Journal {
            file,
            len,
            checkpointed: Instant::now(),
            broken: false,
        })
    }

    /// Every byte of the file, for a replay.
    pub(super) fn contents(file: &dyn StorageBackend) -> Result<Vec<u8>, StoreError> {
        let len = usize::try_from(file.len().map_err(failed)?)
            .map_err(|_| damaged("a journal larger than memory"))?;
        let mut bytes = vec![0; len];
        file.read(0, &mut bytes).map_err(failed)?;
        Ok(bytes)
    }

    /// The length of the whole records, which a reopen keeps.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Whether the next batch should commit the file durably and start the journal over:
    /// the journal holds `bytes` ([`crate::limits::JOURNAL_CHECKPOINT_BYTES`] unless a test says
    /// otherwise), or anything for [`JOURNAL_CHECKPOINT_AGE`].
    pub(super) fn due(&self, bytes: u64) -> bool {
        self.len >= bytes || (self.len > 0 && self.checkpointed.elapsed() >= JOURNAL_CHECKPOINT_AGE)
    }

    pub(super) fn broken(&self) -> bool {
        self.broken
    }

    fn usable(&self) -> Result<(), StoreError> {
        if self.broken {
            return Err(StoreError::Io(
                "the journal failed and is being reopened; retry shortly".into(),
            ));
        }
        Ok(())
    }

    /// Appends `record` and syncs it: once this returns, the batch is durable. Returns
    /// the length before it, for [`Journal::undo`].
    pub(super) fn append(&mut self, record: &mut Record) -> Result<u64, StoreError> {
        self.usable()?;
        let bytes = record.sealed()?;
        let synced = self
            .file
            .write(self.len, bytes)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = synced {
            self.broken = true;
            return Err(failed(e));
        }
        let mark = self.len;
        self.len += bytes.len() as u64;
        Ok(mark)
    }

    /// Takes back the record appended after `mark`, whose batch did not commit: it was
    /// never acknowledged. Should the file refuse, the reopen cuts it off.
    pub(super) fn undo(&mut self, mark: u64) {
        self.len = mark;
        let cut = self.file.set_len(mark).and_then(|()| self.file.sync_data());
        if cut.is_err() {
            self.broken = true;
        }
    }

    /// Starts over after the file committed durably: what the journal held is in it.
    pub(super) fn reset(&mut self) -> Result<(), StoreError> {
        self.usable()?;
        self.checkpointed = Instant::now();
        if self.len == 0 {
            return Ok(());
        }
        let cut = self.file.set_len(0).and_then(|()| self.file.sync_data());
        if let Err(e) = cut {
            self.broken = true;
            return Err(failed(e));
        }
        self.len = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(events: &[(u64, &[u8])], keys: &[(&str, &[u8])]) -> Vec<u8> {
        let mut r = Record::default();
        for (p, s) in events {
            r.event(*p, s).expect("event");
        }
        for (k, v) in keys {
            r.idempotency(k, v).expect("key");
        }
        r.sealed().expect("sealed").to_vec()
    }

    #[test]
    fn whole_records_read_back_and_a_torn_tail_is_left_out() {
        let mut bytes = record(&[(1, b"one"), (2, b"two")], &[("k", b"rec")]);
        let first = bytes.len() as u64;
        bytes.extend(record(&[(3, b"three")], &[]));
        let whole = bytes.len() as u64;
        let (found, end) = records(&bytes).expect("records");
        assert_eq!((found.len(), end), (2, whole));
        match &found[0][2] {
            Entry::Idempotency { key, record } => assert_eq!((*key, *record), ("k", &b"rec"[..])),
            Entry::Event { .. } => panic!("the third entry is the key"),
        }
        // Every cut inside the second record, and any flipped byte in it, ends the
        // journal after the first.
        for cut in first + 1..whole {
            let (found, end) = records(&bytes[..cut as usize]).expect("records");
            assert_eq!((found.len(), end), (1, first), "cut at {cut}");
        }
        for flip in first as usize..whole as usize {
            let mut damaged = bytes.clone();
            damaged[flip] ^= 0x40;
            let (found, end) = records(&damaged).expect("records");
            assert_eq!(found.len(), 1, "flipped byte {flip}");
            assert_eq!(end, first, "flipped byte {flip}");
        }
    }

    #[test]
    fn a_record_whose_checksum_holds_but_whose_entries_do_not_is_damage() {
        let mut r = Record::default();
        r.buf.push(9);
        let bytes = r.sealed().expect("sealed").to_vec();
        assert!(matches!(records(&bytes), Err(StoreError::Corrupt { .. })));
    }
}
