//! The OpenStack Nimble/Mogan bare-metal compute dialect, seed 001, mounted at both
//! `/mogan/v1/` and `/mogan/` (the seed mixes the two; the service URL of its clients
//! already ends in `/v1`). Two spellings of one API over the same instances: the seed's
//! `instances` (2016, with the mature pre-rename additions) and the `servers` its released
//! client speaks (September 2017). `X-Auth-Token` carries a ledger token; the project is
//! `X-Project-Id` or the caller's only one. Errors are wsme faults wrapped by
//! `ParsableErrorMiddleware`: `{"error_message": "<JSON of faultcode, faultstring,
//! debuginfo>"}`; a missing or refused token is keystonemiddleware's unwrapped 401.
//!
//! It translates only: reads go through `query`, writes through `service`; the original's
//! finite-state machine (power only from `active`/`stopped`, the lock for non-admins) is
//! checked against the core's state at the version it was read, never looser than native.

pub mod catalog;
pub mod instances;
pub mod openapi;
pub mod patch;
pub mod repr;
pub mod schemas;
pub mod states;
pub mod status;
pub mod tenancy;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{Error, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use serde_json::json;

use super::request::RequestId;
use super::surface::Surface;
use super::{Failure, auth, wing};
use crate::query::QueryError;
use crate::service::Reference;

/// The two mounts: the versioned one first (the bare one would also match it).
pub const MOUNT: &str = "/mogan/v1";
pub const BARE_MOUNT: &str = "/mogan";

pub struct Mogan;

impl Surface for Mogan {
    const ORIGIN: &'static str = "mogan";
    type Error = MoganError;

    fn token(headers: &HeaderMap, _query: &str) -> Option<String> {
        headers
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

pub type Caller = super::request::Caller<Mogan>;
/// A write to the instance a path names.
pub type Op = super::request::Act<Mogan>;

/// Which spelling of the API a route belongs to: the words of its paths, bodies and
/// messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spelling {
    /// The seed's `instances` (2016), with the mature additions of early 2017.
    Instances,
    /// The `servers` of September 2017, which python-moganclient 0.1.0 speaks.
    Servers,
}

impl Spelling {
    pub fn collection(self) -> &'static str {
        match self {
            Spelling::Instances => "instances",
            Spelling::Servers => "servers",
        }
    }

    /// The noun of its messages: `Instance <uuid> could not be found.`
    pub fn noun(self) -> &'static str {
        match self {
            Spelling::Instances => "Instance",
            Spelling::Servers => "Server",
        }
    }

    /// The free-form attributes' name in bodies and patches.
    pub fn attributes(self) -> &'static str {
        match self {
            Spelling::Instances => "extra",
            Spelling::Servers => "metadata",
        }
    }

    pub fn not_found(self, raw: &str) -> MoganError {
        MoganError::client(
            StatusCode::NOT_FOUND,
            format!("{} {raw} could not be found.", self.noun()),
        )
    }

    /// The policy refusal, naming the rule as oslo.policy did.
    pub fn denied(self, action: &str) -> MoganError {
        let noun = match self {
            Spelling::Instances => "instance",
            Spelling::Servers => "server",
        };
        MoganError::client(
            StatusCode::FORBIDDEN,
            format!("Access was denied to the following resource: mogan:{noun}:{action}"),
        )
    }

    pub fn locked(self, id: impl std::fmt::Display) -> MoganError {
        MoganError::client(
            StatusCode::BAD_REQUEST,
            format!("{} {id} is locked", self.noun()),
        )
    }

    /// A read of one instance failed: the original's not-found and policy refusal.
    pub fn lookup(self, raw: &str, action: &str) -> impl FnOnce(QueryError) -> MoganError {
        let raw = raw.to_string();
        let action = action.to_string();
        move |e| match e {
            QueryError::NotFound { .. } | QueryError::Gone => self.not_found(&raw),
            QueryError::Forbidden(_) => self.denied(&action),
            other => MoganError::Failure(other.into()),
        }
    }
}

/// A refusal as Mogan answered it.
#[derive(Debug, thiserror::Error)]
pub enum MoganError {
    #[error(transparent)]
    Failure(Failure),
    /// A wsme fault: the status and its `faultstring` (`Client` below 500).
    #[error("{1}")]
    Fault(StatusCode, String),
}

crate::surface_error!(MoganError, MoganError::Failure);

impl MoganError {
    pub fn client(status: StatusCode, faultstring: impl Into<String>) -> MoganError {
        MoganError::Fault(status, faultstring.into())
    }

    pub fn bad_request(faultstring: impl Into<String>) -> MoganError {
        MoganError::client(StatusCode::BAD_REQUEST, faultstring)
    }
}

