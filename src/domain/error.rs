//! The domain's one error type; each API surface renders it in its own shape.

use super::lifecycle::{Operation, State};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The command is not legal in the instance's current state.
    #[error("cannot {operation} an instance that is {current}")]
    InvalidTransition {
        operation: Operation,
        current: State,
        allowed: &'static [State],
    },
    /// The command targets a stream that does not exist yet (or creates one that does).
    #[error("instance does not exist")]
    NotFound,
    #[error("instance already exists")]
    AlreadyExists,
    /// Removing a grant, owner or token that is not there.
    #[error("no such grant")]
    NoSuchGrant,
    /// The instance is locked: only staff may do this now.
    #[error("the instance is locked")]
    Locked { operation: Operation },
    /// The lock belongs to another kind of holder.
    #[error("the instance was locked by someone else")]
    LockHeld,
    /// An ISO is attached already (one at a time).
    #[error("an ISO is attached already")]
    IsoAttached,
    #[error("no ISO is attached")]
    NoIso,
}
