//! Command handling: surfaces prepare a write here ([`prepare`]: references resolved,
//! the named object authorized), it goes through the single writer ([`writer`]: group
//! commit) and comes back as a reply once durable. Reads are the `query` layer's.

pub mod address;
mod batch;
pub mod idempotency;
pub mod prepare;
pub mod writer;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::domain::DomainError;
use crate::domain::catalog::{self, Kind, Resource};
use crate::domain::identity;
use crate::domain::instance::{self, Instance};
use crate::store::{EventStore, StoreError};
pub use idempotency::IdempotencyKey;
pub use prepare::{InstanceRequest, Reference, Sizes};
pub use writer::{Pending, WriterConfig};

/// The origin of the requests drivers make ([`crate::driver`]): nobody waits on them.
pub const DRIVER_ORIGIN: &str = "driver";

/// Who asked, through which request and surface, and under which idempotency key.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub actor: String,
    /// The caller's token id, recorded with every event it causes.
    pub token_id: Option<String>,
    pub request_id: String,
    pub origin: String,
    pub idempotency: Option<IdempotencyKey>,
    /// The caller is staff: locks do not hold it back. Not recorded (the actor is).
    pub staff: bool,
}

#[derive(Debug, Clone)]
pub enum WriteCommand {
    /// The writer assigns the id (uuid v7, so ids sort in commit order) and the short id.
    CreateInstance(Box<instance::Spec>),
    /// Up to `max` instances of one spec, all or nothing: as many as fit (each needs an
    /// address on its first network) as long as that is at least `min`.
    CreateInstances {
        spec: Box<instance::Spec>,
        min: usize,
        max: usize,
        /// The host name is a lease unique among the customer's live instances; without
        /// one, the short id (without `i-`) is the host name.
        hostname_lease: bool,
    },
    /// Commands applied in order, all or nothing (e.g. destroy then purge).
    Instance {
        id: Uuid,
        commands: Vec<instance::Command>,
    },
    CreateResource {
        kind: Kind,
        spec: catalog::Spec,
    },
    /// Adds or removes a customer owner or project member.
    Grant {
        resource_id: Uuid,
        grant: catalog::Grant,
    },
    /// The writer assigns the id and checks that the username is free.
    CreateUser(identity::NewUser),
    User {
        id: Uuid,
        command: identity::UserCommand,
    },
}

#[derive(Debug, Clone)]
pub struct WriteRequest {
    pub command: WriteCommand,
    pub meta: RequestMeta,
    /// `If-Match`: the instance version the caller last saw.
    pub expected_version: Option<u64>,
}

/// What a successful write produced; stored with idempotency keys so retries get the
/// original answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Instance(Box<Instance>),
    /// The instances one request created, in creation order.
    Instances(Vec<Instance>),
    Resource(Resource),
    User(Box<identity::User>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub outcome: Outcome,
    /// True when an idempotency key matched an earlier request: nothing was appended.
    pub replayed: bool,
    /// The log position after this request's events (its last event, or the head).
    pub position: u64,
}

/// Why an instance cannot have the address it asked for (or any address).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressProblem {
    #[error("an address needs a network")]
    NoNetwork,
    #[error("not inside the network {cidr}")]
    OutsideNetwork { cidr: String },
    #[error("held by another instance on the network")]
    Taken,
    #[error("the network has no free address")]
    NetworkFull,
}

/// Why the sizes of an instance do not fit its flavor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizingProblem {
    #[error("the flavor is custom: vCPUs and memory are required")]
    Required,
    #[error("the flavor is not custom: vCPUs and memory come from it")]
    NotCustom,
    #[error("at most {vcpus} vCPUs and {memory_mb} MB of memory")]
    AboveFlavor { vcpus: u32, memory_mb: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("version mismatch: expected {expected}, current {actual}")]
    VersionMismatch { expected: u64, actual: u64 },
    #[error("the idempotency key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("the username {0:?} is taken")]
    UsernameTaken(String),
    /// The address asked for, or the network it was to be taken from, refused it.
    #[error("address {}: {problem}", address.as_deref().unwrap_or("(any)"))]
    Address {
        address: Option<String>,
        problem: AddressProblem,
    },
    /// The sizes asked for do not fit the flavor.
    #[error("{0}")]
    Sizing(SizingProblem),
    /// The flavor may not be used in the project.
    #[error("flavor {flavor} may not be used in project {project}")]
    FlavorNotInProject { flavor: Uuid, project: Uuid },
    /// A name that must be unique among resources of its kind is in use.
    #[error("a {} named {name:?} exists", kind.as_str())]
    NameTaken { kind: Kind, name: String },
    /// Another live instance of the customer holds the host name.
    #[error("the host name {0:?} is taken in this customer")]
    HostnameTaken(String),
    /// A reference in the request names nothing the caller may see.
    #[error("{id} is not a known {}", reference.kind())]
    UnknownReference { reference: Reference, id: Uuid },
    /// The caller sees the object named in the request but may not do this to it.
    #[error("your role does not allow this ({0:?})")]
    Forbidden(crate::authz::Action),
    #[error("the write queue is full")]
    Overloaded,
    #[error("the ledger is not accepting writes: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl ServiceError {
    /// Whether the same request may succeed if sent again later unchanged: the queue was
    /// full, the store was away, or its disk was full.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ServiceError::Overloaded
                | ServiceError::Unavailable(_)
                | ServiceError::Store(StoreError::Full(_))
        )
    }
}