/// The wsme fault, JSON-encoded as Python's `json.dumps` wrote it, inside
/// `ParsableErrorMiddleware`'s `error_message`.
pub fn wrapped_fault(status: StatusCode, faultstring: &str) -> serde_json::Value {
    let code = if status.is_server_error() {
        "Server"
    } else {
        "Client"
    };
    let inner = format!(
        "{{\"debuginfo\": null, \"faultcode\": \"{code}\", \"faultstring\": {}}}",
        serde_json::Value::String(faultstring.to_string())
    );
    json!({ "error_message": inner })
}

/// A webob error page (pecan's own 404 and 405), as its JSON form wrapped in
/// `error_message`.
fn wrapped_page(status: StatusCode, message: &str) -> serde_json::Value {
    let reason = status.canonical_reason().unwrap_or("Error");
    let inner = format!(
        "{{\"message\": {}, \"code\": \"{} {reason}\", \"title\": \"{reason}\"}}",
        serde_json::Value::String(format!("{message}<br /><br />\n\n\n")),
        status.as_u16()
    );
    json!({ "error_message": inner })
}

/// The reference's message when a create names something that is not there.
fn unknown(reference: Reference, id: &str) -> String {
    match reference {
        Reference::Flavor => format!("Flavor {id} could not be found"),
        Reference::Image => format!("Requested image {id} could not be found"),
        Reference::Network => format!("Network {id} could not be found."),
        Reference::SshKey => format!("Invalid key_name {id} provided."),
        Reference::Project => format!("Project {id} could not be found."),
        Reference::Customer | Reference::User => format!("{id} could not be found."),
    }
}

enum Rendered {
    Fault(StatusCode, String),
    Page(StatusCode, &'static str),
    Keystone,
}

fn render(f: &Failure) -> Rendered {
    use Rendered::Fault;
    match f {
        Failure::BadRequest { detail, .. } => Fault(StatusCode::BAD_REQUEST, detail.clone()),
        Failure::Unauthenticated | Failure::BadToken => Rendered::Keystone,
        Failure::NotFound(_) | Failure::Gone => Fault(
            StatusCode::NOT_FOUND,
            "Resource could not be found.".into(),
        ),
        Failure::NoRoute => Rendered::Page(StatusCode::NOT_FOUND, "The resource could not be found."),
        Failure::MethodNotAllowed => Rendered::Page(
            StatusCode::METHOD_NOT_ALLOWED,
            "The method is not allowed for this resource. ",
        ),
        Failure::Forbidden(_) => Fault(
            StatusCode::FORBIDDEN,
            "Access was denied to this resource.".into(),
        ),
        Failure::InvalidTransition {
            operation, current, ..
        } => Fault(
            StatusCode::BAD_REQUEST,
            format!(
                "Can not transition from state '{}' on event '{}' (no defined transition)",
                status::status(*current),
                status::event(*operation)
            ),
        ),
        Failure::Locked { .. } => Fault(StatusCode::BAD_REQUEST, "The instance is locked".into()),
        Failure::LockHeld => Fault(StatusCode::FORBIDDEN, "Forbidden".into()),
        Failure::VersionMismatch { .. } => Fault(
            StatusCode::CONFLICT,
            "The instance changed while the request was processed; an operation is already in progress".into(),
        ),
        Failure::PayloadTooLarge { limit } => Fault(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request is too large: at most {limit} bytes"),
        ),
        Failure::UnsupportedMediaType => Fault(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "The request body must be application/json".into(),
        ),
        Failure::UnknownReference { reference, id } => {
            Fault(StatusCode::BAD_REQUEST, unknown(*reference, id))
        }
        Failure::FlavorNotInProject { flavor, .. } => Fault(
            StatusCode::BAD_REQUEST,
            format!("Flavor {flavor} could not be found"),
        ),
        Failure::Sizing(_) | Failure::Address { .. } => {
            Fault(StatusCode::BAD_REQUEST, f.to_string())
        }
        Failure::Taken(why) => Fault(StatusCode::CONFLICT, why.clone()),
        Failure::Iso { .. } => Fault(StatusCode::BAD_REQUEST, f.to_string()),
        Failure::IdempotencyKeyReused => Fault(StatusCode::UNPROCESSABLE_ENTITY, f.to_string()),
        Failure::Overloaded | Failure::Unavailable(_) | Failure::StorageFull(_) => {
            Fault(StatusCode::SERVICE_UNAVAILABLE, f.to_string())
        }
        Failure::Internal(why) => {
            tracing::error!(error = %why, "internal error");
            Fault(
                StatusCode::INTERNAL_SERVER_ERROR,
                "An unknown exception occurred.".into(),
            )
        }
    }
}

impl ResponseError for MoganError {
    fn status_code(&self) -> StatusCode {
        match self {
            MoganError::Failure(f) => match render(f) {
                Rendered::Fault(s, _) | Rendered::Page(s, _) => s,
                Rendered::Keystone => StatusCode::UNAUTHORIZED,
            },
            MoganError::Fault(s, _) => *s,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (status, body) = match self {
            MoganError::Fault(s, text) => (*s, wrapped_fault(*s, text)),
            MoganError::Failure(f) => match render(f) {
                Rendered::Fault(s, text) => (s, wrapped_fault(s, &text)),
                Rendered::Page(s, text) => (s, wrapped_page(s, text)),
                // keystonemiddleware sits outside the error wrapper.
                Rendered::Keystone => {
                    return HttpResponse::Unauthorized()
                        .insert_header((header::WWW_AUTHENTICATE, "Keystone uri='/v1'"))
                        .json(json!({"error": {
                            "code": 401,
                            "title": "Unauthorized",
                            "message": "The request you have made requires authentication.",
                        }}));
                }
            },
        };
        let mut resp = HttpResponse::build(status);
        if matches!(
            self,
            MoganError::Failure(
                Failure::Overloaded | Failure::Unavailable(_) | Failure::StorageFull(_)
            )
        ) {
            resp.insert_header((header::RETRY_AFTER, "1"));
        }
        resp.json(body)
    }
}

/// Every answer carries `Openstack-Request-Id: req-<id>`, which the client reads.
async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
    let mut res = next.call(req).await?.map_into_boxed_body();
    if let Some(v) = id.and_then(|id| HeaderValue::from_str(&format!("req-{id}")).ok()) {
        res.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("openstack-request-id"),
            v,
        );
    }
    Ok(res)
}

