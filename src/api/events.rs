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

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// Return events after this position (default 0: from the start).
    #[serde(default)]
    after: u64,
    /// 1 to 1000, default 100.
    limit: Option<usize>,
    /// Only this instance's events.
    instance_id: Option<Uuid>,
    /// Only events of this project's instances.
    project_id: Option<Uuid>,
    /// Only events of this type, e.g. `StopRequested`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
    /// Only events caused by this actor (a user id, `admin`, `driver:simulated`).
    actor: Option<String>,
    /// Only events of this request.
    request_id: Option<String>,
    /// Only events at or after this time (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// Only events at or before this time (RFC 3339).
    until: Option<DateTime<Utc>>,
}

impl FeedQuery {
    fn parse(query: &str) -> Result<FeedQuery, ApiError> {
        web::Query::<FeedQuery>::from_query(query)
            .map(|q| q.into_inner())
            .map_err(|e| ApiError::bad_request(ProblemCode::InvalidParameter, e.to_string()))
    }

    /// Whether an event passes the filters (visibility is checked separately).
    fn matches(&self, e: &Envelope, project: Option<Uuid>) -> bool {
        self.instance_id.is_none_or(|id| id == e.stream_id)
            && self.project_id.is_none_or(|p| Some(p) == project)
            && self.event_type.as_ref().is_none_or(|t| *t == e.event_type)
            && self.actor.as_ref().is_none_or(|a| *a == e.actor)
            && self.request_id.as_ref().is_none_or(|r| *r == e.request_id)
            && self.since.is_none_or(|t| e.at >= t)
    }
}

/// One step of a feed: the matching events visible to the caller after `after`, at most
/// `limit`, looking at no more than `MAX_SCAN` events; and where to continue.
fn scan(
    snap: &dyn Snapshot,
    caller: &Principal,
    q: &FeedQuery,
    after: u64,
    limit: usize,
) -> Result<(Vec<EventItem>, u64), ApiError> {
    let mut visible = Visibility::new(caller);
    let mut items = Vec::new();
    let mut next_after = after;
    if let Some(since) = q.since {
        // Events are in time order: skip straight past everything before `since`.
        let before = snap.position_at(since - chrono::Duration::nanoseconds(1))?;
        next_after = next_after.max(before);
    }
    let mut scanned = 0;
    while items.len() < limit && scanned < MAX_SCAN {
        let batch = snap.read_all(next_after, limit.max(100))?;
        if batch.is_empty() {
            break;
        }
        for e in &batch {
            if q.until.is_some_and(|t| e.at > t) {
                return Ok((items, next_after));
            }
            scanned += 1;
            next_after = e.position;
            if let Some(project) = visible.event(snap, e)?
                && q.matches(e, project)
            {
                items.push(EventItem::try_from(e)?);
                if items.len() == limit {
                    break;
                }
            }
        }
    }
    Ok((items, next_after))
}

/// The global feed: the events you may see after a position, in order, with audit filters.
#[utoipa::path(get, path = "/v1/events", tag = "ledger", params(FeedQuery),
    responses((status = 200, description = "Events in position order", body = Feed), (status = 400, response = BadRequest)))]
pub async fn feed(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: Ctx,
) -> Result<HttpResponse, ApiError> {
    let q = FeedQuery::parse(req.query_string())?;
    let limit = super::request::page_limit(&q.limit.unwrap_or(100).to_string())?;
    let caller = ctx.principal.clone();
    let body = read(&state, move |snap| {
        let (items, next_after) = scan(snap, &caller, &q, q.after, limit)?;
        Ok(Feed { items, next_after })
    })
    .await?;
    Ok(HttpResponse::Ok().json(body))
}

/// Most events one feed request looks at for a caller who sees few of them.
const MAX_SCAN: usize = 10_000;
/// A comment line this often keeps idle live feeds (and proxies) open.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(15);

/// The live feed (Server-Sent Events): every event you may see, as it commits. Each
/// message's `id` is its global position; reconnect with `Last-Event-ID` (or `after`) to
/// resume with nothing missed and nothing repeated. Takes the feed's filters.
#[utoipa::path(get, path = "/v1/events/stream", tag = "ledger", params(FeedQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this position")),
    responses((status = 200, description = "`text/event-stream`: `id` = position, `event` = type, `data` = the event as in the feed", content_type = "text/event-stream", body = String),
        (status = 400, response = BadRequest)))]
pub async fn stream(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: Ctx,
) -> Result<HttpResponse, ApiError> {
    let q = FeedQuery::parse(req.query_string())?;
    let resume = match req.headers().get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        ProblemCode::InvalidHeader,
                        "Last-Event-ID must be a position",
                    )
                })?,
        ),
    };
    let live = Live {
        after: resume.unwrap_or(q.after),
        q,
        caller: ctx.principal.clone(),
        store: state.ledger.store().clone(),
        commits: state.ledger.subscribe(),
        pending: std::collections::VecDeque::new(),
        started: false,
    };
    let body = futures_util::stream::unfold(live, |mut live| async move {
        let chunk = live.next().await?;
        Some((Ok::<_, actix_web::Error>(chunk), live))
    });
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

