//! The NodeConductor (Waldur) IaaS dialect, seed 000: `/nodeconductor/api/`, as Django
//! REST Framework 2.3 served it in October 2014. `Authorization: Token <token>`, JSON
//! arrays paged by `page`/`page_size` with `Link` and `X-Result-Count` headers, 32-hex
//! uuids in hyperlinked representations, `{"detail": ...}` and per-field error
//! dictionaries, and the instance states as their display names.
//!
//! It translates only: reads go through `query`, writes through `service`; its own
//! documented preconditions (operations only from the states the original allowed, only
//! project administrators or staff) are stricter than the native API's, never looser.

pub mod catalog;
pub mod forms;
pub mod instances;
pub mod links;
pub mod openapi;
pub mod repr;
pub mod states;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::{Next, from_fn};
use actix_web::{Error, HttpRequest, HttpResponse, ResponseError, web};
use serde_json::{Map, Value, json};

use super::surface::Surface;
use super::{Failure, auth, wing};
use crate::domain::lifecycle::Operation;
use crate::service::Reference;

/// Where the dialect is mounted.
pub const MOUNT: &str = "/nodeconductor/api";

pub struct NodeConductor;

impl Surface for NodeConductor {
    const ORIGIN: &'static str = "nodeconductor";
    // DRF parses form-encoded bodies as well as JSON.
    const JSON_BODIES: bool = false;
    type Error = NcError;

    fn token(headers: &HeaderMap, _query: &str) -> Option<String> {
        auth::scheme_token(headers, "token")
    }
}

pub type Caller = super::request::Caller<NodeConductor>;
pub type Body = super::request::Body<NodeConductor>;
/// A write to the instance a path names.
pub type Op = super::request::Act<NodeConductor>;

/// A refusal as NodeConductor answered it.
#[derive(Debug, thiserror::Error)]
pub enum NcError {
    #[error(transparent)]
    Failure(Failure),
    /// Field errors, DRF style: `{"field": ["message"]}`.
    #[error("invalid fields")]
    Fields(Map<String, Value>),
    /// A status with the original's own body (`None`: an empty body).
    #[error("{0}")]
    Status(StatusCode, Option<Value>),
}

crate::surface_error!(NcError, NcError::Failure);

impl NcError {
    /// One field's error.
    pub fn field(name: &str, message: &str) -> NcError {
        let mut m = Map::new();
        m.insert(name.into(), json!([message]));
        NcError::Fields(m)
    }

    /// `{"detail": ...}` with a status.
    pub fn detail(status: StatusCode, detail: &str) -> NcError {
        NcError::Status(status, Some(json!({ "detail": detail })))
    }
}

/// The body field that names a reference.
fn field(reference: Reference) -> &'static str {
    match reference {
        Reference::Project => "project",
        Reference::Flavor => "flavor",
        Reference::Image => "template",
        Reference::SshKey => "ssh_public_key",
        Reference::Network => "network",
        Reference::Customer => "customer",
        Reference::User => "user",
    }
}

/// The operation's word in NodeConductor's messages.
pub fn operation_word(op: Operation) -> &'static str {
    match op {
        Operation::Stop | Operation::ForceStop => "stop",
        Operation::RequestResize | Operation::Resize => "resize",
        Operation::Delete | Operation::Expunge | Operation::Destroy | Operation::ForceDestroy => {
            "destroy"
        }
        other => other.as_str(),
    }
}

/// The message of a refused transition, naming the state as a client sees it.
pub fn transition_refused(op: &str, display: &str) -> NcError {
    NcError::Status(
        StatusCode::CONFLICT,
        Some(json!({
            "status": format!("Performing {op} operation from instance state '{display}' is not allowed")
        })),
    )
}

