//! The Launch & Provision internal API, seed 003: the 2012 Tornado wrapper around EC2,
//! mounted at `/launch-provision/v1/`. Arguments are query or form fields (never JSON),
//! the credential is the `key`/`token` argument pair (the token a ledger token) or
//! `Authorization: Bearer`; answers are JSON-encoded strings and lists sent as
//! `text/html`, as Tornado's `write` sent them, and its own HTML pages for 401, 404 and 405.
//!
//! It translates only: reads go through `query`, writes through `service`. EC2's rules
//! for each action (which the wrapper left to EC2) are checked against the core's state
//! at the version read; what EC2 accepted without a change answers 200 and appends
//! nothing.

pub mod args;
pub mod ec2;
pub mod instances;
pub mod openapi;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::{Next, from_fn};
use actix_web::{Error, FromRequest, HttpMessage, HttpResponse, ResponseError, web};

use super::surface::Surface;
use super::{AppState, Failure, auth, request, wing};
use args::Args;

/// Where the dialect is mounted (the original sat at the host root).
pub const MOUNT: &str = "/launch-provision/v1";

pub struct LaunchProvision;

impl Surface for LaunchProvision {
    const ORIGIN: &'static str = "launch-provision";
    // Tornado read form bodies; anything else is simply not arguments.
    const JSON_BODIES: bool = false;
    type Error = LpError;

    fn token(headers: &HeaderMap, _query: &str) -> Option<String> {
        auth::bearer(headers)
    }
}

pub type Caller = request::Caller<LaunchProvision>;
pub type Op = request::Act<LaunchProvision>;

/// A refusal as the wrapper answered it.
#[derive(Debug, thiserror::Error)]
pub enum LpError {
    #[error(transparent)]
    Failure(Failure),
    /// A handled case: a JSON-encoded string with a status.
    #[error("{1}")]
    Text(StatusCode, String),
    /// Tornado's own error page.
    #[error("{0}")]
    Page(StatusCode),
}

crate::surface_error!(LpError, LpError::Failure);

/// What Tornado's `write` sent for a string or a list.
pub const TEXT_HTML: &str = "text/html; charset=UTF-8";

/// A JSON value as the wrapper wrote it: `json.dumps`, with Tornado's default type.
pub fn written(status: StatusCode, value: &serde_json::Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(TEXT_HTML)
        .body(value.to_string())
}

