//! The native query-string vocabulary: list filters (`state`, `project_id`, `tag=k:v`,
//! ...), `limit` and `cursor`, and the points of time travel (`as_of`, `at_position`).
//! Parsed into the query layer's typed requests; anything unknown is refused.

use actix_web::web;
use uuid::Uuid;

use super::NativeError;
use crate::api::request::page_limit;
use crate::api::{AppState, Failure};
use crate::authz::Principal;
use crate::domain::lifecycle::State;
use crate::limits;
use crate::projection::Filter;
use crate::query::Point;
use crate::query::instances::InstanceQuery;
use crate::query::{self, QueryError, Reader};

/// The query parameters `GET /v1/instances` accepts: the filters plus paging.
pub const INSTANCE_LIST_PARAMS: [&str; 14] = [
    "as_of",
    "at_position",
    "state",
    "project_id",
    "customer_id",
    "hostname",
    "name",
    "security_group",
    "flavor_id",
    "image_id",
    "availability_zone",
    "tag",
    "limit",
    "cursor",
];

/// The query string as ordered pairs.
pub fn pairs(query: &str) -> Result<Vec<(String, String)>, Failure> {
    web::Query::<Vec<(String, String)>>::from_query(query)
        .map(|q| q.into_inner())
        .map_err(|e| Failure::parameter(e.to_string()))
}

fn uuid_param(name: &str, v: &str) -> Result<Uuid, Failure> {
    Uuid::parse_str(v).map_err(|_| Failure::parameter(format!("{name} must be a UUID")))
}

/// One list filter from a query parameter; `None` when the name is not a filter.
pub fn parse_filter(k: &str, v: String) -> Result<Option<Filter>, Failure> {
    Ok(Some(match k {
        "state" => {
            Filter::State(State::parse(&v).ok_or_else(|| {
                Failure::parameter(format!("state {v:?} is not a lifecycle state"))
            })?)
        }
        "project_id" => Filter::ProjectId(uuid_param(k, &v)?),
        "customer_id" => Filter::CustomerId(uuid_param(k, &v)?),
        "flavor_id" => Filter::FlavorId(uuid_param(k, &v)?),
        "image_id" => Filter::ImageId(uuid_param(k, &v)?),
        "hostname" => Filter::Hostname(v.to_ascii_lowercase()),
        "name" => Filter::Name(v),
        "security_group" => Filter::SecurityGroup(v),
        "availability_zone" => Filter::AvailabilityZone(v),
        "tag" => {
            let (tk, tv) = v
                .split_once(':')
                .ok_or_else(|| Failure::parameter("tag must be key:value"))?;
            Filter::Tag(tk.to_string(), tv.to_string())
        }
        _ => return Ok(None),
    }))
}

/// Reads `as_of` and `at_position` from query pairs, leaving the others; given both, the
/// earlier of the two points is meant ("as of this time, but not past this position").
pub fn take_point(pairs: &mut Vec<(String, String)>) -> Result<Option<Point>, Failure> {
    let mut point = None;
    let mut rest = Vec::with_capacity(pairs.len());
    for (k, v) in pairs.drain(..) {
        let p = match k.as_str() {
            "as_of" => Point::time("as_of", &v).map_err(Failure::parameter)?,
            "at_position" => Point::position("at_position", &v).map_err(Failure::parameter)?,
            _ => {
                rest.push((k, v));
                continue;
            }
        };
        point = Some(match (point, p) {
            (None, p) => p,
            (Some(Point::Time(t)), Point::Position(n))
            | (Some(Point::Position(n)), Point::Time(t)) => Point::Earlier(t, n),
            _ => {
                return Err(Failure::parameter(
                    "give as_of and at_position at most once each",
                ));
            }
        });
    }
    *pairs = rest;
    Ok(point)
}

/// Only a point (or nothing): for reads of one object.
pub fn point_only(query: &str) -> Result<Option<Point>, Failure> {
    let mut pairs = pairs(query)?;
    let point = take_point(&mut pairs)?;
    if let Some((k, _)) = pairs.first() {
        return Err(Failure::unknown_parameter(k));
    }
    Ok(point)
}

/// A point given as a time or a position.
pub fn either(name: &str, raw: &str) -> Result<Point, Failure> {
    Point::either(name, raw).map_err(Failure::parameter)
}

/// The cursor the lists hand out: the last id of the page.
pub fn cursor(raw: &str) -> Result<Uuid, Failure> {
    Uuid::try_parse(raw).map_err(|_| Failure::parameter("cursor is not one this API issued"))
}

/// One page of a list without filters: `limit` and `cursor` from the query string, the
/// page from `read` as the caller may see it.
pub async fn page<T, F>(
    state: &AppState,
    caller: &Principal,
    query: &str,
    read: F,
) -> Result<T, NativeError>
where
    T: Send + 'static,
    F: FnOnce(&Reader<'_>, Option<Uuid>, usize) -> Result<T, QueryError> + Send + 'static,
{
    let p = list_params(query, false)?;
    Ok(query::read(&state.ledger, caller, move |r| read(r, p.cursor, p.limit)).await?)
}

/// A list query: with `filters`, the instance filters and a point; without, only paging.
pub fn list_params(query: &str, allow_filters: bool) -> Result<InstanceQuery, Failure> {
    let mut pairs = pairs(query)?;
    let at = if allow_filters {
        take_point(&mut pairs)?
    } else {
        None
    };
    let mut params = InstanceQuery {
        filters: Vec::new(),
        limit: limits::PAGE_DEFAULT,
        cursor: None,
        at,
    };
    for (k, v) in pairs {
        let filter = match k.as_str() {
            "limit" => {
                params.limit = page_limit(&v)?;
                continue;
            }
            "cursor" => {
                params.cursor = Some(cursor(&v)?);
                continue;
            }
            _ if !allow_filters => return Err(Failure::unknown_parameter(&k)),
            _ => match parse_filter(&k, v)? {
                Some(f) => f,
                None => return Err(Failure::unknown_parameter(&k)),
            },
        };
        params.filters.push(filter);
    }
    Ok(params)
}
