//! The log as seen through the API: the global feed from a position and the head of the
//! hash chain. Per-instance timelines use the same item shape.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::openapi::BadRequest;
use super::problem::{ApiError, ProblemCode};
use super::request::Ctx;
use super::{AppState, read};
use std::collections::HashMap;

use crate::authz::{Action, Decision, Object, Principal, can};
use crate::store::envelope::hex;
use crate::store::{Envelope, Snapshot, StreamKind};

/// One event as the API shows it; `data` is in the current schema version of its type.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventItem {
    /// Global position: gap-free, in commit order.
    pub position: u64,
    pub stream_id: Uuid,
    pub stream_kind: StreamKind,
    /// The event's number within its stream.
    pub version: u64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub at: DateTime<Utc>,
    pub actor: String,
    /// The token the actor used, when it used one of its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    pub request_id: String,
    pub origin: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl TryFrom<&Envelope> for EventItem {
    type Error = ApiError;
    fn try_from(e: &Envelope) -> Result<EventItem, ApiError> {
        Ok(EventItem {
            position: e.position,
            stream_id: e.stream_id,
            stream_kind: e.stream_kind,
            version: e.version,
            event_type: e.event_type.clone(),
            at: e.at,
            actor: e.actor.clone(),
            token_id: e.token_id.clone(),
            request_id: e.request_id.clone(),
            origin: e.origin.clone(),
            data: e
                .current_data()
                .map_err(|why| ApiError::Internal(format!("position {}: {why}", e.position)))?,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    pub items: Vec<EventItem>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Feed {
    pub items: Vec<EventItem>,
    /// Pass as `after` to continue; equals `after` when nothing new was found.
    pub next_after: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Head {
    /// The last position (0 for an empty ledger).
    pub position: u64,
    /// Hex SHA-256 of the last event's stored bytes.
    pub hash: String,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// Return events after this position (default 0: from the start).
    #[serde(default)]
    after: u64,
    /// 1 to 1000, default 100.
    limit: Option<usize>,
}

/// The global feed: every event after a position, in order.
#[utoipa::path(get, path = "/v1/events", tag = "ledger", params(FeedQuery),
    responses((status = 200, description = "Events in position order", body = Feed), (status = 400, response = BadRequest)))]
pub async fn feed(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: Ctx,
) -> Result<HttpResponse, ApiError> {
    let q = web::Query::<FeedQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request(ProblemCode::InvalidParameter, e.to_string()))?
        .into_inner();
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            ProblemCode::InvalidParameter,
            "limit must be an integer from 1 to 1000",
        ));
    }
    let after = q.after;
    let caller = ctx.principal.clone();
    let body = read(&state, move |snap| {
        let mut visible = Visibility::new(&caller);
        let mut items = Vec::new();
        let mut next_after = after;
        let mut scanned = 0;
        // Scan a bounded stretch of the log per request; `next_after` says where to go on.
        while items.len() < limit && scanned < MAX_SCAN {
            let batch = snap.read_all(next_after, limit.max(100))?;
            if batch.is_empty() {
                break;
            }
            for e in &batch {
                scanned += 1;
                next_after = e.position;
                if visible.event(snap, e)? {
                    items.push(EventItem::try_from(e)?);
                    if items.len() == limit {
                        break;
                    }
                }
            }
        }
        Ok(Feed { items, next_after })
    })
    .await?;
    Ok(HttpResponse::Ok().json(body))
}

/// Most events one feed request looks at for a caller who sees few of them.
const MAX_SCAN: usize = 10_000;

/// Decides, per event, whether the caller may see it: staff and agents see instance
/// events, staff everything; others the events of instances they may read.
pub struct Visibility<'a> {
    caller: &'a Principal,
    instances: HashMap<Uuid, bool>,
}

impl<'a> Visibility<'a> {
    pub fn new(caller: &'a Principal) -> Visibility<'a> {
        Visibility {
            caller,
            instances: HashMap::new(),
        }
    }

    pub fn event(&mut self, snap: &dyn Snapshot, e: &Envelope) -> Result<bool, ApiError> {
        if self.caller.staff {
            return Ok(true);
        }
        if e.stream_kind != StreamKind::Instance {
            return Ok(false);
        }
        if let Some(v) = self.instances.get(&e.stream_id) {
            return Ok(*v);
        }
        let visible = match snap.instance(e.stream_id)? {
            Some(i) => {
                let object = Object::Instance {
                    project: i.spec.project_id,
                    customer: i.spec.customer_id,
                };
                can(self.caller, Action::ReadInstance, &object) == Decision::Allow
            }
            None => false,
        };
        self.instances.insert(e.stream_id, visible);
        Ok(visible)
    }
}

/// The head of the hash chain.
#[utoipa::path(get, path = "/v1/ledger/head", tag = "ledger",
    responses((status = 200, description = "The last position and its hash", body = Head)))]
pub async fn head(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let head = read(&state, |snap| Ok(snap.head()?)).await?;
    Ok(HttpResponse::Ok().json(Head {
        position: head.position,
        hash: hex(&head.hash),
    }))
}
