//! The HTTP surface: the native `/v1` API, operational endpoints, auth, request
//! bookkeeping and error rendering. Handlers parse and validate, then hand commands to
//! the service; they never touch the store's write side.

pub mod auth;
pub mod catalog;
pub mod events;
pub mod instances;
pub mod ops;
pub mod problem;
pub mod request;
pub mod telemetry;
pub mod validate;

use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, web};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::service::Ledger;
use crate::store::Snapshot;
use catalog::ResourceBody;
use problem::ApiError;

pub struct AppState {
    pub ledger: Ledger,
    pub tokens: auth::Tokens,
    pub metrics: Option<PrometheusHandle>,
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

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}

pub async fn no_route() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NoRoute)
}

/// A resource whose unsupported methods answer 405 in problem+json.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

fn catalog_routes<B: ResourceBody + Send + 'static>(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource(&format!("/{}", B::PATH))
            .route(web::post().to(catalog::create::<B>))
            .route(web::get().to(catalog::list::<B>)),
    )
    .service(resource(&format!("/{}/{{id}}", B::PATH)).route(web::get().to(catalog::show::<B>)));
}

fn v1(cfg: &mut web::ServiceConfig) {
    use instances as i;
    cfg.service(
        resource("/instances")
            .route(web::post().to(i::create))
            .route(web::get().to(i::list)),
    )
    .service(
        resource("/instances/{id}")
            .route(web::get().to(i::show))
            .route(web::patch().to(i::patch))
            .route(web::delete().to(i::destroy)),
    )
    .service(resource("/instances/{id}/start").route(web::post().to(i::start)))
    .service(resource("/instances/{id}/stop").route(web::post().to(i::stop)))
    .service(resource("/instances/{id}/reboot").route(web::post().to(i::reboot)))
    .service(resource("/instances/{id}/resize").route(web::post().to(i::resize)))
    .service(resource("/instances/{id}/recover").route(web::post().to(i::recover)))
    .service(resource("/instances/{id}/purge").route(web::post().to(i::purge)))
    .service(
        resource("/instances/{id}/power")
            .route(web::get().to(i::power))
            .route(web::put().to(i::set_power)),
    )
    .service(resource("/instances/{id}/events").route(web::get().to(i::events)))
    .service(resource("/events").route(web::get().to(events::feed)))
    .service(resource("/ledger/head").route(web::get().to(events::head)));
    catalog_routes::<catalog::CustomerBody>(cfg);
    catalog_routes::<catalog::ProjectBody>(cfg);
    catalog_routes::<catalog::FlavorBody>(cfg);
    catalog_routes::<catalog::ImageBody>(cfg);
    catalog_routes::<catalog::NetworkBody>(cfg);
    catalog_routes::<catalog::SshKeyBody>(cfg);
}

/// Every route of the server; the binary and the tests build the app through this.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/healthz").route(web::get().to(ops::healthz)))
        .service(resource("/metrics").route(web::get().to(ops::metrics)))
        .service(
            web::scope("/v1")
                .wrap(from_fn(auth::require_token))
                .configure(v1)
                .default_service(web::to(no_route)),
        );
}
