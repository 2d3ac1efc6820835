//! The API layer's error: every failure a native caller can see, rendered once as an
//! RFC 9457 `application/problem+json` body with a stable `code`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Map, Value, json};

use crate::domain::DomainError;
use crate::domain::lifecycle::{Operation, State};
use crate::service::ServiceError;
use crate::store::StoreError;

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed JSON, wrong types, unknown fields, invalid values or parameters.
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("{0} not found")]
    NotFound(String),
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
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } => code,
            ApiError::Unauthorized => "unauthorized",
            ApiError::NotFound(_) | ApiError::NoRoute => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Gone => "gone",
            ApiError::InvalidTransition { .. } => "invalid_transition",
            ApiError::VersionMismatch { .. } => "version_mismatch",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::UnknownReference { .. } => "unknown_reference",
            ApiError::IdempotencyKeyReused => "idempotency_key_reused",
            ApiError::Overloaded => "overloaded",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "Bad request",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::NotFound(_) | ApiError::NoRoute => "Not found",
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

    fn extensions(&self) -> Map<String, Value> {
        let mut ext = Map::new();
        match self {
            ApiError::InvalidTransition {
                operation,
                current,
                allowed,
            } => {
                ext.insert("operation".into(), json!(operation));
                ext.insert("current_state".into(), json!(current));
                ext.insert("allowed_states".into(), json!(allowed));
            }
            ApiError::VersionMismatch { expected, actual } => {
                ext.insert("expected_version".into(), json!(expected));
                ext.insert("current_version".into(), json!(actual));
            }
            ApiError::UnknownReference { field, .. } => {
                ext.insert("field".into(), json!(field));
            }
            _ => {}
        }
        ext
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) | ApiError::NoRoute => StatusCode::NOT_FOUND,
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
        let status = self.status_code();
        let mut body = Map::new();
        body.insert(
            "type".into(),
            json!(format!("urn:instance-ledger:problem:{}", self.code())),
        );
        body.insert("title".into(), json!(self.title()));
        body.insert("status".into(), json!(status.as_u16()));
        body.insert("code".into(), json!(self.code()));
        // Internal details go to the log, not to the caller.
        let detail = match self {
            ApiError::Internal(_) => "an internal error occurred; see the server log".to_string(),
            other => other.to_string(),
        };
        body.insert("detail".into(), json!(detail));
        body.extend(self.extensions());
        let mut resp = HttpResponse::build(status);
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
        resp.body(Value::Object(body).to_string())
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
            "overloaded"
        );
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