async fn not_found() -> Result<HttpResponse, MoganError> {
    Err(MoganError::Failure(Failure::NoRoute))
}

/// pecan's 405, with the methods the resource allows.
fn method_not_allowed(allow: String) -> actix_web::Route {
    web::to(move |req: HttpRequest| {
        let allow = allow.clone();
        async move {
            let message = format!(
                "The method {} is not allowed for this resource. ",
                req.method()
            );
            HttpResponse::MethodNotAllowed()
                .insert_header((header::ALLOW, allow))
                .json(wrapped_page(StatusCode::METHOD_NOT_ALLOWED, &message))
        }
    })
}

/// Every authenticated route, relative to either mount.
pub fn routes() -> Vec<wing::Route> {
    crate::wing_routes! {
        GET "/instances" => instances::list_instances;
        POST "/instances" => instances::create_instance;
        GET "/instances/detail" => instances::detail_instances;
        GET "/instances/{uuid}" => instances::show_instance;
        PATCH "/instances/{uuid}" => instances::patch_instance;
        DELETE "/instances/{uuid}" => instances::delete_instance;
        GET "/instances/{uuid}/states" => states::show_instance;
        PUT "/instances/{uuid}/states/power" => states::power_instance;
        PUT "/instances/{uuid}/states/lock" => states::lock_instance;
        GET "/servers" => instances::list_servers;
        POST "/servers" => instances::create_server;
        GET "/servers/detail" => instances::detail_servers;
        GET "/servers/{uuid}" => instances::show_server;
        PATCH "/servers/{uuid}" => instances::patch_server;
        DELETE "/servers/{uuid}" => instances::delete_server;
        GET "/servers/{uuid}/states" => states::show_server;
        PUT "/servers/{uuid}/states/power" => states::power_server;
        PUT "/servers/{uuid}/states/lock" => states::lock_server;
        GET "/flavors" => catalog::flavors;
        GET "/flavors/{uuid}" => catalog::flavor;
        GET "/availability_zones" => catalog::availability_zones;
    }
}

/// The public version documents (no token), relative to the server root.
pub fn public_routes() -> Vec<wing::Route> {
    crate::wing_routes! {
        GET "/mogan" => catalog::root;
        GET "/mogan/" => catalog::root;
        GET "/mogan/v1" => catalog::version;
        GET "/mogan/v1/" => catalog::version;
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    // The version documents first: the scopes below would take their paths.
    wing::register(cfg, &public_routes(), method_not_allowed);
    for mount in [MOUNT, BARE_MOUNT] {
        cfg.service(
            web::scope(mount)
                .wrap(from_fn(auth::require::<Mogan>))
                .wrap(from_fn(request_id))
                .configure(|scope| wing::register(scope, &routes(), method_not_allowed))
                .default_service(web::to(not_found)),
        );
    }
}
