//! The API layer's error: every failure a native caller can see, rendered once as an
//! RFC 9457 `application/problem+json` body with a stable `code`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::DomainError;
use crate::domain::lifecycle::{Operation, State};
use crate::service::ServiceError;
use crate::store::StoreError;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// The stable `code` of every problem this API returns. `ApiError::code` returns these, so
/// the OpenAPI document lists exactly the codes the server can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProblemCode {
    MalformedJson,
    InvalidBody,
    InvalidField,
    InvalidParameter,
    InvalidHeader,
    Unauthorized,
    NotFound,
    MethodNotAllowed,
    Gone,
    InvalidTransition,
    VersionMismatch,
    PayloadTooLarge,
    UnsupportedMediaType,
    UnknownReference,
    IdempotencyKeyReused,
    Forbidden,
    Conflict,
    Overloaded,
    Unavailable,
    Internal,
}

impl ProblemCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemCode::MalformedJson => "malformed_json",
            ProblemCode::InvalidBody => "invalid_body",
            ProblemCode::InvalidField => "invalid_field",
            ProblemCode::InvalidParameter => "invalid_parameter",
            ProblemCode::InvalidHeader => "invalid_header",
            ProblemCode::Unauthorized => "unauthorized",
            ProblemCode::NotFound => "not_found",
            ProblemCode::MethodNotAllowed => "method_not_allowed",
            ProblemCode::Gone => "gone",
            ProblemCode::InvalidTransition => "invalid_transition",
            ProblemCode::VersionMismatch => "version_mismatch",
            ProblemCode::PayloadTooLarge => "payload_too_large",
            ProblemCode::UnsupportedMediaType => "unsupported_media_type",
            ProblemCode::UnknownReference => "unknown_reference",
            ProblemCode::IdempotencyKeyReused => "idempotency_key_reused",
            ProblemCode::Forbidden => "forbidden",
            ProblemCode::Conflict => "conflict",
            ProblemCode::Overloaded => "overloaded",
            ProblemCode::Unavailable => "unavailable",
            ProblemCode::Internal => "internal",
        }
    }
}

