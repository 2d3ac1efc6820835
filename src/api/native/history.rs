//! Time travel over the native API: how one instance changed between two points, and
//! the fleet's changes in a window. The reads are the query layer's; this renders them.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::events::EventItem;
use super::openapi::{BadRequest, NotFound};
use super::params::{either, pairs, parse_filter};
use super::{Caller, NativeError};
use crate::api::request::page_limit;
use crate::api::{AppState, Failure};
use crate::limits;
use crate::projection::{Filter, InstanceView};
use crate::query;

/// One field that differs between two views.
#[derive(Debug, Serialize, ToSchema)]
pub struct Change {
    pub field: String,
    /// Any JSON value the field held (null included).
    pub from: Value,
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
    caller: Caller,
) -> Result<HttpResponse, NativeError> {
    let mut from = None;
    let mut to = None;
    for (k, v) in pairs(req.query_string())? {
        match k.as_str() {
            "from" => from = Some(either("from", &v)?),
            "to" => to = Some(either("to", &v)?),
            _ => return Err(Failure::unknown_parameter(&k).into()),
        }
    }
    let from = from.ok_or_else(|| Failure::parameter("from is required"))?;
    let raw = path.into_inner();
    let d = query::read(&state.ledger, &caller, move |r| r.diff(&raw, from, to)).await?;
    let (a, b) = (
        d.from.as_ref().map(InstanceView::from),
        d.to.as_ref().map(InstanceView::from),
    );
    let events = d
        .events
        .iter()
        .map(EventItem::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(Diff {
        from_position: d.from_position,
        to_position: d.to_position,
        changes: changes(a.as_ref(), b.as_ref()),
        from: a,
        to: b,
        events,
    }))
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
    caller: Caller,
) -> Result<HttpResponse, NativeError> {
    let mut since = None;
    let mut until = None;
    let mut limit = limits::CHANGES_DEFAULT;
    let mut filters: Vec<Filter> = Vec::new();
    for (k, v) in pairs(req.query_string())? {
        match k.as_str() {
            "since" => since = Some(either("since", &v)?),
            "until" => until = Some(either("until", &v)?),
            "limit" => limit = page_limit(&v)?,
            _ => match parse_filter(&k, v)? {
                Some(f) => filters.push(f),
                None => return Err(Failure::unknown_parameter(&k).into()),
            },
        }
    }
    let since = since.ok_or_else(|| Failure::parameter("since is required"))?;
    let found = query::read(&state.ledger, &caller, move |r| {
        r.changes(since, until, &filters, limit)
    })
    .await?;
    let items = found
        .items
        .iter()
        .map(|c| {
            let (b, a) = (
                c.before.as_ref().map(InstanceView::from),
                c.after.as_ref().map(InstanceView::from),
            );
            Changed {
                id: c.id,
                changes: changes(b.as_ref(), a.as_ref()),
                before: b,
                after: a,
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(ChangeList {
        since_position: found.since_position,
        until_position: found.until_position,
        items,
        next_since: found.next_since,
    }))
}