fn render(f: &Failure) -> (StatusCode, Option<Value>) {
    let detail = |s: StatusCode, d: &str| (s, Some(json!({ "detail": d })));
    match f {
        Failure::BadRequest { input, detail: d } => match input {
            super::failure::Input::MalformedJson => (
                StatusCode::BAD_REQUEST,
                Some(json!({ "detail": format!("JSON parse error - {d}") })),
            ),
            _ => detail(StatusCode::BAD_REQUEST, d),
        },
        Failure::Unauthenticated => detail(
            StatusCode::UNAUTHORIZED,
            "Authentication credentials were not provided.",
        ),
        Failure::BadToken => detail(StatusCode::UNAUTHORIZED, "Invalid token"),
        Failure::NotFound(_) | Failure::NoRoute | Failure::Gone => {
            detail(StatusCode::NOT_FOUND, "Not found")
        }
        Failure::Forbidden(_) => detail(
            StatusCode::FORBIDDEN,
            "You do not have permission to perform this action.",
        ),
        Failure::MethodNotAllowed => detail(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed."),
        Failure::InvalidTransition {
            operation, current, ..
        } => {
            let display = states::display(*current);
            match transition_refused(operation_word(*operation), display) {
                NcError::Status(s, b) => (s, b),
                _ => (StatusCode::CONFLICT, None),
            }
        }
        Failure::UnknownReference { reference, .. } => (
            StatusCode::BAD_REQUEST,
            Some(json!({ field(*reference): ["Invalid hyperlink - object does not exist."] })),
        ),
        Failure::FlavorNotInProject { .. } => (
            StatusCode::BAD_REQUEST,
            Some(json!({ "__all__": ["Flavor is not within project's clouds."] })),
        ),
        Failure::PayloadTooLarge { .. } => detail(StatusCode::PAYLOAD_TOO_LARGE, &f.to_string()),
        Failure::UnsupportedMediaType => detail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type in request.",
        ),
        Failure::VersionMismatch { .. } => detail(StatusCode::PRECONDITION_FAILED, &f.to_string()),
        Failure::IdempotencyKeyReused => detail(StatusCode::UNPROCESSABLE_ENTITY, &f.to_string()),
        Failure::Taken(_) | Failure::Address { .. } | Failure::Sizing(_) => {
            detail(StatusCode::BAD_REQUEST, &f.to_string())
        }
        Failure::Locked { .. } | Failure::LockHeld | Failure::Iso { .. } => {
            detail(StatusCode::CONFLICT, &f.to_string())
        }
        Failure::Overloaded | Failure::Unavailable(_) | Failure::StorageFull(_) => {
            detail(StatusCode::SERVICE_UNAVAILABLE, &f.to_string())
        }
        Failure::Internal(why) => {
            tracing::error!(error = %why, "internal error");
            detail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "A server error occurred.",
            )
        }
    }
}

impl ResponseError for NcError {
    fn status_code(&self) -> StatusCode {
        match self {
            NcError::Failure(f) => render(f).0,
            NcError::Fields(_) => StatusCode::BAD_REQUEST,
            NcError::Status(s, _) => *s,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (status, body) = match self {
            NcError::Failure(f) => render(f),
            NcError::Fields(m) => (StatusCode::BAD_REQUEST, Some(Value::Object(m.clone()))),
            NcError::Status(s, b) => (*s, b.clone()),
        };
        let mut resp = HttpResponse::build(status);
        match self {
            NcError::Failure(Failure::Unauthenticated | Failure::BadToken) => {
                resp.insert_header((header::WWW_AUTHENTICATE, "Token"));
            }
            NcError::Failure(
                Failure::Overloaded | Failure::Unavailable(_) | Failure::StorageFull(_),
            ) => {
                resp.insert_header((header::RETRY_AFTER, "1"));
            }
            _ => {}
        }
        match body {
            Some(b) => resp.json(b),
            None => resp.finish(),
        }
    }
}

/// Django's `APPEND_SLASH`: a path without its trailing slash is redirected (301) to the
/// one with it, before anything else happens.
async fn append_slash(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if req.path().ends_with('/') {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let location = match req.query_string() {
        "" => format!("{}/", req.path()),
        q => format!("{}/?{q}", req.path()),
    };
    let resp = HttpResponse::MovedPermanently()
        .insert_header((header::LOCATION, location))
        .finish();
    Ok(req.into_response(resp))
}

async fn not_found() -> Result<HttpResponse, NcError> {
    Err(NcError::Failure(Failure::NoRoute))
}

/// 405 naming the method, with the methods the resource allows.
fn method_not_allowed(allow: String) -> actix_web::Route {
    web::to(move |req: HttpRequest| {
        let allow = allow.clone();
        async move {
            HttpResponse::MethodNotAllowed()
                .insert_header((header::ALLOW, allow))
                .json(json!({ "detail": format!("Method '{}' not allowed.", req.method()) }))
        }
    })
}

/// Every route of the dialect, relative to [`MOUNT`].
pub fn routes() -> Vec<wing::Route> {
    crate::wing_routes! {
        GET "/instances/" => instances::list;
        POST "/instances/" => instances::create;
        GET "/instances/{uuid}/" => instances::show;
        PUT "/instances/{uuid}/" => instances::update;
        PATCH "/instances/{uuid}/" => instances::update;
        DELETE "/instances/{uuid}/" => instances::destroy;
        POST "/instances/{uuid}/start/" => instances::start;
        POST "/instances/{uuid}/stop/" => instances::stop;
        POST "/instances/{uuid}/resize/" => instances::resize;
        GET "/iaas-templates/" => catalog::templates;
        GET "/iaas-templates/{uuid}/" => catalog::template;
        GET "/flavors/" => catalog::flavors;
        GET "/flavors/{uuid}/" => catalog::flavor;
        GET "/projects/" => catalog::projects;
        GET "/projects/{uuid}/" => catalog::project;
        GET "/customers/" => catalog::customers;
        GET "/customers/{uuid}/" => catalog::customer;
        GET "/keys/" => catalog::keys;
        GET "/keys/{uuid}/" => catalog::key;
        GET "/security-groups/" => catalog::security_groups;
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(MOUNT)
            .wrap(from_fn(auth::require::<NodeConductor>))
            .wrap(from_fn(append_slash))
            .configure(|scope| wing::register(scope, &routes(), method_not_allowed))
            .default_service(web::to(not_found)),
    );
}