/// Tornado's `send_error` page.
pub fn page(status: StatusCode) -> HttpResponse {
    let title = format!(
        "{}: {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    HttpResponse::build(status)
        .content_type(TEXT_HTML)
        .body(format!(
            "<html><title>{title}</title><body>{title}</body></html>"
        ))
}

fn render(f: &Failure) -> LpError {
    let text = |s: StatusCode, t: &str| LpError::Text(s, t.to_string());
    match f {
        Failure::BadRequest { detail, .. } => text(StatusCode::BAD_REQUEST, detail),
        // The original had no 403: a caller without the right is not authorized.
        Failure::Unauthenticated | Failure::BadToken | Failure::Forbidden(_) => {
            LpError::Page(StatusCode::UNAUTHORIZED)
        }
        Failure::NotFound(_) | Failure::Gone => text(StatusCode::NOT_FOUND, ec2::NOT_FOUND),
        Failure::NoRoute => LpError::Page(StatusCode::NOT_FOUND),
        Failure::MethodNotAllowed => LpError::Page(StatusCode::METHOD_NOT_ALLOWED),
        Failure::PayloadTooLarge { .. } => LpError::Page(StatusCode::PAYLOAD_TOO_LARGE),
        Failure::UnsupportedMediaType => LpError::Page(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        // What EC2 refused, the wrapper answered 408.
        Failure::InvalidTransition { .. }
        | Failure::Locked { .. }
        | Failure::LockHeld
        | Failure::Iso { .. }
        | Failure::VersionMismatch { .. } => text(
            StatusCode::REQUEST_TIMEOUT,
            "Error while trying to stop instance via EC2 API. EC2ResponseError: 400 Bad Request",
        ),
        Failure::UnknownReference { .. }
        | Failure::FlavorNotInProject { .. }
        | Failure::Sizing(_)
        | Failure::Address { .. }
        | Failure::Taken(_) => text(StatusCode::REQUEST_TIMEOUT, ec2::RUN_FAILED),
        Failure::IdempotencyKeyReused => text(StatusCode::UNPROCESSABLE_ENTITY, &f.to_string()),
        Failure::Overloaded | Failure::Unavailable(_) | Failure::StorageFull(_) => {
            LpError::Page(StatusCode::SERVICE_UNAVAILABLE)
        }
        Failure::Internal(why) => {
            tracing::error!(error = %why, "internal error");
            LpError::Page(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

impl ResponseError for LpError {
    fn status_code(&self) -> StatusCode {
        match self {
            LpError::Failure(f) => render(f).status_code(),
            LpError::Text(s, _) | LpError::Page(s) => *s,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            LpError::Failure(f) => {
                let mut resp = render(f).error_response();
                if matches!(
                    f,
                    Failure::Overloaded | Failure::Unavailable(_) | Failure::StorageFull(_)
                ) {
                    resp.headers_mut()
                        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
                }
                resp
            }
            LpError::Text(s, t) => written(*s, &serde_json::Value::String(t.clone())),
            LpError::Page(s) => page(*s),
        }
    }
}

/// Reads the arguments (query and form body) once, authenticates the `key`/`token` pair
/// or the bearer token, and puts the principal and the arguments in the request. The
/// body is put back for the handlers' extractors.
async fn authenticate(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let body = {
        let (http, payload) = req.parts_mut();
        request::Body::<LaunchProvision>::from_request(http, payload).await
    };
    let bytes = match body {
        Ok(b) => b.bytes,
        Err(e) => return Ok(req.error_response(e)),
    };
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let args = Args::parse(req.query_string(), content_type.as_deref(), &bytes);
    req.set_payload(Payload::from(bytes));
    // A `token` argument is the credential whenever it is there, and only with the `key`
    // beside it, as the wrapper checked the pair: a request that carries a lone or wrong
    // one is refused even if it also carries a good bearer token, so no credential it
    // presents goes unchecked.
    let token = match (args.get("key"), args.get("token")) {
        (Some(_), Some(token)) => Some(token.to_string()),
        (None, Some(_)) => None,
        (_, None) => LaunchProvision::token(req.headers(), ""),
    };
    let principal = match req.app_data::<web::Data<AppState>>() {
        Some(state) => auth::authenticate(state, token).await,
        None => Err(Failure::Internal("application state missing".into())),
    };
    match principal {
        Ok(p) => {
            req.extensions_mut().insert(p);
            req.extensions_mut().insert(args);
            Ok(next.call(req).await?.map_into_boxed_body())
        }
        Err(e) => Ok(req.error_response(LpError::from(e))),
    }
}

async fn not_found() -> Result<HttpResponse, LpError> {
    Err(LpError::Page(StatusCode::NOT_FOUND))
}

fn method_not_allowed(allow: String) -> actix_web::Route {
    web::to(move || {
        let allow = allow.clone();
        async move {
            let mut resp = page(StatusCode::METHOD_NOT_ALLOWED);
            if let Ok(v) = header::HeaderValue::from_str(&allow) {
                resp.headers_mut().insert(header::ALLOW, v);
            }
            resp
        }
    })
}

/// Every route of the dialect, relative to [`MOUNT`].
pub fn routes() -> Vec<wing::Route> {
    crate::wing_routes! {
        GET "" => instances::root;
        PUT "/launch" => instances::launch;
        PUT "/{id}/start" => instances::start;
        PUT "/{id}/stop" => instances::stop;
        PUT "/{id}/terminate" => instances::terminate;
        PUT "/{id}/reboot" => instances::reboot;
        PUT "/{id}/modify" => instances::modify;
        GET "/{id}/attributes" => instances::attributes;
        GET "/{id}/attributes/{field}" => instances::attribute;
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(MOUNT)
            .wrap(from_fn(authenticate))
            .configure(|scope| wing::register(scope, &routes(), method_not_allowed))
            .default_service(web::to(not_found)),
    );
}
