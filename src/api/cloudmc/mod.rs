//! The CloudMC (CloudOps) CloudStack plugin's instances, seed 002, as Cox Edge
//! white-labelled it: `/cloudmc/api/v2/services/{service}/{environment}/instances` and the
//! same under `/cloudmc/api/v1/` (CloudMC's own base), `MC-Api-Key` carrying a ledger
//! token, `{"data": ...}` envelopes, CloudStack's state names, the sixteen operations with
//! their documented preconditions, asynchronous answers as tasks pollable at `tasks/{id}`
//! (derived from the log, so they survive a restart), and `{"errors": [...]}` with code 2012
//! for an invalid state.
//!
//! It translates only: reads go through `query`, writes through `service`; each
//! operation's precondition is checked against the core's state at the version read.

pub mod body;
pub mod environment;
pub mod instances;
pub mod openapi;
pub mod operations;
pub mod repr;
pub mod tasks;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, ResponseError, web};
use serde_json::{Value, json};

use super::surface::Surface;
use super::{Failure, auth, request, wing};
use crate::domain::lifecycle::State;
use crate::service::{AddressProblem, Reference};

/// The two bases: the seed's (Cox Edge) and CloudMC's own.
pub const MOUNT: &str = "/cloudmc/api/v2";
pub const V1_MOUNT: &str = "/cloudmc/api/v1";

pub struct CloudMc;

impl Surface for CloudMc {
    const ORIGIN: &'static str = "cloudmc";
    // The clients send `Content-Type: application/json` on every request, bodies or not.
    type Error = CmError;

