//! The one neutral failure every surface renders: what went wrong, with the data a
//! renderer needs (operation, current and allowed states, the reference, the limit, the
//! versions). Errors of the layers below are converted here once; the native API renders
//! a failure as problem+json, each dialect in its vendor's shape.

use crate::domain::DomainError;
use crate::domain::lifecycle::{Operation, State};
use crate::query::QueryError;
use crate::service::{AddressProblem, Reference, ServiceError, SizingProblem};
use crate::store::StoreError;

/// Which part of a request was bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The body is not JSON (syntax or end of input).
    MalformedJson,
    /// The body is JSON but not what the operation takes (types, unknown fields, missing).
    InvalidBody,
    /// A field has a value outside its rules.
    InvalidField,
    /// A query parameter is unknown or invalid.
    InvalidParameter,
    /// A header is invalid.
    InvalidHeader,
}

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{detail}")]
    BadRequest { input: Input, detail: String },
    #[error("a valid bearer token is required")]
    Unauthenticated,
    /// A token was presented and refused (unknown, revoked or malformed).
    #[error("the token is not valid")]
    BadToken,
    #[error("{0} not found")]
    NotFound(String),
    /// A uniqueness rule refused the request (e.g. a username in use).
    #[error("{0}")]
    Taken(String),
    /// Authenticated, allowed to see the object, not allowed to do this to it.
    #[error("{0}")]
    Forbidden(String),
    #[error("no such route")]
    NoRoute,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("the instance has been purged")]
    Gone,
    #[error("cannot {operation} an instance that is {current}")]
    InvalidTransition {
        operation: Operation,
        current: State,
        allowed: &'static [State],
    },
    /// The instance is locked and the caller is not staff.
    #[error("the instance is locked")]
    Locked { operation: Operation },
    /// Someone else's lock.
    #[error("the instance was locked by someone else")]
    LockHeld,
    /// An ISO is attached already (`attached`), or none is.
    #[error("{}", if *attached { "an ISO is attached already" } else { "no ISO is attached" })]
    Iso { attached: bool },
    #[error("If-Match expected version {expected}, the current version is {actual}")]
    VersionMismatch { expected: u64, actual: u64 },
    #[error("request body exceeds {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("request body must be application/json")]
    UnsupportedMediaType,
    #[error("{id} is not a known {}", reference.kind())]
    UnknownReference { reference: Reference, id: String },
    /// The sizes asked for do not fit the flavor.
    #[error("{0}")]
    Sizing(SizingProblem),
    /// The flavor may not be used in the project.
    #[error("flavor {flavor} may not be used in project {project}")]
    FlavorNotInProject { flavor: String, project: String },
    /// The address an instance asked for, or its network, refused it.
    #[error("address {}: {problem}", address.as_deref().unwrap_or("(any)"))]
    Address {
        address: Option<String>,
        problem: AddressProblem,
    },
    #[error("the Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("the ledger is busy; retry shortly")]
    Overloaded,
    #[error("the ledger cannot serve this request now: {0}")]
    Unavailable(String),
    /// The disk is full: nothing was written; reads go on, writes resume once there is room.
    #[error("the ledger's disk is full; nothing was written: {0}")]
    StorageFull(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Failure {
    pub fn bad_request(input: Input, detail: impl Into<String>) -> Failure {
        Failure::BadRequest {
            input,
            detail: detail.into(),
        }
    }

    /// The refusal of a query parameter the route does not take.
    pub fn unknown_parameter(name: &str) -> Failure {
        Failure::bad_request(
            Input::InvalidParameter,
            format!("unknown query parameter {name:?}"),
        )
    }

    /// An invalid query parameter, with the message saying why.
    pub fn parameter(detail: impl Into<String>) -> Failure {
        Failure::bad_request(Input::InvalidParameter, detail)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        match e {
            StoreError::Corrupt { .. } => {
                tracing::error!(error = %e, "store corruption detected");
                Failure::Internal(e.to_string())
            }
            StoreError::Full(detail) => Failure::StorageFull(detail),
            other => Failure::Unavailable(other.to_string()),
        }
    }
}

impl From<QueryError> for Failure {
    fn from(e: QueryError) -> Failure {
        match e {
            // The kind only: an id spelled back (or worse, resolved) would tell an object hidden
            // from the caller apart from one that does not exist.
            QueryError::NotFound { kind, .. } => Failure::NotFound(kind.to_string()),
            QueryError::Gone => Failure::Gone,
            QueryError::Forbidden(action) => {
                Failure::Forbidden(format!("your role does not allow this ({action:?})"))
            }
            QueryError::Invalid(why) => Failure::parameter(why),
            QueryError::Store(e) => e.into(),
            QueryError::Internal(why) => Failure::Internal(why),
        }
    }
}

impl From<ServiceError> for Failure {
    fn from(e: ServiceError) -> Failure {
        match e {
            ServiceError::Domain(DomainError::InvalidTransition {
                current: State::Purged,
                ..
            }) => Failure::Gone,
            ServiceError::Domain(DomainError::InvalidTransition {
                operation,
                current,
                allowed,
            }) => Failure::InvalidTransition {
                operation,
                current,
                allowed,
            },
            ServiceError::Domain(DomainError::NotFound) => Failure::NotFound("instance".into()),
            ServiceError::Domain(DomainError::NoSuchGrant) => Failure::NotFound("grant".into()),
            ServiceError::Domain(DomainError::Locked { operation }) => {
                Failure::Locked { operation }
            }
            ServiceError::Domain(DomainError::LockHeld) => Failure::LockHeld,
            ServiceError::Domain(DomainError::IsoAttached) => Failure::Iso { attached: true },
            ServiceError::Domain(DomainError::NoIso) => Failure::Iso { attached: false },
            ServiceError::UsernameTaken(name) => {
                Failure::Taken(format!("the username {name:?} is taken"))
            }
            ServiceError::Domain(DomainError::AlreadyExists) => {
                Failure::Internal("a freshly generated id already exists".into())
            }
            ServiceError::VersionMismatch { expected, actual } => {
                Failure::VersionMismatch { expected, actual }
            }
            ServiceError::UnknownReference { reference, id } => Failure::UnknownReference {
                reference,
                id: id.to_string(),
            },
            ServiceError::Address { address, problem } => Failure::Address { address, problem },
            ServiceError::Sizing(problem) => Failure::Sizing(problem),
            ServiceError::FlavorNotInProject { flavor, project } => Failure::FlavorNotInProject {
                flavor: flavor.to_string(),
                project: project.to_string(),
            },
            ServiceError::NameTaken { .. } | ServiceError::HostnameTaken(_) => {
                Failure::Taken(e.to_string())
            }
            ServiceError::Forbidden(action) => {
                Failure::Forbidden(format!("your role does not allow this ({action:?})"))
            }
            ServiceError::IdempotencyKeyReused => Failure::IdempotencyKeyReused,
            ServiceError::Overloaded => Failure::Overloaded,
            ServiceError::Unavailable(why) => Failure::Unavailable(why),
            ServiceError::Store(e) => e.into(),
            ServiceError::Internal(why) => Failure::Internal(why),
        }
    }
}

impl From<actix_web::error::BlockingError> for Failure {
    fn from(e: actix_web::error::BlockingError) -> Failure {
        Failure::Internal(e.to_string())
    }
}

/// Implements, for a surface's error type, the conversions `?` needs from every layer's
/// error: each goes through [`Failure`] (converted in one place) and then `$wrap`, the
/// function or variant that makes the surface's error from a failure.
#[macro_export]
macro_rules! surface_error {
    ($ty:ty, $wrap:path) => {
        impl From<$crate::api::Failure> for $ty {
            fn from(f: $crate::api::Failure) -> $ty {
                $wrap(f)
            }
        }
        impl From<$crate::query::QueryError> for $ty {
            fn from(e: $crate::query::QueryError) -> $ty {
                $wrap(e.into())
            }
        }
        impl From<$crate::service::ServiceError> for $ty {
            fn from(e: $crate::service::ServiceError) -> $ty {
                $wrap(e.into())
            }
        }
        impl From<actix_web::error::BlockingError> for $ty {
            fn from(e: actix_web::error::BlockingError) -> $ty {
                $wrap(e.into())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purged_instances_answer_gone_for_any_operation() {
        let f = Failure::from(ServiceError::Domain(DomainError::InvalidTransition {
            operation: Operation::Start,
            current: State::Purged,
            allowed: &[State::Stopped],
        }));
        assert!(matches!(f, Failure::Gone), "{f:?}");
    }

    #[test]
    fn corruption_is_internal_and_an_outage_is_unavailable() {
        let corrupt = StoreError::Corrupt {
            at: "position 1".into(),
            detail: "bad".into(),
        };
        assert!(matches!(Failure::from(corrupt), Failure::Internal(_)));
        assert!(matches!(
            Failure::from(StoreError::Io("gone".into())),
            Failure::Unavailable(_)
        ));
    }
}
