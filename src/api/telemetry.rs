//! Per-request bookkeeping for every route: the request id (honoured from `X-Request-Id`
//! or generated, echoed back), one tracing span per request (request id, method, route,
//! status, latency) that everything logged while serving it inherits, and request count
//! and latency metrics labelled by route template, never by raw path.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use tracing::Instrument;
use uuid::Uuid;

use super::request::RequestId;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn usable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= crate::limits::REQUEST_ID_BYTES
        && id.bytes().all(|b| b.is_ascii_graphic())
}

pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| usable(v))
        .map(str::to_string)
        .unwrap_or_else(|| Uuid::now_v7().to_string());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let method = req.method().to_string();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        route = tracing::field::Empty,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    );
    let mut res = next.call(req).instrument(span.clone()).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    let status = res.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    span.record("route", route.as_str());
    span.record("status", status);
    span.record("latency_ms", elapsed * 1000.0);
    let labels = [
        ("method", method.clone()),
        ("route", route.clone()),
        ("status", status.to_string()),
    ];
    metrics::counter!("ledger_http_requests_total", &labels).increment(1);
    metrics::histogram!("ledger_http_request_duration_seconds", &labels).record(elapsed);
    span.in_scope(|| tracing::info!("request completed"));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    Ok(res)
}
