//! The Wakame-VDC dcmgr v11 instances API, seed 004, mounted at `/wakame/api/`: the
//! account in `X-VDC-Account-UUID` (a customer of this server), the ledger token in
//! `X-VDC-Requester-Token` (which the original read and ignored; here it is checked),
//! `i-` ids, `[{"owner_total", "start", "limit", "results"}]` lists, and
//! `{"error", "message", "code"}` errors with the original's class names and codes, as
//! pretty-printed JSON. A `.json` suffix on any path is the same route.
//!
//! It translates only: reads go through `query`, writes through `service`; the original's
//! state rules for each action are checked against the core's state at the version read.

pub mod ids;
pub mod instances;
pub mod openapi;
pub mod params;
pub mod repr;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::{StatusCode, Uri};
use actix_web::middleware::{Next, from_fn};
use actix_web::{Error, HttpMessage, HttpResponse, ResponseError, web};
use serde::Serialize;
use serde_json::json;

use super::surface::Surface;
use super::{AppState, Failure, auth, request, wing};
use crate::service::{AddressProblem, Reference};

/// Where the dialect is mounted (the original's `/api`).
pub const MOUNT: &str = "/wakame/api";

pub struct Wakame;

impl Surface for Wakame {
    const ORIGIN: &'static str = "wakame";
    // Form and query parameters as well as JSON.
    const JSON_BODIES: bool = false;
    type Error = WakameError;

