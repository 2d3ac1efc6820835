//! How the native API renders a [`Failure`]: an RFC 9457 `application/problem+json` body
//! with a stable `code`, and the headers some refusals carry (`WWW-Authenticate`,
//! `Retry-After`).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::failure::{Failure, Input};
use crate::domain::lifecycle::{Operation, State};
use crate::service::{AddressProblem, Reference};

pub const PROBLEM_JSON: &str = "application/problem+json";

/// The stable `code` of every problem this API returns. Every failure maps to one, so
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
    Locked,
    VersionMismatch,
    PayloadTooLarge,
    UnsupportedMediaType,
    UnknownReference,
    UnusableReference,
    IdempotencyKeyReused,
    Forbidden,
    Conflict,
    Overloaded,
    Unavailable,
    StorageFull,
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
            ProblemCode::Locked => "locked",
            ProblemCode::VersionMismatch => "version_mismatch",
            ProblemCode::PayloadTooLarge => "payload_too_large",
            ProblemCode::UnsupportedMediaType => "unsupported_media_type",
            ProblemCode::UnknownReference => "unknown_reference",
            ProblemCode::UnusableReference => "unusable_reference",
            ProblemCode::IdempotencyKeyReused => "idempotency_key_reused",
            ProblemCode::Forbidden => "forbidden",
            ProblemCode::Conflict => "conflict",
            ProblemCode::Overloaded => "overloaded",
            ProblemCode::Unavailable => "unavailable",
            ProblemCode::StorageFull => "storage_full",
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

/// A failure as the native API answers it.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct NativeError(pub Failure);

crate::surface_error!(NativeError, NativeError);

/// The request field that names a reference.
pub fn field(reference: Reference) -> &'static str {
    match reference {
        Reference::Customer => "customer_id",
        Reference::Project => "project_id",
        Reference::Flavor => "flavor_id",
        Reference::Image => "image_id",
        Reference::Network => "network_ids",
        Reference::SshKey => "ssh_key_id",
        Reference::User => "user_id",
    }
}

pub fn code(f: &Failure) -> ProblemCode {
    match f {
        Failure::BadRequest { input, .. } => match input {
            Input::MalformedJson => ProblemCode::MalformedJson,
            Input::InvalidBody => ProblemCode::InvalidBody,
            Input::InvalidField => ProblemCode::InvalidField,
            Input::InvalidParameter => ProblemCode::InvalidParameter,
            Input::InvalidHeader => ProblemCode::InvalidHeader,
        },
        Failure::Unauthenticated | Failure::BadToken => ProblemCode::Unauthorized,
        Failure::NotFound(_) | Failure::NoRoute => ProblemCode::NotFound,
        Failure::Forbidden(_) => ProblemCode::Forbidden,
        Failure::Taken(_) | Failure::Iso { .. } => ProblemCode::Conflict,
        Failure::MethodNotAllowed => ProblemCode::MethodNotAllowed,
        Failure::Gone => ProblemCode::Gone,
        Failure::InvalidTransition { .. } => ProblemCode::InvalidTransition,
        Failure::Locked { .. } | Failure::LockHeld => ProblemCode::Locked,
        Failure::VersionMismatch { .. } => ProblemCode::VersionMismatch,
        Failure::PayloadTooLarge { .. } => ProblemCode::PayloadTooLarge,
        Failure::UnsupportedMediaType => ProblemCode::UnsupportedMediaType,
        Failure::UnknownReference { .. } => ProblemCode::UnknownReference,
        Failure::FlavorNotInProject { .. } => ProblemCode::UnusableReference,
        Failure::Sizing(_) => ProblemCode::InvalidField,
        Failure::Address { problem, .. } => match problem {
            AddressProblem::NoNetwork | AddressProblem::OutsideNetwork { .. } => {
                ProblemCode::InvalidField
            }
            AddressProblem::Taken | AddressProblem::NetworkFull => ProblemCode::Conflict,
        },
        Failure::IdempotencyKeyReused => ProblemCode::IdempotencyKeyReused,
        Failure::Overloaded => ProblemCode::Overloaded,
        Failure::Unavailable(_) => ProblemCode::Unavailable,
        Failure::StorageFull(_) => ProblemCode::StorageFull,
        Failure::Internal(_) => ProblemCode::Internal,
    }
}

fn title(f: &Failure) -> &'static str {
    match f {
        Failure::BadRequest { .. } => "Bad request",
        Failure::Unauthenticated | Failure::BadToken => "Unauthorized",
        Failure::NotFound(_) | Failure::NoRoute => "Not found",
        Failure::Forbidden(_) => "Forbidden",
        Failure::Taken(_) | Failure::Iso { .. } => "Conflict",
        Failure::MethodNotAllowed => "Method not allowed",
        Failure::Gone => "Gone",
        Failure::InvalidTransition { .. } => "Invalid state transition",
        Failure::Locked { .. } | Failure::LockHeld => "Locked",
        Failure::VersionMismatch { .. } => "Version mismatch",
        Failure::PayloadTooLarge { .. } => "Payload too large",
        Failure::UnsupportedMediaType => "Unsupported media type",
        Failure::UnknownReference { .. } => "Unknown reference",
        Failure::FlavorNotInProject { .. } => "Unusable reference",
        Failure::Sizing(_) => "Bad request",
        Failure::Address { problem, .. } => match problem {
            AddressProblem::NoNetwork | AddressProblem::OutsideNetwork { .. } => "Bad request",
            AddressProblem::Taken | AddressProblem::NetworkFull => "Conflict",
        },
        Failure::IdempotencyKeyReused => "Idempotency key reused",
        Failure::Overloaded => "Overloaded",
        Failure::Unavailable(_) => "Service unavailable",
        Failure::StorageFull(_) => "Insufficient storage",
        Failure::Internal(_) => "Internal error",
    }
}

