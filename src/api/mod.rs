//! The HTTP surfaces ("wings") and what they share. Each wing translates its wire format
//! to the shared `query` reads and `service` writes and renders the outcome in its own
//! shape; it decides nothing itself, never opens a store snapshot and never imports
//! another wing.
//!
//! Shared here: the request context and bounded body ([`request`]), token authentication
//! ([`auth`]), field validation ([`validate`]), the neutral [`Failure`] and the rendering
//! contract ([`surface`]), and per-request telemetry. The wings: [`native`] (`/v1` and the
//! operational endpoints) and the vendor dialects: [`nodeconductor`] (seed 000), [`mogan`]
//! (seed 001), [`cloudmc`] (seed 002), [`launch_provision`] (seed 003) and [`wakame`]
//! (seed 004).

pub mod auth;
pub mod body_schema;
pub mod cloudmc;
pub mod console;
pub mod failure;
pub mod launch_provision;
pub mod mogan;
pub mod native;
pub mod nodeconductor;
pub mod openapi;
pub mod request;
pub mod surface;
pub mod telemetry;
pub mod tenancy;
pub mod validate;
pub mod wakame;
pub mod wing;

use actix_web::web;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::service::Ledger;
pub use failure::Failure;

pub struct AppState {
    pub ledger: Ledger,
    pub tokens: auth::Tokens,
    pub metrics: Option<PrometheusHandle>,
    /// Set by the driver task while it runs; `/readyz` reports it.
    pub driver_running: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub dialects: Dialects,
}

/// What operators tune about the dialects.
#[derive(Debug, Clone)]
pub struct Dialects {
    /// How long Wakame lists an account's terminated instances.
    pub wakame_terminated: std::time::Duration,
}

impl Default for Dialects {
    fn default() -> Dialects {
        Dialects {
            wakame_terminated: std::time::Duration::from_secs(900),
        }
    }
}

/// Every route of the server; the binary and the tests build the app through this.
pub fn configure(cfg: &mut web::ServiceConfig) {
    nodeconductor::configure(cfg);
    cloudmc::configure(cfg);
    mogan::configure(cfg);
    launch_provision::configure(cfg);
    wakame::configure(cfg);
    native::configure(cfg);
    console::configure(cfg);
}

/// What answers a path no wing serves: the native API's 404.
pub async fn no_route() -> Result<actix_web::HttpResponse, native::NativeError> {
    Err(Failure::NoRoute.into())
}
