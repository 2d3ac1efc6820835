//! HTTP-free reads for every surface: visibility-scoped lookups and pages of instances and
//! catalog resources, as-of points, diffs, fleet changes, the feed and the digest. Each
//! read runs against one consistent store snapshot, opened here and nowhere above.
//!
//! A surface calls [`read`] with the caller's principal and a closure over a [`Reader`];
//! everything the reader hands out is bounded by the authorization policy (`authz::can`),
//! so another tenant's objects are simply not found. This module owns no HTTP types and
//! never renders: its [`QueryError`] is neutral, each surface renders it its own way.

pub mod access;
pub mod catalog;
pub mod feed;
pub mod history;
pub mod identity;
pub mod instances;
pub mod listing;
pub mod point;

use std::sync::Arc;

use uuid::Uuid;

use crate::authz::{Action, Principal};
use crate::projection::IndexKey;
use crate::service::Ledger;
pub use crate::store::{Envelope, Head, StreamKind};
use crate::store::{EventStore, Snapshot, StoreError};
pub use point::Point;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No such object, or none the caller may know of.
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    /// The instance was purged: its timeline stays readable, its view does not.
    #[error("the instance has been purged")]
    Gone,
    /// The caller sees the object but may not do this to it.
    #[error("your role does not allow this ({0:?})")]
    Forbidden(Action),
    /// The request names a range or point that cannot be answered (e.g. from after to).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The read could not run (its thread was lost).
    #[error("{0}")]
    Internal(String),
}

impl QueryError {
    pub fn not_found(kind: &'static str, id: impl std::fmt::Display) -> QueryError {
        QueryError::NotFound {
            kind,
            id: id.to_string(),
        }
    }
}

/// One caller's view of one snapshot.
pub struct Reader<'a> {
    snap: &'a dyn Snapshot,
    caller: &'a Principal,
}

impl<'a> Reader<'a> {
    pub fn caller(&self) -> &Principal {
        self.caller
    }

    /// The head of the log in this snapshot.
    pub fn head(&self) -> Result<Head, QueryError> {
        Ok(self.snap.head()?)
    }
}

/// Where reads come from: the ledger's store, without a handle on its writer (a long-lived
/// reader such as a live feed must not keep the writer running at shutdown).
#[derive(Clone)]
pub struct Source(Arc<dyn EventStore>);

impl From<&Source> for Source {
    fn from(source: &Source) -> Source {
        source.clone()
    }
}

impl From<&Ledger> for Source {
    fn from(ledger: &Ledger) -> Source {
        Source(ledger.store().clone())
    }
}

/// Runs `f` against one consistent snapshot of the ledger, as `caller` may see it, on the
/// blocking pool (stores are synchronous).
pub async fn read<T, F>(
    source: impl Into<Source>,
    caller: &Principal,
    f: F,
) -> Result<T, QueryError>
where
    T: Send + 'static,
    F: FnOnce(&Reader<'_>) -> Result<T, QueryError> + Send + 'static,
{
    let Source(store) = source.into();
    let caller = caller.clone();
    tokio::task::spawn_blocking(move || {
        let snap = store.read()?;
        f(&Reader {
            snap: &*snap,
            caller: &caller,
        })
    })
    .await
    .map_err(|e| QueryError::Internal(format!("a read did not finish: {e}")))?
}

/// Like [`read`], on the calling thread: for tools that are not servers (`ops`).
pub fn read_blocking<T>(
    store: &dyn EventStore,
    caller: &Principal,
    f: impl FnOnce(&Reader<'_>) -> Result<T, QueryError>,
) -> Result<T, QueryError> {
    let snap = store.read()?;
    f(&Reader {
        snap: &*snap,
        caller,
    })
}

/// Every id carrying `key`, page by page (grants and tenancy lists, small per caller).
fn all_with(snap: &dyn Snapshot, key: &IndexKey) -> Result<Vec<Uuid>, QueryError> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = snap.page(std::slice::from_ref(key), after, 1000)?;
        out.extend(&page.ids);
        match page.next {
            Some(n) => after = Some(n),
            None => return Ok(out),
        }
    }
}

/// Runs `f` on a snapshot without a caller: for what happens before anyone is known
/// (authenticating a token). Private to the query layer: surfaces always read as someone.
async fn read_unscoped<T, F>(ledger: &Ledger, f: F) -> Result<T, QueryError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Snapshot) -> Result<T, QueryError> + Send + 'static,
{
    let store: Arc<dyn EventStore> = ledger.store().clone();
    tokio::task::spawn_blocking(move || {
        let snap = store.read()?;
        f(&*snap)
    })
    .await
    .map_err(|e| QueryError::Internal(format!("a read did not finish: {e}")))?
}
