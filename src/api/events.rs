//! The log as seen through the API: the global feed from a position and the head of the
//! hash chain. Per-instance timelines use the same item shape.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::problem::ApiError;
use super::{AppState, read};
use crate::store::Envelope;
use crate::store::envelope::hex;

/// One event as the API shows it.
pub fn item(e: &Envelope) -> Value {
    json!({
        "position": e.position,
        "stream_id": e.stream_id,
        "stream_kind": e.stream_kind,
        "version": e.version,
        "type": e.event_type,
        "at": e.at,
        "actor": e.actor,
        "request_id": e.request_id,
        "origin": e.origin,
        "data": e.data,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

pub async fn feed(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let q = web::Query::<FeedQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request("invalid_parameter", e.to_string()))?
        .into_inner();
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            "limit must be an integer from 1 to 1000",
        ));
    }
    let after = q.after;
    let body = read(&state, move |snap| {
        let events = snap.read_all(after, limit)?;
        let next_after = events.last().map_or(after, |e| e.position);
        Ok(json!({
            "items": events.iter().map(item).collect::<Vec<_>>(),
            "next_after": next_after,
        }))
    })
    .await?;
    Ok(HttpResponse::Ok().json(body))
}

pub async fn head(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let head = read(&state, |snap| Ok(snap.head()?)).await?;
    Ok(HttpResponse::Ok().json(json!({
        "position": head.position,
        "hash": hex(&head.hash),
    })))
}
