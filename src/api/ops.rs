//! Operational endpoints outside `/v1`: liveness and Prometheus metrics (no token).

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    metrics::gauge!("ledger_write_queue_depth").set(state.ledger.queue_depth() as f64);
    match &state.metrics {
        Some(handle) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4")
            .body(handle.render()),
        None => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4")
            .body(""),
    }
}
