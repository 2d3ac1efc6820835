//! Time travel over the API: points in time (`as_of` / `at_position`), diffs of one
//! instance between two points, the fleet's changes in a window, and the ledger digest.

use chrono::{DateTime, Utc};

use super::problem::{ApiError, ProblemCode};
use crate::store::Snapshot;

/// A moment of the ledger: a time, or a position in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    Time(DateTime<Utc>),
    Position(u64),
}

impl Point {
    pub fn time(name: &str, raw: &str) -> Result<Point, ApiError> {
        DateTime::parse_from_rfc3339(raw)
            .map(|t| Point::Time(t.with_timezone(&Utc)))
            .map_err(|_| {
                ApiError::bad_request(
                    ProblemCode::InvalidParameter,
                    format!("{name} must be an RFC 3339 time like 2026-11-22T09:00:00Z"),
                )
            })
    }

    pub fn position(name: &str, raw: &str) -> Result<Point, ApiError> {
        raw.parse::<u64>().map(Point::Position).map_err(|_| {
            ApiError::bad_request(
                ProblemCode::InvalidParameter,
                format!("{name} must be a log position (a non-negative integer)"),
            )
        })
    }

    /// A position when all digits, otherwise an RFC 3339 time.
    pub fn either(name: &str, raw: &str) -> Result<Point, ApiError> {
        if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
            Point::position(name, raw)
        } else {
            Point::time(name, raw)
        }
    }

    /// The log position this point stands for: after every event up to and including it.
    pub fn resolve(self, snap: &dyn Snapshot) -> Result<u64, ApiError> {
        match self {
            Point::Position(p) => Ok(p),
            Point::Time(t) => Ok(snap.position_at(t)?),
        }
    }
}

/// Reads `as_of` and `at_position` (at most one) from query pairs, leaving the others.
pub fn take_point(pairs: &mut Vec<(String, String)>) -> Result<Option<Point>, ApiError> {
    let mut point = None;
    let mut rest = Vec::with_capacity(pairs.len());
    for (k, v) in pairs.drain(..) {
        let p = match k.as_str() {
            "as_of" => Point::time("as_of", &v)?,
            "at_position" => Point::position("at_position", &v)?,
            _ => {
                rest.push((k, v));
                continue;
            }
        };
        if point.replace(p).is_some() {
            return Err(ApiError::bad_request(
                ProblemCode::InvalidParameter,
                "give one of as_of and at_position, once",
            ));
        }
    }
    *pairs = rest;
    Ok(point)
}

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::events::{EventItem, Visibility};
use super::instances::parse_filter;
use super::openapi::{BadRequest, NotFound};
use super::request::Ctx;
use super::{AppState, read};
use crate::domain::instance::Instance;
use crate::projection::{Filter, InstanceView, index};
use crate::store::StreamKind;

/// One field that differs between two views.
#[derive(Debug, Serialize, ToSchema)]
pub struct Change {
    pub field: String,
    #[schema(value_type = Object)]
    pub from: Value,
    #[schema(value_type = Object)]
    pub to: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Diff {
    /// The position `from` resolved to.
    pub from_position: u64,
    pub to_position: u64,
    /// The view at `from` (null if the instance did not exist yet).
    pub from: Option<InstanceView>,
    pub to: Option<InstanceView>,
    pub changes: Vec<Change>,
    /// The instance's events after `from`, up to and including `to`.
    pub events: Vec<EventItem>,
}

fn changes(from: Option<&InstanceView>, to: Option<&InstanceView>) -> Vec<Change> {
    let as_map = |v: Option<&InstanceView>| match v.map(serde_json::to_value) {
        Some(Ok(Value::Object(m))) => m,
        _ => serde_json::Map::new(),
    };
    let (a, b) = (as_map(from), as_map(to));
    let mut fields: Vec<&String> = a.keys().chain(b.keys()).collect();
    fields.sort();
    fields.dedup();
    fields
        .into_iter()
        .filter_map(|f| {
            let (x, y) = (
                a.get(f).cloned().unwrap_or(Value::Null),
                b.get(f).cloned().unwrap_or(Value::Null),
            );
            (x != y).then(|| Change {
                field: f.clone(),
                from: x,
                to: y,
            })
        })
        .collect()
}

fn query_pairs(req: &HttpRequest) -> Result<Vec<(String, String)>, ApiError> {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .map_err(|e| ApiError::bad_request(ProblemCode::InvalidParameter, e.to_string()))
}

/// How one instance changed between two points (times or positions).
#[utoipa::path(get, path = "/v1/instances/{id}/diff", tag = "instances",
    params(("id" = String, Path, description = "Instance id or short id"),
        ("from" = String, Query, description = "RFC 3339 time or log position"),
        ("to" = Option<String>, Query, description = "RFC 3339 time or log position (default: now)")),
    responses((status = 200, description = "Both views, the changed fields and the events between", body = Diff),
        (status = 400, response = BadRequest), (status = 404, response = NotFound)))]
