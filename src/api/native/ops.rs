//! Operational endpoints outside `/v1` (no token): liveness, readiness, Prometheus metrics
//! and the OpenAPI document.

use std::sync::atomic::Ordering;

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::AppState;

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` while the process serves requests.
    pub status: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// The store answers a read and holds a consistent head.
    pub store: bool,
    /// The writer accepts work and its last commit succeeded.
    pub writer: bool,
    /// The driver task is running.
    pub driver: bool,
    /// Why not ready, one line per failed check.
    pub reasons: Vec<String>,
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Ready to serve: the store is readable, the writer is accepting and committing, and the
/// driver is running.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready; `reasons` says why", body = Readiness),
    ))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let mut reasons = Vec::new();
    let store_ok = match state.ledger.store_head().await {
        Ok(_) => true,
        Err(e) => {
            reasons.push(format!("store: {e}"));
            false
        }
    };
    let writer_ok = match state.ledger.writer_health() {
        Ok(()) => true,
        Err(why) => {
            reasons.push(format!("writer: {why}"));
            false
        }
    };
    let driver_ok = state.driver_running.load(Ordering::Relaxed);
    if !driver_ok {
        reasons.push("driver: not running".into());
    }
    let ready = store_ok && writer_ok && driver_ok;
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        store: store_ok,
        writer: writer_ok,
        driver: driver_ok,
        reasons,
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus text exposition: requests by route and status, append batch sizes, commit
/// latency, queue depth, driver backlog, store size.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain; version=0.0.4")))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    metrics::gauge!("ledger_write_queue_depth").set(state.ledger.queue_depth() as f64);
    if let Ok(Some(len)) = state.ledger.store_size().await {
        metrics::gauge!("ledger_store_bytes").set(len as f64);
    }
    let body = state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(body)
}

/// This OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(crate::api::openapi::json())
}