    fn token(headers: &HeaderMap, _query: &str) -> Option<String> {
        headers
            .get("x-vdc-requester-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

pub type Caller = request::Caller<Wakame>;
pub type Op = request::Act<Wakame>;

/// The account a request names (`X-VDC-Account-UUID`), as given.
#[derive(Debug, Clone)]
pub struct AccountHeader(pub String);

/// The request's path ended in `.json`: its body, if any, is JSON.
#[derive(Debug, Clone, Copy)]
pub struct JsonSuffix;

/// A refusal as dcmgr answered it.
#[derive(Debug, thiserror::Error)]
pub enum WakameError {
    #[error(transparent)]
    Failure(Failure),
    /// An `APIError`: status, class (under `Dcmgr::Endpoints::`), message, code.
    #[error("{class}: {message}")]
    Api {
        status: StatusCode,
        class: &'static str,
        message: String,
        code: &'static str,
    },
    /// Sinatra's own page (no route: a wrong method is no route either).
    #[error("not found")]
    NotFound,
}

crate::surface_error!(WakameError, WakameError::Failure);

/// One of the original's error classes, with its status and code (`errors.rb`).
pub fn api(class: &'static str, message: impl Into<String>) -> WakameError {
    let (status, code) = match class {
        "UnknownUUIDResource" => (StatusCode::NOT_FOUND, "100"),
        "InvalidRequestCredentials" => (StatusCode::BAD_REQUEST, "103"),
        "DisabledAccount" => (StatusCode::FORBIDDEN, "104"),
        "OperationNotPermitted" => (StatusCode::FORBIDDEN, "105"),
        "DatabaseError" => (StatusCode::BAD_REQUEST, "110"),
        "UnknownHostNode" => (StatusCode::NOT_FOUND, "114"),
        "UndefinedRequiredParameter" => (StatusCode::BAD_REQUEST, "118"),
        "UnknownSshKeyPair" => (StatusCode::NOT_FOUND, "121"),
        "InvalidInstanceState" => (StatusCode::BAD_REQUEST, "125"),
        "DuplicateHostname" => (StatusCode::BAD_REQUEST, "126"),
        "UnknownNetworkID" => (StatusCode::NOT_FOUND, "129"),
        "OutOfNetworkCapacity" => (StatusCode::BAD_REQUEST, "130"),
        "InvalidImageID" => (StatusCode::BAD_REQUEST, "137"),
        "InvalidInstanceSpec" => (StatusCode::BAD_REQUEST, "138"),
        // Not in the original, which answered an invalid host name with a 500.
        "InvalidHostname" => (StatusCode::BAD_REQUEST, "142"),
        "ServiceUnavailable" => (StatusCode::SERVICE_UNAVAILABLE, "143"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "144"),
    };
    WakameError::Api {
        status,
        class,
        message: message.into(),
        code,
    }
}

/// An error whose message is its class name, as Ruby's `Exception#message` gave it.
pub fn bare(class: &'static str) -> WakameError {
    api(class, format!("Dcmgr::Endpoints::{class}"))
}

/// A body as dcmgr wrote it: `to_json(JSON::PRETTY_STATE_PROTOTYPE)`.
pub fn pretty(status: StatusCode, value: &impl Serialize) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .body(serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into()))
}

fn render(f: &Failure) -> WakameError {
    match f {
        Failure::BadRequest { detail, .. } => api("UndefinedRequiredParameter", detail.clone()),
        Failure::Unauthenticated | Failure::BadToken => api(
            "InvalidRequestCredentials",
            "X-VDC-Requester-Token must carry a valid token",
        ),
        Failure::NotFound(what) => api("UnknownUUIDResource", what.clone()),
        Failure::Gone => api("UnknownUUIDResource", "purged"),
        Failure::NoRoute | Failure::MethodNotAllowed => WakameError::NotFound,
        Failure::Iso { .. } => api("InvalidInstanceState", f.to_string()),
        Failure::Forbidden(_) | Failure::Locked { .. } | Failure::LockHeld => {
            bare("OperationNotPermitted")
        }
        Failure::InvalidTransition { current, .. } => {
            api("InvalidInstanceState", repr::state_name(*current))
        }
        Failure::VersionMismatch { .. } => api(
            "InvalidInstanceState",
            "the instance changed while the request was processed",
        ),
        Failure::PayloadTooLarge { .. } | Failure::UnsupportedMediaType => {
            api("UndefinedRequiredParameter", f.to_string())
        }
        Failure::UnknownReference { reference, id } => match reference {
            Reference::Image => bare("InvalidImageID"),
            Reference::Flavor => bare("InvalidInstanceSpec"),
            Reference::SshKey => api("UnknownSshKeyPair", id.clone()),
            Reference::Network => api("UnknownNetworkID", id.clone()),
            Reference::Project | Reference::Customer | Reference::User => {
                bare("InvalidRequestCredentials")
            }
        },
        Failure::FlavorNotInProject { .. } | Failure::Sizing(_) => bare("InvalidInstanceSpec"),
        Failure::Address {
            problem: AddressProblem::NetworkFull,
            ..
        } => bare("OutOfNetworkCapacity"),
        Failure::Address { .. } => api("OutOfNetworkCapacity", f.to_string()),
        Failure::Taken(_) => bare("DuplicateHostname"),
        Failure::IdempotencyKeyReused => api("DatabaseError", f.to_string()),
        Failure::Overloaded | Failure::Unavailable(_) | Failure::StorageFull(_) => {
            api("ServiceUnavailable", f.to_string())
        }
        Failure::Internal(why) => {
            tracing::error!(error = %why, "internal error");
            api("InternalError", "internal error")
        }
    }
}

impl ResponseError for WakameError {
    fn status_code(&self) -> StatusCode {
        match self {
            WakameError::Failure(f) => render(f).status_code(),
            WakameError::Api { status, .. } => *status,
            WakameError::NotFound => StatusCode::NOT_FOUND,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            WakameError::Failure(f) => {
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
            WakameError::Api {
                status,
                class,
                message,
                code,
            } => pretty(
                *status,
                &json!({
                    "error": format!("Dcmgr::Endpoints::{class}"),
                    "message": message,
                    "code": code,
                }),
            ),
            WakameError::NotFound => HttpResponse::NotFound()
                .insert_header(("X-Cascade", "pass"))
                .content_type("text/html;charset=utf-8")
                .body("<h1>Not Found</h1>"),
        }
    }
}

/// The before filters: a `.json` suffix is stripped (noted for the body parser), the
/// account header must be there (400, code 103), then the token is checked.
async fn before(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if let Some(stripped) = req.path().strip_suffix(".json").map(str::to_string) {
        let target = match req.query_string() {
            "" => stripped,
            q => format!("{stripped}?{q}"),
        };
        if let Ok(uri) = target.parse::<Uri>() {
            req.match_info_mut().get_mut().update(&uri);
            req.head_mut().uri = uri;
            req.extensions_mut().insert(JsonSuffix);
        }
    }
    let account = req
        .headers()
        .get("x-vdc-account-uuid")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    let Some(account) = account else {
        return Ok(req.error_response(bare("InvalidRequestCredentials")));
    };
    let token = Wakame::token(req.headers(), "");
    let principal = match req.app_data::<web::Data<AppState>>() {
        Some(state) => auth::authenticate(state, token).await,
        None => Err(Failure::Internal("application state missing".into())),
    };
    match principal {
        Ok(p) => {
            req.extensions_mut().insert(p);
            req.extensions_mut().insert(AccountHeader(account));
            Ok(next.call(req).await?.map_into_boxed_body())
        }
        Err(e) => Ok(req.error_response(WakameError::from(e))),
    }
}

async fn not_found() -> Result<HttpResponse, WakameError> {
    Err(WakameError::NotFound)
}

/// Sinatra has no 405: a route without the method is no route.
fn no_such_method(_allow: String) -> actix_web::Route {
    web::to(not_found)
}

/// Every route of the dialect, relative to [`MOUNT`].
pub fn routes() -> Vec<wing::Route> {
    crate::wing_routes! {
        GET "/instances" => instances::index;
        POST "/instances" => instances::create;
        GET "/instances/{id}" => instances::show;
        DELETE "/instances/{id}" => instances::destroy;
        PUT "/instances/{id}/reboot" => instances::reboot;
        PUT "/instances/{id}/stop" => instances::stop;
        PUT "/instances/{id}/start" => instances::start;
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(MOUNT)
            .wrap(from_fn(before))
            .configure(|scope| wing::register(scope, &routes(), no_such_method))
            .default_service(web::to(not_found)),
    );
}