/// The state of one live feed connection.
struct Live {
    after: u64,
    q: FeedQuery,
    caller: Principal,
    store: std::sync::Arc<dyn crate::store::EventStore>,
    commits: tokio::sync::watch::Receiver<u64>,
    pending: std::collections::VecDeque<web::Bytes>,
    started: bool,
}

impl Live {
    /// The next chunk to send; `None` ends the stream (the server is shutting down).
    async fn next(&mut self) -> Option<web::Bytes> {
        if !self.started {
            self.started = true;
            return Some(web::Bytes::from_static(b"retry: 2000\n: connected\n\n"));
        }
        loop {
            if let Some(chunk) = self.pending.pop_front() {
                return Some(chunk);
            }
            // Mark what we have seen before reading, so a commit landing meanwhile wakes us.
            self.commits.borrow_and_update();
            let (store, caller, q, after) = (
                self.store.clone(),
                self.caller.clone(),
                self.q.clone(),
                self.after,
            );
            let step = web::block(move || {
                let snap = store.read()?;
                scan(&*snap, &caller, &q, after, 100)
            })
            .await;
            let (items, next_after) = match step {
                Ok(Ok(step)) => step,
                // A failed read ends this connection; the client resumes from its last id.
                _ => return None,
            };
            self.after = next_after;
            for item in items {
                let data = serde_json::to_string(&item).unwrap_or_default();
                let message = format!(
                    "id: {}\nevent: {}\ndata: {data}\n\n",
                    item.position, item.event_type
                );
                self.pending.push_back(web::Bytes::from(message));
            }
            if !self.pending.is_empty() || next_after > after {
                continue;
            }
            tokio::select! {
                changed = self.commits.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                _ = tokio::time::sleep(HEARTBEAT) => {
                    return Some(web::Bytes::from_static(b": heartbeat\n\n"));
                }
            }
        }
    }
}

/// Decides, per event, whether the caller may see it, and finds the project of instance
/// events: staff see everything; agents every instance event; others the events of
/// instances they may read. `None`: hidden; `Some(project)`: visible.
pub struct Visibility<'a> {
    caller: &'a Principal,
    instances: HashMap<Uuid, Option<(bool, Uuid)>>,
}

impl<'a> Visibility<'a> {
    pub fn new(caller: &'a Principal) -> Visibility<'a> {
        Visibility {
            caller,
            instances: HashMap::new(),
        }
    }

    pub fn event(
        &mut self,
        snap: &dyn Snapshot,
        e: &Envelope,
    ) -> Result<Option<Option<Uuid>>, ApiError> {
        if e.stream_kind != StreamKind::Instance {
            return Ok(self.caller.staff.then_some(None));
        }
        let known = match self.instances.get(&e.stream_id) {
            Some(k) => *k,
            None => {
                let k = snap.instance(e.stream_id)?.map(|i| {
                    let object = Object::Instance {
                        project: i.spec.project_id,
                        customer: i.spec.customer_id,
                    };
                    (
                        can(self.caller, Action::ReadInstance, &object) == Decision::Allow,
                        i.spec.project_id,
                    )
                });
                self.instances.insert(e.stream_id, k);
                k
            }
        };
        Ok(match known {
            Some((true, project)) => Some(Some(project)),
            _ => None,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Digest {
    /// The position the digest attests (the head unless asked otherwise).
    pub position: u64,
    /// Hex SHA-256 of the event at `position`: it chains every earlier event.
    pub hash: String,
    /// When that event was committed (null for an empty ledger).
    pub at: Option<DateTime<Utc>>,
    /// Hex multiset hash of every instance's folded state after `position`: a replay of
    /// the log up to `position` must reproduce it.
    pub state_hash: String,
}

/// A digest to hold on to: later, `GET /v1/ledger/digest?at_position=` (or `ledger
/// verify`) proves the log up to it was not rewritten and replays to the same state.
#[utoipa::path(get, path = "/v1/ledger/digest", tag = "ledger",
    params(("at_position" = Option<u64>, Query, description = "Attest this position instead of the head"),
        ("as_of" = Option<String>, Query, description = "Attest the last position at or before this time")),
    responses((status = 200, description = "The digest", body = Digest), (status = 400, response = BadRequest)))]
pub async fn digest(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let mut pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request(ProblemCode::InvalidParameter, e.to_string()))?
        .into_inner();
    let point = super::history::take_point(&mut pairs)?;
    if let Some((k, _)) = pairs.first() {
        return Err(super::request::unknown_parameter(k));
    }
    let body = read(&state, move |snap| {
        let head = snap.head()?;
        let position = match point {
            None => head.position,
            Some(p) => p.resolve(snap)?.min(head.position),
        };
        let event = match position {
            0 => None,
            p => snap.read_all(p - 1, 1)?.into_iter().next(),
        };
        let hash = match (&event, position == head.position) {
            (_, true) => head.hash,
            (Some(e), false) => snap.event_hash(e.position)?,
            (None, false) => [0u8; 32],
        };
        Ok(Digest {
            position,
            hash: hex(&hash),
            at: event.map(|e| e.at),
            state_hash: hex(&snap.state_hash_at(position)?),
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(body))
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
