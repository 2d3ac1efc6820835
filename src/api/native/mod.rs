//! The native surface: the `/v1` API (bearer tokens, RFC 9457 problem+json errors), the
//! operational endpoints (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`) and the API
//! reference at `/docs/`. Every route is declared once in [`routes`], which the gate,
//! the registration and the OpenAPI checks all read.

pub mod actions;
pub mod bounds;
pub mod catalog;
pub mod events;
pub mod gate;
pub mod history;
pub mod identity;
pub mod instances;
pub mod openapi;
pub mod ops;
pub mod params;
pub mod problem;
pub mod routes;
pub mod write;

use actix_web::http::header::HeaderMap;
use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, web};
use utoipa_swagger_ui::SwaggerUi;

use super::surface::Surface;
use super::{Failure, auth};
pub use problem::NativeError;

/// The `/v1` API as a surface.
pub struct Native;

impl Surface for Native {
    const ORIGIN: &'static str = "native";
    type Error = NativeError;

    fn token(headers: &HeaderMap, _query: &str) -> Option<String> {
        auth::bearer(headers)
    }
}

/// The caller of a native read.
pub type Caller = super::request::Caller<Native>;
/// The request context of a native write.
pub type Ctx = super::request::Ctx<Native>;
/// The body of a native request (JSON only).
pub type Body = super::request::Body<Native>;

pub async fn no_route() -> Result<HttpResponse, NativeError> {
    Err(Failure::NoRoute.into())
}

/// Mounts the native surface: operational endpoints, `/v1` behind the token check, and
/// the API reference.
pub fn configure(cfg: &mut web::ServiceConfig) {
    routes::register(cfg, "", Some("/v1/"));
    cfg.service(
        web::scope("/v1")
            .wrap(from_fn(auth::require::<Native>))
            .configure(|v1| routes::register(v1, "/v1", None))
            .default_service(web::to(no_route)),
    )
    .service(web::resource("/docs").route(web::get().to(|| async {
        HttpResponse::PermanentRedirect()
            .insert_header((actix_web::http::header::LOCATION, "/docs/"))
            .finish()
    })))
    .service(
        SwaggerUi::new("/docs/{_:.*}").config(utoipa_swagger_ui::Config::new(["/openapi.json"])),
    );
}
