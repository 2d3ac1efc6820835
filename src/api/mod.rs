//! The HTTP surface: the native `/v1` API, operational endpoints, auth, request
//! bookkeeping and error rendering. Handlers parse and validate, then hand commands to
//! the service; they never touch the store's write side.

pub mod auth;
pub mod catalog;
pub mod events;
pub mod gate;
pub mod history;
pub mod identity;
pub mod instances;
pub mod openapi;
pub mod ops;
pub mod problem;
pub mod request;
pub mod routes;
pub mod telemetry;
pub mod validate;

use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, web};
use metrics_exporter_prometheus::PrometheusHandle;

use utoipa_swagger_ui::SwaggerUi;

use crate::service::Ledger;
use crate::store::Snapshot;
use problem::ApiError;

pub struct AppState {
    pub ledger: Ledger,
    pub tokens: auth::Tokens,
    pub metrics: Option<PrometheusHandle>,
    /// Set by the driver task while it runs; `/readyz` reports it.
    pub driver_running: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Runs a read against one consistent snapshot on the blocking pool.
pub async fn read<T, F>(state: &AppState, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Snapshot) -> Result<T, ApiError> + Send + 'static,
{
    let store = state.ledger.store().clone();
    web::block(move || {
        let snap = store.read()?;
        f(&*snap)
    })
    .await?
}

pub async fn no_route() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NoRoute)
}

/// Every route of the server; the binary and the tests build the app through this.
pub fn configure(cfg: &mut web::ServiceConfig) {
    routes::register(cfg, "", Some("/v1/"));
    cfg.service(
        web::scope("/v1")
            .wrap(from_fn(auth::require_token))
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