/// An RFC 9457 problem as this API renders it. Extension members appear only on the
/// problems they belong to.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `urn:instance-ledger:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub code: ProblemCode,
    pub detail: String,
    /// `invalid_transition`: the refused operation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
    /// `invalid_transition`: the instance's state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_state: Option<State>,
    /// `invalid_transition`: the states from which the operation is legal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_states: Option<Vec<State>>,
    /// `version_mismatch`: the version sent in `If-Match`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
    /// `version_mismatch`: the instance's current version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<u64>,
    /// `unknown_reference`: the request field holding the unknown id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed JSON, wrong types, unknown fields, invalid values or parameters.
    #[error("{detail}")]
    BadRequest { code: ProblemCode, detail: String },
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("{0} not found")]
    NotFound(String),
    /// A uniqueness rule refused the request (e.g. a username in use).
    #[error("{0}")]
    Conflict(String),
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
    #[error("If-Match expected version {expected}, the current version is {actual}")]
    VersionMismatch { expected: u64, actual: u64 },
    #[error("request body exceeds {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("request body must be application/json")]
    UnsupportedMediaType,
    #[error("{field} refers to {id}, which is not a known {kind}")]
    UnknownReference {
        field: String,
        id: String,
        kind: &'static str,
    },
    #[error("the Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("the ledger is busy; retry shortly")]
    Overloaded,
    #[error("the ledger cannot serve this request now: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(code: ProblemCode, detail: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    pub fn code(&self) -> ProblemCode {
        match self {
            ApiError::BadRequest { code, .. } => *code,
            ApiError::Unauthorized => ProblemCode::Unauthorized,
            ApiError::NotFound(_) | ApiError::NoRoute => ProblemCode::NotFound,
            ApiError::Forbidden(_) => ProblemCode::Forbidden,
            ApiError::Conflict(_) => ProblemCode::Conflict,
            ApiError::MethodNotAllowed => ProblemCode::MethodNotAllowed,
            ApiError::Gone => ProblemCode::Gone,
            ApiError::InvalidTransition { .. } => ProblemCode::InvalidTransition,
            ApiError::VersionMismatch { .. } => ProblemCode::VersionMismatch,
            ApiError::PayloadTooLarge { .. } => ProblemCode::PayloadTooLarge,
            ApiError::UnsupportedMediaType => ProblemCode::UnsupportedMediaType,
            ApiError::UnknownReference { .. } => ProblemCode::UnknownReference,
            ApiError::IdempotencyKeyReused => ProblemCode::IdempotencyKeyReused,
            ApiError::Overloaded => ProblemCode::Overloaded,
            ApiError::Unavailable(_) => ProblemCode::Unavailable,
            ApiError::Internal(_) => ProblemCode::Internal,
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "Bad request",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::NotFound(_) | ApiError::NoRoute => "Not found",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::Conflict(_) => "Conflict",
            ApiError::MethodNotAllowed => "Method not allowed",
            ApiError::Gone => "Gone",
            ApiError::InvalidTransition { .. } => "Invalid state transition",
            ApiError::VersionMismatch { .. } => "Version mismatch",
            ApiError::PayloadTooLarge { .. } => "Payload too large",
            ApiError::UnsupportedMediaType => "Unsupported media type",
            ApiError::UnknownReference { .. } => "Unknown reference",
            ApiError::IdempotencyKeyReused => "Idempotency key reused",
            ApiError::Overloaded => "Overloaded",
            ApiError::Unavailable(_) => "Service unavailable",
            ApiError::Internal(_) => "Internal error",
        }
    }

    /// The problem body: internal details go to the log, not to the caller.
    pub fn problem(&self) -> Problem {
        let detail = match self {
            ApiError::Internal(_) => "an internal error occurred; see the server log".to_string(),
            other => other.to_string(),
        };
        let mut p = Problem {
            kind: format!("urn:instance-ledger:problem:{}", self.code().as_str()),
            title: self.title().into(),
            status: self.status_code().as_u16(),
            code: self.code(),
            detail,
            operation: None,
            current_state: None,
            allowed_states: None,
            expected_version: None,
            current_version: None,
            field: None,
        };
        match self {
            ApiError::InvalidTransition {
                operation,
                current,
                allowed,
            } => {
                p.operation = Some(*operation);
                p.current_state = Some(*current);
                p.allowed_states = Some(allowed.to_vec());
            }
            ApiError::VersionMismatch { expected, actual } => {
                p.expected_version = Some(*expected);
                p.current_version = Some(*actual);
            }
            ApiError::UnknownReference { field, .. } => p.field = Some(field.clone()),
            _ => {}
        }
        p
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Gone => StatusCode::GONE,
            ApiError::InvalidTransition { .. } => StatusCode::CONFLICT,
            ApiError::VersionMismatch { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::UnknownReference { .. } | ApiError::IdempotencyKeyReused => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Overloaded | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status_code());
        resp.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        match self {
            ApiError::Unauthorized => {
                resp.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"instance-ledger\""));
            }
            ApiError::Overloaded | ApiError::Unavailable(_) => {
                resp.insert_header((header::RETRY_AFTER, "1"));
            }
            _ => {}
        }
        resp.body(serde_json::to_string(&self.problem()).unwrap_or_default())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Corrupt { .. } => {
                tracing::error!(error = %e, "store corruption detected");
                ApiError::Internal(e.to_string())
            }
            other => ApiError::Unavailable(other.to_string()),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        match e {
            ServiceError::Domain(DomainError::InvalidTransition {
                current: State::Purged,
                ..
            }) => ApiError::Gone,
            ServiceError::Domain(DomainError::InvalidTransition {
                operation,
                current,
                allowed,
            }) => ApiError::InvalidTransition {
                operation,
                current,
                allowed,
            },
            ServiceError::Domain(DomainError::NotFound) => ApiError::NotFound("instance".into()),
            ServiceError::Domain(DomainError::NoSuchGrant) => ApiError::NotFound("grant".into()),
            ServiceError::UsernameTaken(name) => {
                ApiError::Conflict(format!("the username {name:?} is taken"))
            }
            ServiceError::Domain(DomainError::AlreadyExists) => {
                ApiError::Internal("a freshly generated id already exists".into())
            }
            ServiceError::VersionMismatch { expected, actual } => {
                ApiError::VersionMismatch { expected, actual }
            }
            ServiceError::IdempotencyKeyReused => ApiError::IdempotencyKeyReused,
            ServiceError::Overloaded => ApiError::Overloaded,
            ServiceError::Unavailable(why) => ApiError::Unavailable(why),
            ServiceError::Store(e) => e.into(),
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> ApiError {
        ApiError::Internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overload_is_503_with_retry_after_in_problem_json() {
        let resp = ApiError::Overloaded.error_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            resp.headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
        assert_eq!(
            resp.headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.as_bytes()),
            Some(PROBLEM_JSON.as_bytes())
        );
        assert_eq!(
            ApiError::from(ServiceError::Overloaded).code(),
            ProblemCode::Overloaded
        );
    }

    #[test]
    fn problem_codes_serialize_as_their_documented_strings() {
        for code in [
            ProblemCode::MalformedJson,
            ProblemCode::InvalidTransition,
            ProblemCode::Internal,
        ] {
            assert_eq!(
                serde_json::to_value(code).ok(),
                Some(serde_json::json!(code.as_str()))
            );
        }
    }

    #[test]
    fn purged_instances_answer_gone_for_any_operation() {
        let e = ApiError::from(ServiceError::Domain(DomainError::InvalidTransition {
            operation: Operation::Start,
            current: State::Purged,
            allowed: &[State::Stopped],
        }));
        assert_eq!(e.status_code(), StatusCode::GONE);
    }
}