struct Job {
    request: WriteRequest,
    reply: oneshot::Sender<Result<Reply, ServiceError>>,
}

/// A cheap, cloneable handle to the ledger: submit writes, open read snapshots.
#[derive(Clone)]
pub struct Ledger {
    store: Arc<dyn EventStore>,
    queue: mpsc::Sender<Job>,
    /// The error of the writer's last failed commit, cleared by its next success.
    last_failure: Arc<std::sync::Mutex<Option<String>>>,
    /// The head position after each commit: wakes live readers (the store is the truth).
    commits: watch::Receiver<u64>,
}

impl Ledger {
    /// Starts the writer thread. It ends once every `Ledger` clone is dropped.
    pub fn start(
        store: Arc<dyn EventStore>,
        config: WriterConfig,
        pending: Option<mpsc::UnboundedSender<Pending>>,
    ) -> Result<(Ledger, std::thread::JoinHandle<()>), ServiceError> {
        let (queue, rx) = mpsc::channel(config.queue_capacity.max(1));
        let last_failure = Arc::new(std::sync::Mutex::new(None));
        let head = store.read()?.head()?.position;
        let (commits_tx, commits) = watch::channel(head);
        // Commits by other nodes sharing the store wake live readers too.
        let remote = commits_tx.clone();
        store.watch_commits(Box::new(move |p| {
            writer::advance(&remote, p);
            !remote.is_closed()
        }))?;
        let handle = writer::spawn(
            store.clone(),
            rx,
            config,
            pending,
            last_failure.clone(),
            commits_tx,
        )?;
        Ok((
            Ledger {
                store,
                queue,
                last_failure,
                commits,
            },
            handle,
        ))
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// Whether writes can be expected to succeed: the writer runs and its last commit
    /// did not fail.
    pub fn writer_health(&self) -> Result<(), String> {
        if self.queue.is_closed() {
            return Err("the writer has stopped".into());
        }
        match self.last_failure.lock() {
            Ok(guard) => match guard.as_ref() {
                Some(e) => Err(format!("the last commit failed: {e}")),
                None => Ok(()),
            },
            Err(_) => Err("the writer's status is unreadable".into()),
        }
    }

    /// The head of the log, read from the store: whether the store answers.
    pub async fn store_head(&self) -> Result<crate::store::Head, ServiceError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || Ok(store.read()?.head()?))
            .await
            .map_err(|e| ServiceError::Internal(format!("a read did not finish: {e}")))?
    }

    /// How many bytes the store occupies, when it knows.
    pub async fn store_size(&self) -> Result<Option<u64>, ServiceError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || Ok(store.size_bytes()?))
            .await
            .map_err(|e| ServiceError::Internal(format!("a read did not finish: {e}")))?
    }

    /// A receiver that changes whenever a commit moves the head.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.commits.clone()
    }

    /// How many writes wait for the writer.
    pub fn queue_depth(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Queues a write and waits until it is durable (or refused). A full queue is refused
    /// at once rather than buffered without bound.
    pub async fn submit(&self, request: WriteRequest) -> Result<Reply, ServiceError> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .try_send(Job { request, reply: tx })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => ServiceError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => {
                    ServiceError::Unavailable("the writer has stopped".into())
                }
            })?;
        rx.await
            .map_err(|_| ServiceError::Unavailable("the writer stopped before answering".into()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_and_an_outage_are_worth_retrying_a_refusal_is_not() {
        for e in [
            ServiceError::Overloaded,
            ServiceError::Unavailable("away".into()),
            ServiceError::Store(StoreError::Full("no space".into())),
        ] {
            assert!(e.is_transient(), "{e}");
        }
        for e in [
            ServiceError::Store(StoreError::Io("broken".into())),
            ServiceError::IdempotencyKeyReused,
            ServiceError::Internal("bug".into()),
        ] {
            assert!(!e.is_transient(), "{e}");
        }
    }
}