pub async fn diff(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let mut from = None;
    let mut to = None;
    for (k, v) in query_pairs(&req)? {
        match k.as_str() {
            "from" => from = Some(Point::either("from", &v)?),
            "to" => to = Some(Point::either("to", &v)?),
            _ => {
                return Err(super::request::unknown_parameter(&k));
            }
        }
    }
    let from = from
        .ok_or_else(|| ApiError::bad_request(ProblemCode::InvalidParameter, "from is required"))?;
    let raw = path.into_inner();
    let body = read(&state, move |snap| {
        let id = super::instances::resolve(snap, &raw)?;
        let head = snap.head()?.position;
        let from_position = from.resolve(snap)?.min(head);
        let to_position = match to {
            Some(p) => p.resolve(snap)?.min(head),
            None => head,
        };
        if from_position > to_position {
            return Err(ApiError::bad_request(
                ProblemCode::InvalidParameter,
                "from must not be after to",
            ));
        }
        let stream = snap.stream(id)?;
        if stream
            .first()
            .is_none_or(|e| e.stream_kind != StreamKind::Instance)
        {
            return Err(ApiError::NotFound(format!("instance {raw}")));
        }
        let view = |p: u64| -> Result<Option<InstanceView>, ApiError> {
            Ok(snap.instance_at(id, p)?.as_ref().map(InstanceView::from))
        };
        let (a, b) = (view(from_position)?, view(to_position)?);
        let events = stream
            .iter()
            .filter(|e| e.position > from_position && e.position <= to_position)
            .map(EventItem::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Diff {
            from_position,
            to_position,
            changes: changes(a.as_ref(), b.as_ref()),
            from: a,
            to: b,
            events,
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(body))
}

/// One instance that changed in a window, before and after.
#[derive(Debug, Serialize, ToSchema)]
pub struct Changed {
    pub id: Uuid,
    /// The view at `since` (null if created in the window).
    pub before: Option<InstanceView>,
    /// The view at `until`.
    pub after: Option<InstanceView>,
    pub changes: Vec<Change>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeList {
    pub since_position: u64,
    pub until_position: u64,
    pub items: Vec<Changed>,
    /// Pass as `since` to continue when the window held more; null when done.
    pub next_since: Option<u64>,
}

fn matches(inst: Option<&Instance>, keys: &[index::IndexKey]) -> bool {
    inst.is_some_and(|i| {
        let have = index::instance_keys(i);
        keys.iter().all(|k| have.contains(k))
    })
}

/// The instances that changed in a window, with their views before and after. Filters
/// (as on the list) match either view; you see only instances you may read.
#[utoipa::path(get, path = "/v1/changes", tag = "instances",
    params(("since" = String, Query, description = "RFC 3339 time or log position: changes after it"),
        ("until" = Option<String>, Query, description = "RFC 3339 time or log position (default: now)"),
        ("limit" = Option<u32>, Query, description = "Instances per answer, 1 to 1000, default 100"),
        ("state" = Option<String>, Query), ("project_id" = Option<Uuid>, Query), ("customer_id" = Option<Uuid>, Query),
        ("hostname" = Option<String>, Query), ("name" = Option<String>, Query), ("security_group" = Option<String>, Query),
        ("flavor_id" = Option<Uuid>, Query), ("image_id" = Option<Uuid>, Query), ("availability_zone" = Option<String>, Query),
        ("tag" = Option<Vec<String>>, Query)),
    responses((status = 200, description = "Changed instances", body = ChangeList), (status = 400, response = BadRequest)))]
pub async fn fleet_changes(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: Ctx,
) -> Result<HttpResponse, ApiError> {
    let mut since = None;
    let mut until = None;
    let mut limit = 100usize;
    let mut filters: Vec<Filter> = Vec::new();
    for (k, v) in query_pairs(&req)? {
        match k.as_str() {
            "since" => since = Some(Point::either("since", &v)?),
            "until" => until = Some(Point::either("until", &v)?),
            "limit" => limit = super::request::page_limit(&v)?,
            _ => match parse_filter(&k, v)? {
                Some(f) => filters.push(f),
                None => {
                    return Err(super::request::unknown_parameter(&k));
                }
            },
        }
    }
    let since = since
        .ok_or_else(|| ApiError::bad_request(ProblemCode::InvalidParameter, "since is required"))?;
    let keys: Vec<index::IndexKey> = filters.iter().map(Filter::index_key).collect();
    let caller = ctx.principal.clone();
    let body = read(&state, move |snap| {
        let head = snap.head()?.position;
        let since_position = since.resolve(snap)?.min(head);
        let until_position = match until {
            Some(p) => p.resolve(snap)?.min(head),
            None => head,
        };
        let mut visible = Visibility::new(&caller);
        let mut seen: Vec<Uuid> = Vec::new();
        let mut items = Vec::new();
        let mut cursor = since_position;
        let mut next_since = None;
        'scan: while cursor < until_position {
            let batch = snap.read_all(cursor, 500)?;
            if batch.is_empty() {
                break;
            }
            for e in &batch {
                if e.position > until_position {
                    break 'scan;
                }
                if e.stream_kind == StreamKind::Instance
                    && !seen.contains(&e.stream_id)
                    && visible.event(snap, e)?.is_some()
                {
                    if items.len() == limit {
                        next_since = Some(cursor);
                        break 'scan;
                    }
                    seen.push(e.stream_id);
                    let before = snap.instance_at(e.stream_id, since_position)?;
                    let after = snap.instance_at(e.stream_id, until_position)?;
                    if keys.is_empty()
                        || matches(before.as_ref(), &keys)
                        || matches(after.as_ref(), &keys)
                    {
                        let (b, a) = (
                            before.as_ref().map(InstanceView::from),
                            after.as_ref().map(InstanceView::from),
                        );
                        items.push(Changed {
                            id: e.stream_id,
                            changes: changes(b.as_ref(), a.as_ref()),
                            before: b,
                            after: a,
                        });
                    }
                }
                cursor = e.position;
            }
        }
        Ok(ChangeList {
            since_position,
            until_position,
            items,
            next_since,
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(body))
}
