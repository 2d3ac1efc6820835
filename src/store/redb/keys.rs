//! Index key numbers in memory: the digest of every index key the ledger has used, with
//! its number, loaded once at open from [`KEY_DIGESTS`] (number -> digest, one row
//! appended per new key). Owns that map and how it follows commits; it never decides
//! which keys exist (the projection does).
//!
//! Keyed by digest on disk, every new key (a name, a host name: three per creation) went
//! to a random page of a large table, a page written per key per commit; appended, a
//! batch's new keys share a page or two. The price is about 24 bytes of memory per key
//! and one scan of the table at open.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use ::redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::super::StoreError;
use super::tables::{KEY_DIGESTS, io};

/// Digest -> number of every key in the committed table, plus those of the commit in
/// flight (published before it and retracted if it fails: a reader that resolves such a
/// key finds no rows under it in its snapshot, which is right).
#[derive(Default)]
pub(super) struct KeyNumbers(RwLock<HashMap<[u8; 16], u32>>);

/// The keys one transaction numbered, by digest.
pub(super) type NewKeys = HashMap<[u8; 16], u32>;

/// The keys a replay numbered from an empty table: all of them.
impl From<NewKeys> for KeyNumbers {
    fn from(keys: NewKeys) -> KeyNumbers {
        KeyNumbers(RwLock::new(keys))
    }
}

impl KeyNumbers {
    /// Every key of `db`'s table (none in a new ledger, where the table is missing).
    pub(super) fn load(db: &Database) -> Result<KeyNumbers, StoreError> {
        let txn = db.begin_read().map_err(io)?;
        let table = match txn.open_table(KEY_DIGESTS) {
            Ok(t) => t,
            Err(::redb::TableError::TableDoesNotExist(_)) => return Ok(KeyNumbers::default()),
            Err(e) => return Err(io(e)),
        };
        let mut map =
            HashMap::with_capacity(usize::try_from(table.len().map_err(io)?).unwrap_or(0));
        for row in table.iter().map_err(io)? {
            let (number, digest) = row.map_err(io)?;
            map.insert(digest.value(), number.value());
        }
        Ok(KeyNumbers(RwLock::new(map)))
    }

    pub(super) fn get(&self, digest: &[u8; 16]) -> Option<u32> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(digest)
            .copied()
    }

    pub(super) fn publish(&self, new: &NewKeys) {
        if new.is_empty() {
            return;
        }
        let mut map = self.0.write().unwrap_or_else(PoisonError::into_inner);
        map.extend(new.iter().map(|(digest, n)| (*digest, *n)));
    }

    pub(super) fn retract(&self, new: &NewKeys) {
        if new.is_empty() {
            return;
        }
        let mut map = self.0.write().unwrap_or_else(PoisonError::into_inner);
        for digest in new.keys() {
            map.remove(digest);
        }
    }

    /// Takes `other`'s keys instead of these (after a rebuild renumbered them all).
    pub(super) fn replace(&self, other: KeyNumbers) {
        let other = other.0.into_inner().unwrap_or_else(PoisonError::into_inner);
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = other;
    }
}
