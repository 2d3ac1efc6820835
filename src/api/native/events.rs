//! The log as seen through the API: the global feed from a position and the head of the
//! hash chain. Per-instance timelines use the same item shape.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::openapi::BadRequest;
use super::params::point_only;
use super::{Caller, NativeError};
use crate::api::AppState;
use crate::api::failure::{Failure, Input};
use crate::api::request::page_limit;
use crate::authz::Principal;
use crate::limits;
use crate::query::feed::FeedFilter;
use crate::query::{self, Envelope, StreamKind};
use crate::store::envelope::hex;

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
    type Error = NativeError;
    fn try_from(e: &Envelope) -> Result<EventItem, NativeError> {
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
                .map_err(|why| Failure::Internal(format!("position {}: {why}", e.position)))?,
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
    fn parse(query: &str) -> Result<FeedQuery, Failure> {
        web::Query::<FeedQuery>::from_query(query)
            .map(|q| q.into_inner())
            .map_err(|e| Failure::parameter(e.to_string()))
    }

    fn filter(&self) -> FeedFilter {
        FeedFilter {
            instance_id: self.instance_id,
            project_id: self.project_id,
            event_type: self.event_type.clone(),
            actor: self.actor.clone(),
            request_id: self.request_id.clone(),
            since: self.since,
            until: self.until,
        }
    }
}

fn items(found: &[Envelope]) -> Result<Vec<EventItem>, NativeError> {
    found.iter().map(EventItem::try_from).collect()
}

/// The global feed: the events you may see after a position, in order, with audit filters.
#[utoipa::path(get, path = "/v1/events", tag = "ledger", params(FeedQuery),
    responses((status = 200, description = "Events in position order", body = Feed), (status = 400, response = BadRequest)))]
pub async fn feed(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, NativeError> {
    let q = FeedQuery::parse(req.query_string())?;
    let limit = page_limit(&q.limit.unwrap_or(limits::FEED_DEFAULT).to_string())?;
    let (filter, after) = (q.filter(), q.after);
    let step = query::read(&state.ledger, &caller, move |r| {
        r.feed(&filter, after, limit)
    })
    .await?;
    Ok(HttpResponse::Ok().json(Feed {
        items: items(&step.items)?,
        next_after: step.next_after,
    }))
}

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
    caller: Caller,
) -> Result<HttpResponse, NativeError> {
    let q = FeedQuery::parse(req.query_string())?;
    let resume = match req.headers().get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    Failure::bad_request(Input::InvalidHeader, "Last-Event-ID must be a position")
                })?,
        ),
    };
    let live = Live {
        after: resume.unwrap_or(q.after),
        filter: q.filter(),
        caller: caller.principal.clone(),
        source: query::Source::from(&state.ledger),
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
    filter: FeedFilter,
    caller: Principal,
    source: query::Source,
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
            let (filter, after) = (self.filter.clone(), self.after);
            let step = query::read(&self.source, &self.caller, move |r| {
                r.feed(&filter, after, limits::FEED_DEFAULT)
            })
            .await;
            // A failed read ends this connection; the client resumes from its last id.
            let Ok(step) = step else {
                return None;
            };
            let next_after = step.next_after;
            self.after = next_after;
            let Ok(items) = items(&step.items) else {
                return None;
            };
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
    caller: Caller,
) -> Result<HttpResponse, NativeError> {
    let point = point_only(req.query_string())?;
    let d = query::read(&state.ledger, &caller, move |r| r.digest(point)).await?;
    Ok(HttpResponse::Ok().json(Digest {
        position: d.position,
        hash: hex(&d.hash),
        at: d.at,
        state_hash: hex(&d.state_hash),
    }))
}

/// The head of the hash chain.
#[utoipa::path(get, path = "/v1/ledger/head", tag = "ledger",
    responses((status = 200, description = "The last position and its hash", body = Head)))]
pub async fn head(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, NativeError> {
    let head = query::read(&state.ledger, &caller, |r| r.head()).await?;
    Ok(HttpResponse::Ok().json(Head {
        position: head.position,
        hash: hex(&head.hash),
    }))
}