pub fn status(f: &Failure) -> StatusCode {
    match f {
        Failure::BadRequest { .. } => StatusCode::BAD_REQUEST,
        Failure::Unauthenticated | Failure::BadToken => StatusCode::UNAUTHORIZED,
        Failure::NotFound(_) | Failure::NoRoute => StatusCode::NOT_FOUND,
        Failure::Forbidden(_) => StatusCode::FORBIDDEN,
        Failure::Taken(_) | Failure::Iso { .. } => StatusCode::CONFLICT,
        Failure::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        Failure::Gone => StatusCode::GONE,
        Failure::InvalidTransition { .. } | Failure::Locked { .. } | Failure::LockHeld => {
            StatusCode::CONFLICT
        }
        Failure::VersionMismatch { .. } => StatusCode::PRECONDITION_FAILED,
        Failure::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        Failure::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Failure::UnknownReference { .. }
        | Failure::FlavorNotInProject { .. }
        | Failure::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
        Failure::Sizing(_) => StatusCode::BAD_REQUEST,
        Failure::Address { problem, .. } => match problem {
            AddressProblem::NoNetwork | AddressProblem::OutsideNetwork { .. } => {
                StatusCode::BAD_REQUEST
            }
            AddressProblem::Taken | AddressProblem::NetworkFull => StatusCode::CONFLICT,
        },
        Failure::Overloaded | Failure::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Failure::StorageFull(_) => StatusCode::INSUFFICIENT_STORAGE,
        Failure::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The problem body: internal details go to the log, not to the caller.
pub fn problem(f: &Failure) -> Problem {
    let detail = match f {
        // The native API has always said the same for a missing and a refused token.
        Failure::BadToken => Failure::Unauthenticated.to_string(),
        Failure::Internal(_) => "an internal error occurred; see the server log".to_string(),
        Failure::UnknownReference { reference, id } => format!(
            "{} refers to {id}, which is not a known {}",
            field(*reference),
            reference.kind()
        ),
        Failure::Address { .. } => format!("ip_address: {f}"),
        Failure::Sizing(_) => format!("vcpus, memory_mb: {f}"),
        Failure::FlavorNotInProject { flavor, project } => {
            format!("flavor_id refers to {flavor}, which project {project} may not use")
        }
        other => other.to_string(),
    };
    let code = code(f);
    let mut p = Problem {
        kind: format!("urn:instance-ledger:problem:{}", code.as_str()),
        title: title(f).into(),
        status: status(f).as_u16(),
        code,
        detail,
        operation: None,
        current_state: None,
        allowed_states: None,
        expected_version: None,
        current_version: None,
        field: None,
    };
    match f {
        Failure::Locked { operation } => p.operation = Some(*operation),
        Failure::InvalidTransition {
            operation,
            current,
            allowed,
        } => {
            p.operation = Some(*operation);
            p.current_state = Some(*current);
            p.allowed_states = Some(allowed.to_vec());
        }
        Failure::VersionMismatch { expected, actual } => {
            p.expected_version = Some(*expected);
            p.current_version = Some(*actual);
        }
        Failure::UnknownReference { reference, .. } => p.field = Some(field(*reference).into()),
        Failure::FlavorNotInProject { .. } => p.field = Some("flavor_id".into()),
        _ => {}
    }
    p
}

impl ResponseError for NativeError {
    fn status_code(&self) -> StatusCode {
        status(&self.0)
    }

    fn error_response(&self) -> HttpResponse {
        if let Failure::Internal(why) = &self.0 {
            tracing::error!(error = %why, "internal error");
        }
        let mut resp = HttpResponse::build(self.status_code());
        resp.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        match &self.0 {
            Failure::Unauthenticated | Failure::BadToken => {
                resp.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"instance-ledger\""));
            }
            Failure::Overloaded | Failure::Unavailable(_) => {
                resp.insert_header((header::RETRY_AFTER, "1"));
            }
            Failure::StorageFull(_) => {
                resp.insert_header((header::RETRY_AFTER, "30"));
            }
            _ => {}
        }
        resp.body(serde_json::to_string(&problem(&self.0)).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::ServiceError;

    #[test]
    fn overload_is_503_with_retry_after_in_problem_json() {
        let resp = NativeError(Failure::Overloaded).error_response();
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
            code(&Failure::from(ServiceError::Overloaded)),
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
    fn an_unknown_reference_names_the_native_field() {
        let p = problem(&Failure::UnknownReference {
            reference: Reference::Network,
            id: "x".into(),
        });
        assert_eq!(p.field.as_deref(), Some("network_ids"));
        assert_eq!(
            p.detail,
            "network_ids refers to x, which is not a known network"
        );
    }
}