    fn token(headers: &HeaderMap, _query: &str) -> Option<String> {
        headers
            .get("mc-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

pub type Caller = request::Caller<CloudMc>;
pub type Op = request::Act<CloudMc>;

/// CloudMC's error codes. Only 2012 is documented; the others follow its numbering.
pub mod code {
    pub const UNAUTHENTICATED: u32 = 1000;
    pub const FORBIDDEN: u32 = 1001;
    pub const METHOD_NOT_ALLOWED: u32 = 1005;
    pub const MISSING_FIELD: u32 = 2000;
    pub const INVALID_VALUE: u32 = 2001;
    pub const CAPACITY: u32 = 2002;
    pub const UNKNOWN_OPERATION: u32 = 2010;
    pub const NOT_FOUND: u32 = 2011;
    pub const INVALID_STATE: u32 = 2012;
    pub const CONFLICT: u32 = 2013;
    pub const UNAVAILABLE: u32 = 9998;
    pub const UNEXPECTED: u32 = 9999;
}

/// A refusal as CloudMC answered it.
#[derive(Debug, thiserror::Error)]
pub enum CmError {
    #[error(transparent)]
    Failure(Failure),
    #[error("{message}")]
    Api {
        status: StatusCode,
        code: u32,
        message: String,
        context: Value,
    },
}

crate::surface_error!(CmError, CmError::Failure);

impl CmError {
    pub fn api(
        status: StatusCode,
        code: u32,
        message: impl Into<String>,
        context: Value,
    ) -> CmError {
        CmError::Api {
            status,
            code,
            message: message.into(),
            context,
        }
    }

    pub fn missing(field: &str) -> CmError {
        CmError::api(
            StatusCode::BAD_REQUEST,
            code::MISSING_FIELD,
            format!("The field {field} is required"),
            json!({ "field": field }),
        )
    }

    pub fn invalid(field: &str, why: impl Into<String>) -> CmError {
        CmError::api(
            StatusCode::BAD_REQUEST,
            code::INVALID_VALUE,
            why,
            json!({ "field": field }),
        )
    }

    pub fn not_found(kind: &str, id: &str) -> CmError {
        CmError::api(
            StatusCode::NOT_FOUND,
            code::NOT_FOUND,
            format!("Cannot find {kind} with id {id}"),
            json!({ "id": id, "type": kind }),
        )
    }

    /// The documented invalid-state error.
    pub fn state(id: uuid::Uuid, verb: &str, current: State, expected: &[State]) -> CmError {
        let names: Vec<&str> = expected.iter().map(|s| repr::state_name(*s)).collect();
        let words: Vec<String> = names.iter().map(|n| n.to_lowercase()).collect();
        CmError::api(
            StatusCode::BAD_REQUEST,
            code::INVALID_STATE,
            format!(
                "Cannot {verb} an instance that isn't in the {} state",
                words.join(" or ")
            ),
            json!({
                "id": id,
                "currentState": repr::state_name(current),
                "expectedStates": names,
                "type": "instances",
            }),
        )
    }
}

fn render(f: &Failure) -> CmError {
    use StatusCode as S;
    let api = |s, c, m: String| CmError::api(s, c, m, json!({}));
    match f {
        Failure::BadRequest { detail, .. } => {
            api(S::BAD_REQUEST, code::INVALID_VALUE, detail.clone())
        }
        Failure::Unauthenticated | Failure::BadToken => api(
            S::UNAUTHORIZED,
            code::UNAUTHENTICATED,
            "A valid MC-Api-Key is required".into(),
        ),
        Failure::Forbidden(_) | Failure::Locked { .. } | Failure::LockHeld => api(
            S::FORBIDDEN,
            code::FORBIDDEN,
            "Forbidden -- Not authorized to perform this request".into(),
        ),
        Failure::NotFound(what) => {
            api(S::NOT_FOUND, code::NOT_FOUND, format!("Cannot find {what}"))
        }
        Failure::Gone => api(
            S::NOT_FOUND,
            code::NOT_FOUND,
            "The instance was purged".into(),
        ),
        Failure::NoRoute => api(
            S::NOT_FOUND,
            code::NOT_FOUND,
            "Cannot locate the specified endpoint".into(),
        ),
        Failure::MethodNotAllowed => api(
            S::METHOD_NOT_ALLOWED,
            code::METHOD_NOT_ALLOWED,
            "Method not allowed -- the verb is not supported on this endpoint".into(),
        ),
        Failure::InvalidTransition {
            operation,
            current,
            allowed,
        } => CmError::api(
            S::BAD_REQUEST,
            code::INVALID_STATE,
            format!(
                "Cannot {operation} an instance in the {} state",
                repr::state_name(*current)
            ),
            json!({
                "currentState": repr::state_name(*current),
                "expectedStates": allowed.iter().map(|s| repr::state_name(*s)).collect::<Vec<_>>(),
                "type": "instances",
            }),
        ),
        Failure::Iso { .. } => api(S::BAD_REQUEST, code::CONFLICT, f.to_string()),
        Failure::VersionMismatch { .. } => api(
            S::BAD_REQUEST,
            code::CONFLICT,
            "The instance changed while the request was processed; retry".into(),
        ),
        Failure::PayloadTooLarge { .. } | Failure::UnsupportedMediaType => {
            api(S::BAD_REQUEST, code::INVALID_VALUE, f.to_string())
        }
        Failure::UnknownReference { reference, id } => {
            let field = match reference {
                Reference::Flavor => "computeOfferingId",
                Reference::Image => "templateId",
                Reference::Network => "networkId",
                Reference::SshKey => "sshKeyName",
                Reference::Project | Reference::Customer | Reference::User => "environment",
            };
            CmError::invalid(field, format!("{id} is not a known {}", reference.kind()))
        }
        Failure::FlavorNotInProject { flavor, .. } => CmError::invalid(
            "computeOfferingId",
            format!("The compute offering {flavor} is not available in this environment"),
        ),
        Failure::Sizing(p) => CmError::invalid("cpuCount", p.to_string()),
        Failure::Address {
            problem: AddressProblem::NetworkFull,
            ..
        } => api(S::BAD_REQUEST, code::CAPACITY, f.to_string()),
        Failure::Address { .. } => CmError::invalid("ipAddress", f.to_string()),
        Failure::Taken(why) => api(S::BAD_REQUEST, code::CONFLICT, why.clone()),
        Failure::IdempotencyKeyReused => api(S::BAD_REQUEST, code::CONFLICT, f.to_string()),
        Failure::Overloaded | Failure::Unavailable(_) | Failure::StorageFull(_) => {
            api(S::SERVICE_UNAVAILABLE, code::UNAVAILABLE, f.to_string())
        }
        Failure::Internal(why) => {
            tracing::error!(error = %why, "internal error");
            api(
                S::INTERNAL_SERVER_ERROR,
                code::UNEXPECTED,
                "Unexpected error".into(),
            )
        }
    }
}

impl ResponseError for CmError {
    fn status_code(&self) -> StatusCode {
        match self {
            CmError::Failure(f) => render(f).status_code(),
            CmError::Api { status, .. } => *status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            CmError::Failure(f) => {
                let mut resp = render(f).error_response();
                if matches!(
                    f,
                    Failure::Overloaded | Failure::Unavailable(_) | Failure::StorageFull(_)
                ) {
                    resp.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                }
                resp
            }
            // `code` as documented, `errorCode` as the Go client reads it (a string).
            CmError::Api {
                status,
                code,
                message,
                context,
            } => HttpResponse::build(*status).json(json!({"errors": [{
                "code": code,
                "errorCode": code.to_string(),
                "message": message,
                "context": context,
            }]})),
        }
    }
}

async fn not_found() -> Result<HttpResponse, CmError> {
    Err(CmError::Failure(Failure::NoRoute))
}

fn method_not_allowed(allow: String) -> actix_web::Route {
    web::to(move || {
        let allow = allow.clone();
        async move {
            let mut resp = CmError::Failure(Failure::MethodNotAllowed).error_response();
            if let Ok(v) = HeaderValue::from_str(&allow) {
                resp.headers_mut().insert(header::ALLOW, v);
            }
            resp
        }
    })
}

/// Every route, relative to either base.
pub fn routes() -> Vec<wing::Route> {
    crate::wing_routes! {
        GET "/services/{service}/{environment}/instances" => instances::list;
        POST "/services/{service}/{environment}/instances" => instances::create;
        GET "/services/{service}/{environment}/instances/{id}" => instances::retrieve;
        PUT "/services/{service}/{environment}/instances/{id}" => instances::update;
        POST "/services/{service}/{environment}/instances/{id}" => instances::operate;
        DELETE "/services/{service}/{environment}/instances/{id}" => instances::destroy;
        GET "/tasks/{id}" => tasks::show;
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    for mount in [MOUNT, V1_MOUNT] {
        cfg.service(
            web::scope(mount)
                .wrap(from_fn(auth::require::<CloudMc>))
                .configure(|scope| wing::register(scope, &routes(), method_not_allowed))
                .default_service(web::to(not_found)),
        );
    }
}
