//! Operator commands: what `ledgerctl` (and `ledger verify`/`ledger export`) run. Offline
//! on a ledger, a data directory (the server stopped) or a PostgreSQL database (nodes may
//! run): [`check`] (verify, rebuild), [`transfer`] (export, import: the migration path
//! between backends), [`inspect`] (history, diff, audit, stats through the same `query`
//! code the API uses). Online against a server: [`tail`] (the live feed).
//!
//! Commands return reports and [`OpsError`]s; they never print. Rendering (tables, JSON,
//! progress bars) belongs to the tool.

pub mod check;
pub mod inspect;
pub mod tail;
pub mod transfer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::query::QueryError;
use crate::store::postgres::PgStore;
use crate::store::redb::RedbStore;
use crate::store::{EventStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The command was asked for something it cannot do as asked.
    #[error("{0}")]
    Usage(String),
    /// The ledger, a file or the server could not be opened or reached.
    #[error("{0}")]
    Open(String),
    /// The ledger (or an import file) is damaged: where, and how.
    #[error("damage at {at}: {detail}")]
    Damage { at: String, detail: String },
    /// An import file is not a ledger: the line, and why.
    #[error("line {line}: {detail}")]
    BadLine { line: u64, detail: String },
    /// Anything else that stopped the command (I/O while running, a lost connection).
    #[error("{0}")]
    Failed(String),
}

impl OpsError {
    /// The process exit code: 1 damage found (or a bad import file), 2 usage, 3 cannot
    /// open; other failures are 1 as well, since the command did not confirm anything.
    pub fn exit_code(&self) -> i32 {
        match self {
            OpsError::Usage(_) => 2,
            OpsError::Open(_) => 3,
            OpsError::Damage { .. } | OpsError::BadLine { .. } | OpsError::Failed(_) => 1,
        }
    }

    /// A short name of the kind of failure, for machine-readable output.
    pub fn kind(&self) -> &'static str {
        match self {
            OpsError::Usage(_) => "usage",
            OpsError::Open(_) => "cannot_open",
            OpsError::Damage { .. } => "damage",
            OpsError::BadLine { .. } => "bad_line",
            OpsError::Failed(_) => "failed",
        }
    }
}

impl From<StoreError> for OpsError {
    fn from(e: StoreError) -> OpsError {
        match e {
            StoreError::Corrupt { at, detail } => OpsError::Damage { at, detail },
            StoreError::Locked(_) => OpsError::Open(e.to_string()),
            other => OpsError::Failed(other.to_string()),
        }
    }
}

impl From<QueryError> for OpsError {
    fn from(e: QueryError) -> OpsError {
        match e {
            QueryError::Store(e) => e.into(),
            QueryError::NotFound { .. } | QueryError::Gone | QueryError::Invalid(_) => {
                OpsError::Usage(e.to_string())
            }
            other => OpsError::Failed(other.to_string()),
        }
    }
}

/// Reads through the API's own query code as the staff principal: an operator on the
/// ledger's files sees everything.
fn read<T>(
    store: &dyn EventStore,
    f: impl FnOnce(&crate::query::Reader<'_>) -> Result<T, QueryError>,
) -> Result<T, OpsError> {
    Ok(crate::query::read_blocking(
        store,
        &crate::authz::Principal::bootstrap(),
        f,
    )?)
}

/// Which ledger a command works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The embedded store in this data directory (the server must be stopped).
    DataDir(PathBuf),
    /// The PostgreSQL database at this URL (nodes may be running).
    Postgres(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::DataDir(dir) => write!(f, "{}", dir.display()),
            // The URL may carry a password: name the database only.
            Target::Postgres(url) => write!(
                f,
                "PostgreSQL database {}",
                url.rsplit('/').next().unwrap_or("")
            ),
        }
    }
}

/// How long opening a PostgreSQL target may wait for the database.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Target {
    /// Opens the ledger. A data directory must already hold one unless `create` (an
    /// import target); opening never runs a server, so the projections are whatever is
    /// stored (`verify` says whether they are current).
    pub fn open(&self, create: bool) -> Result<Arc<dyn EventStore>, OpsError> {
        match self {
            Target::DataDir(dir) => {
                let file = dir.join(crate::store::redb::FILE_NAME);
                if !create && !file.exists() {
                    return Err(OpsError::Open(format!(
                        "no ledger in {} (expected {})",
                        dir.display(),
                        file.display()
                    )));
                }
                let store = RedbStore::open(dir).map_err(|e| open_failure(self, e))?;
                Ok(Arc::new(store))
            }
            Target::Postgres(url) => {
                let store = PgStore::connect(url, CONNECT_TIMEOUT)
                    .map_err(|e| OpsError::Open(format!("cannot open {self}: {e}")))?;
                Ok(Arc::new(store))
            }
        }
    }
}

/// A store that does not open is held by a server (exit 3), damaged beyond opening (a
/// truncated or overwritten file: exit 1, it is damage), or unreachable (exit 3).
fn open_failure(target: &Target, e: StoreError) -> OpsError {
    match e {
        StoreError::Locked(_) => OpsError::Open(format!(
            "{e}; stop the server first, or work on a copy of the data directory"
        )),
        StoreError::Corrupt { at, detail } => OpsError::Damage { at, detail },
        other => OpsError::Open(format!("cannot open {target}: {other}")),
    }
}
