//! The native instance API: create, list with filters, show, patch, lifecycle actions,
//! power, destroy/purge and the per-instance timeline.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, EntityTag};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::openapi::{
    BadRequest, Conflict, Gone, NotFound, PayloadTooLarge, PreconditionFailed, Unprocessable,
    UnsupportedMediaType,
};
use super::problem::{ApiError, ProblemCode};
use super::request::{Body, Ctx};
use super::{AppState, gate, history, read, validate};
use crate::authz::{self, Action, Object};
use crate::domain::catalog::{Kind, Resource, Spec as ResourceSpec};
use crate::domain::instance::{self, Command, Patch, Sizing};
use crate::domain::lifecycle::State;
use crate::domain::short_id;
use crate::projection::{Filter, InstanceView, PowerView, index};
use crate::service::{Outcome, Reply, WriteCommand, WriteRequest};
use crate::store::Snapshot;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    name: String,
    project_id: Uuid,
    flavor_id: Uuid,
    image_id: Uuid,
    hostname: Option<String>,
    description: Option<String>,
    #[serde(default)]
    network_ids: Vec<Uuid>,
    ssh_key_id: Option<Uuid>,
    #[serde(default)]
    security_groups: Vec<String>,
    availability_zone: Option<String>,
    user_data: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    name: Option<String>,
    #[serde(default, deserialize_with = "instance::present_or_null")]
    hostname: Option<Option<String>>,
    #[serde(default, deserialize_with = "instance::present_or_null")]
    description: Option<Option<String>>,
    tags: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StopBody {
    #[serde(default)]
    force: bool,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RebootBody {
    #[serde(default)]
    soft: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResizeBody {
    flavor_id: Uuid,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum PowerTarget {
    On,
    Off,
    Reboot,
    SoftOff,
    SoftReboot,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PowerBody {
    target: PowerTarget,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteQuery {
    #[serde(default)]
    force: bool,
    #[serde(default)]
    purge: bool,
}

/// A catalog reference that must exist and be of the right kind.
fn lookup(snap: &dyn Snapshot, field: &str, id: Uuid, kind: Kind) -> Result<Resource, ApiError> {
    match snap.resource(id)? {
        Some(r) if r.kind == kind => Ok(r),
        _ => Err(ApiError::UnknownReference {
            field: field.into(),
            id: id.to_string(),
            kind: kind.as_str(),
        }),
    }
}

fn sizing(flavor: &Resource) -> Result<Sizing, ApiError> {
    match &flavor.spec {
        ResourceSpec::Flavor {
            vcpus,
            memory_mb,
            disk_gb,
            ..
        } => Ok(Sizing {
            flavor_id: flavor.id,
            vcpus: *vcpus,
            memory_mb: *memory_mb,
            disk_gb: *disk_gb,
        }),
        _ => Err(ApiError::Internal(format!(
            "flavor {} has no sizes",
            flavor.id
        ))),
    }
}

/// A path id: the uuid, or the short id (`i-xxxxxxxx`) looked up in the projection.
pub fn resolve(snap: &dyn Snapshot, raw: &str) -> Result<Uuid, ApiError> {
    if let Ok(id) = Uuid::parse_str(raw) {
        return Ok(id);
    }
    if short_id::is_valid(raw)
        && let Some(id) = snap.instance_by_short_id(raw)?
    {
        return Ok(id);
    }
    Err(ApiError::NotFound(format!("instance {raw}")))
}

async fn resolve_id(state: &AppState, raw: &str) -> Result<Uuid, ApiError> {
    if let Ok(id) = Uuid::parse_str(raw) {
        return Ok(id);
    }
    let raw = raw.to_string();
    read(state, move |snap| resolve(snap, &raw)).await
}

fn etag(version: u64) -> EntityTag {
    EntityTag::new_strong(version.to_string())
}

fn respond<T: serde::Serialize>(
    status: StatusCode,
    reply: &Reply,
    body: Option<T>,
) -> HttpResponse {
    let mut resp = HttpResponse::build(status);
    if let Outcome::Instance(inst) = &reply.outcome {
        resp.insert_header(header::ETag(etag(inst.version)));
    }
    if reply.replayed {
        resp.insert_header(("Idempotent-Replayed", "true"));
    }
    match body {
        Some(b) => resp.json(b),
        None => resp.finish(),
    }
}

fn view_of(reply: &Reply) -> Result<InstanceView, ApiError> {
    match &reply.outcome {
        Outcome::Instance(inst) => Ok(InstanceView::from(&**inst)),
        _ => Err(ApiError::Internal("expected an instance outcome".into())),
    }
}

async fn operate(
    state: &AppState,
    ctx: &Ctx,
    raw_id: &str,
    body: &[u8],
    commands: Vec<Command>,
) -> Result<Reply, ApiError> {
    let id = resolve_id(state, raw_id).await?;
    let request = WriteRequest {
        command: WriteCommand::Instance { id, commands },
        meta: ctx.meta(body),
        expected_version: ctx.if_match,
    };
    Ok(state.ledger.submit(request).await?)
}

/// Creates an instance; the driver then provisions it.
#[utoipa::path(post, path = "/v1/instances", tag = "instances", request_body = CreateBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and request return the original answer and append nothing")),
    responses(
        (status = 201, description = "Created, state `provisioning`", body = InstanceView,
            headers(("Location" = String, description = "The new instance"), ("ETag" = String, description = "Its version"))),
        (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Unprocessable),
    ))]
pub async fn create(
    state: web::Data<AppState>,
    ctx: Ctx,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let b: CreateBody = body.json()?;
    let name = validate::name("name", &b.name)?;
    let hostname = b.hostname.as_deref().map(validate::hostname).transpose()?;
    let description = b
        .description
        .as_deref()
        .map(|d| validate::text("description", d, 4096))
        .transpose()?;
    let user_data = b
        .user_data
        .as_deref()
        .map(|d| validate::text("user_data", d, 64 * 1024))
        .transpose()?;
    let availability_zone = b
        .availability_zone
        .as_deref()
        .map(|z| validate::name("availability_zone", z))
        .transpose()?;
    let security_groups = validate::security_groups(&b.security_groups)?;
    validate::tags(&b.tags)?;
    let refs = (
        b.project_id,
        b.flavor_id,
        b.image_id,
        b.network_ids.clone(),
        b.ssh_key_id,
    );
    let principal = ctx.principal.clone();
    let (customer_id, sizing) = read(&state, move |snap| {
        let (project_id, flavor_id, image_id, network_ids, ssh_key_id) = refs;
        let project = lookup(snap, "project_id", project_id, Kind::Project)?;
        let customer_id = match project.spec {
            ResourceSpec::Project { customer_id, .. } => customer_id,
            _ => return Err(ApiError::Internal("project without customer".into())),
        };
        // A project the caller has no relation with does not exist for it.
        let unknown = ApiError::UnknownReference {
            field: "project_id".into(),
            id: project_id.to_string(),
            kind: Kind::Project.as_str(),
        };
        let object = Object::Project {
            id: project_id,
            customer: customer_id,
        };
        gate::check(&principal, Action::CreateInstance, &object, unknown)?;
        let sizing = sizing(&lookup(snap, "flavor_id", flavor_id, Kind::Flavor)?)?;
        lookup(snap, "image_id", image_id, Kind::Image)?;
        for n in network_ids {
            lookup(snap, "network_ids", n, Kind::Network)?;
        }
        if let Some(k) = ssh_key_id {
            lookup(snap, "ssh_key_id", k, Kind::SshKey)?;
        }
        Ok((customer_id, sizing))
    })
    .await?;
    let spec = instance::Spec {
        short_id: String::new(),
        name,
        hostname,
        description,
        project_id: b.project_id,
        customer_id,
        sizing,
        image_id: b.image_id,
        network_ids: b.network_ids,
        ssh_key_id: b.ssh_key_id,
        security_groups,
        availability_zone,
        user_data,
        tags: b.tags,
    };
    let reply = state
        .ledger
        .submit(WriteRequest {
            command: WriteCommand::CreateInstance(Box::new(spec)),
            meta: ctx.meta(&body.0),
            expected_version: None,
        })
        .await?;
    let view = view_of(&reply)?;
    let location = format!("/v1/instances/{}", view.id);
    let mut resp = respond(StatusCode::CREATED, &reply, Some(view));
    if let Ok(v) = header::HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// A page of instances in creation order.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceList {
    pub items: Vec<InstanceView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
    /// How many instances match the filters, across all pages.
    pub total: u64,
}

/// List filters (all ANDed) and paging, as documented; parsed by [`list_params`].
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct InstanceListQuery {
    /// List the fleet as it was at this time (RFC 3339).
    as_of: Option<String>,
    /// List the fleet as it was after this log position.
    at_position: Option<u64>,
    state: Option<State>,
    project_id: Option<Uuid>,
    customer_id: Option<Uuid>,
    hostname: Option<String>,
    name: Option<String>,
    security_group: Option<String>,
    flavor_id: Option<Uuid>,
    image_id: Option<Uuid>,
    availability_zone: Option<String>,
    /// `key:value`; repeat for several tags.
    tag: Option<Vec<String>>,
    /// 1 to 1000, default 50.
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

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

/// Parsed list parameters: filters (ANDed), page size and cursor.
pub struct ListParams {
    pub filters: Vec<Filter>,
    pub limit: usize,
    pub cursor: Option<Uuid>,
    /// List as the fleet was at this point (`as_of` / `at_position`).
    pub at: Option<history::Point>,
}

fn uuid_param(name: &str, v: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(v).map_err(|_| {
        ApiError::bad_request(
            ProblemCode::InvalidParameter,
            format!("{name} must be a UUID"),
        )
    })
}

/// One list filter from a query parameter; `None` when the name is not a filter.
pub fn parse_filter(k: &str, v: String) -> Result<Option<Filter>, ApiError> {
    Ok(Some(match k {
        "state" => Filter::State(State::parse(&v).ok_or_else(|| {
            ApiError::bad_request(
                ProblemCode::InvalidParameter,
                format!("state {v:?} is not a lifecycle state"),
            )
        })?),
        "project_id" => Filter::ProjectId(uuid_param(k, &v)?),
        "customer_id" => Filter::CustomerId(uuid_param(k, &v)?),
        "flavor_id" => Filter::FlavorId(uuid_param(k, &v)?),
        "image_id" => Filter::ImageId(uuid_param(k, &v)?),
        "hostname" => Filter::Hostname(v.to_ascii_lowercase()),
        "name" => Filter::Name(v),
        "security_group" => Filter::SecurityGroup(v),
        "availability_zone" => Filter::AvailabilityZone(v),
        "tag" => {
            let (tk, tv) = v.split_once(':').ok_or_else(|| {
                ApiError::bad_request(ProblemCode::InvalidParameter, "tag must be key:value")
            })?;
            Filter::Tag(tk.to_string(), tv.to_string())
        }
        _ => return Ok(None),
    }))
}

pub fn list_params(query: &str, allow_filters: bool) -> Result<ListParams, ApiError> {
    let mut pairs = web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|e| ApiError::bad_request(ProblemCode::InvalidParameter, e.to_string()))?
        .into_inner();
    let at = if allow_filters {
        history::take_point(&mut pairs)?
    } else {
        None
    };
    let mut params = ListParams {
        filters: Vec::new(),
        limit: 50,
        cursor: None,
        at,
    };
    for (k, v) in pairs {
        let filter = match k.as_str() {
            "limit" => {
                params.limit = super::request::page_limit(&v)?;
                continue;
            }
            "cursor" => {
                params.cursor = Some(Uuid::try_parse(&v).map_err(|_| {
                    ApiError::bad_request(
                        ProblemCode::InvalidParameter,
                        "cursor is not one this API issued",
                    )
                })?);
                continue;
            }
            _ if !allow_filters => {
                return Err(super::request::unknown_parameter(&k));
            }
            _ => match parse_filter(&k, v)? {
                Some(f) => f,
                None => {
                    return Err(super::request::unknown_parameter(&k));
                }
            },
        };
        params.filters.push(filter);
    }
    Ok(params)
}

/// Lists instances in creation order, filtered and paged.
#[utoipa::path(get, path = "/v1/instances", tag = "instances", params(InstanceListQuery),
    responses((status = 200, description = "A page", body = InstanceList), (status = 400, response = BadRequest)))]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: Ctx,
) -> Result<HttpResponse, ApiError> {
    let params = list_params(req.query_string(), true)?;
    let scopes = authz::instance_scopes(&ctx.principal);
    let body = read(&state, move |snap| {
        let filters: Vec<_> = params.filters.iter().map(Filter::index_key).collect();
        let at = params.at.map(|p| p.resolve(snap)).transpose()?;
        let page = scoped_page(snap, filters, scopes, params.cursor, params.limit, at)?;
        let mut items = Vec::with_capacity(page.ids.len());
        for id in &page.ids {
            let inst = match at {
                None => snap.instance(*id)?,
                Some(p) => snap.instance_at(*id, p)?,
            };
            if let Some(inst) = inst {
                items.push(InstanceView::from(&inst));
            }
        }
        Ok(InstanceList {
            items,
            next_cursor: page.next.map(|id| id.simple().to_string()),
            total: page.total,
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(body))
}

/// One page of the instances matching `filters`, bounded by the caller's scopes (`None`:
/// everything). Scopes are disjoint, so their pages merge by id and their totals add up;
/// each costs in proportion to the page.
fn scoped_page(
    snap: &dyn Snapshot,
    filters: Vec<index::IndexKey>,
    scopes: Option<Vec<index::IndexKey>>,
    cursor: Option<Uuid>,
    limit: usize,
    at: Option<u64>,
) -> Result<crate::projection::Page, ApiError> {
    let with = |extra: Option<&index::IndexKey>| {
        let mut keys = filters.clone();
        keys.extend(extra.cloned());
        if keys.is_empty() {
            keys.push(index::all_instances());
        }
        keys.sort();
        keys.dedup();
        keys
    };
    let page = |keys: &[index::IndexKey]| match at {
        None => snap.page(keys, cursor, limit),
        Some(p) => snap.page_at(keys, p, cursor, limit),
    };
    let Some(scopes) = scopes else {
        return Ok(page(&with(None))?);
    };
    let mut ids = Vec::new();
    let mut total = 0;
    let mut more = false;
    for scope in &scopes {
        let page = page(&with(Some(scope)))?;
        total += page.total;
        more |= page.next.is_some();
        ids.extend(page.ids);
    }
    ids.sort();
    ids.dedup();
    more |= ids.len() > limit;
    ids.truncate(limit);
    let next = if more { ids.last().copied() } else { None };
    Ok(crate::projection::Page { ids, next, total })
}

async fn load(state: &AppState, raw: String) -> Result<instance::Instance, ApiError> {
    let inst = read(state, move |snap| {
        let id = resolve(snap, &raw)?;
        snap.instance(id)?
            .ok_or_else(|| ApiError::NotFound(format!("instance {raw}")))
    })
    .await?;
    if inst.state == State::Purged {
        return Err(ApiError::Gone);
    }
    Ok(inst)
}

/// Shows an instance.
#[utoipa::path(get, path = "/v1/instances/{id}", tag = "instances",
    params(("id" = String, Path, description = "Instance id (uuid) or short id (`i-xxxxxxxx`)"),
        ("as_of" = Option<String>, Query, description = "The instance as it was at this time (RFC 3339)"),
        ("at_position" = Option<u64>, Query, description = "The instance as it was after this log position")),
    responses(
        (status = 200, description = "The instance", body = InstanceView, headers(("ETag" = String))),
        (status = 400, response = BadRequest), (status = 404, response = NotFound), (status = 410, response = Gone),
    ))]
pub async fn show(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let mut pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request(ProblemCode::InvalidParameter, e.to_string()))?
        .into_inner();
    let point = history::take_point(&mut pairs)?;
    if let Some((k, _)) = pairs.first() {
        return Err(super::request::unknown_parameter(k));
    }
    let inst = match point {
        None => load(&state, path.into_inner()).await?,
        Some(point) => {
            let raw = path.into_inner();
            let inst = read(&state, move |snap| {
                let id = resolve(snap, &raw)?;
                let at = point.resolve(snap)?;
                snap.instance_at(id, at)?
                    .ok_or_else(|| ApiError::NotFound(format!("instance {raw} at position {at}")))
            })
            .await?;
            if inst.state == State::Purged {
                return Err(ApiError::Gone);
            }
            inst
        }
    };
    Ok(HttpResponse::Ok()
        .insert_header(header::ETag(etag(inst.version)))
        .json(InstanceView::from(&inst)))
}

/// Updates name, hostname, description or tags (`null` clears a field).
#[utoipa::path(patch, path = "/v1/instances/{id}", tag = "instances", request_body = PatchBody, params(("id" = String, Path, description = "Instance id (uuid) or short id (`i-xxxxxxxx`)"), ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and request return the original answer and append nothing"), ("If-Match" = Option<String>, Header, description = "The ETag (version) last seen; a stale one is refused with 412")),
    responses((status = 200, description = "Updated", body = InstanceView, headers(("ETag" = String))), (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType), (status = 404, response = NotFound), (status = 409, response = Conflict), (status = 410, response = Gone), (status = 412, response = PreconditionFailed), (status = 422, response = Unprocessable)))]
pub async fn patch(
    state: web::Data<AppState>,
    path: web::Path<String>,
    ctx: Ctx,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let b: PatchBody = body.json()?;
    let patch = Patch {
        name: b
            .name
            .as_deref()
            .map(|n| validate::name("name", n))
            .transpose()?,
        hostname: b
            .hostname
            .map(|h| h.as_deref().map(validate::hostname).transpose())
            .transpose()?,
        description: b
            .description
            .map(|d| {
                d.as_deref()
                    .map(|d| validate::text("description", d, 4096))
                    .transpose()
            })
            .transpose()?,
        tags: b.tags,
    };
    if let Some(tags) = &patch.tags {
        validate::tags(tags)?;
    }
    if patch == Patch::default() {
        return Err(ApiError::bad_request(
            ProblemCode::InvalidBody,
            "name, hostname, description or tags is required",
        ));
    }
    let reply = operate(&state, &ctx, &path, &body.0, vec![Command::Update(patch)]).await?;
    Ok(respond(StatusCode::OK, &reply, Some(view_of(&reply)?)))
}

/// Starts a stopped instance.
#[utoipa::path(post, path = "/v1/instances/{id}/start", tag = "instances", request_body(content = Option<NoFields>), params(("id" = String, Path, description = "Instance id (uuid) or short id (`i-xxxxxxxx`)"), ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and request return the original answer and append nothing"), ("If-Match" = Option<String>, Header, description = "The ETag (version) last seen; a stale one is refused with 412")),
    responses((status = 202, description = "Accepted, state `starting`", body = InstanceView, headers(("ETag" = String))), (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType), (status = 404, response = NotFound), (status = 409, response = Conflict), (status = 410, response = Gone), (status = 412, response = PreconditionFailed), (status = 422, response = Unprocessable)))]
pub async fn start(
    state: web::Data<AppState>,
    path: web::Path<String>,
    ctx: Ctx,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let NoFields {} = body.json_or_default()?;
    let reply = operate(&state, &ctx, &path, &body.0, vec![Command::Start]).await?;
    Ok(respond(
        StatusCode::ACCEPTED,
        &reply,
        Some(view_of(&reply)?),
    ))
}

/// Stops an instance; `force` cuts the power at once.
#[utoipa::path(post, path = "/v1/instances/{id}/stop", tag = "instances", request_body(content = Option<StopBody>), params(("id" = String, Path, description = "Instance id (uuid) or short id (`i-xxxxxxxx`)"), ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and request return the original answer and append nothing"), ("If-Match" = Option<String>, Header, description = "The ETag (version) last seen; a stale one is refused with 412")),
    responses((status = 202, description = "Accepted, state `stopping` (or `stopped` when forced)", body = InstanceView, headers(("ETag" = String))), (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType), (status = 404, response = NotFound), (status = 409, response = Conflict), (status = 410, response = Gone), (status = 412, response = PreconditionFailed), (status = 422, response = Unprocessable)))]
pub async fn stop(
    state: web::Data<AppState>,
    path: web::Path<String>,
    ctx: Ctx,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let b: StopBody = body.json_or_default()?;
    let reply = operate(
        &state,
        &ctx,
        &path,
        &body.0,
        vec![Command::Stop { force: b.force }],
    )
    .await?;
    Ok(respond(
        StatusCode::ACCEPTED,
        &reply,
        Some(view_of(&reply)?),
    ))
}

/// Reboots a running or stopped instance.
#[utoipa::path(post, path = "/v1/instances/{id}/reboot", tag = "instances", request_body(content = Option<RebootBody>), params(("id" = String, Path, description = "Instance id (uuid) or short id (`i-xxxxxxxx`)"), ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and request return the original answer and append nothing"), ("If-Match" = Option<String>, Header, description = "The ETag (version) last seen; a stale one is refused with 412")),
    responses((status = 202, description = "Accepted, state `rebooting`", body = InstanceView, headers(("ETag" = String))), (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType), (status = 404, response = NotFound), (status = 409, response = Conflict), (status = 410, response = Gone), (status = 412, response = PreconditionFailed), (status = 422, response = Unprocessable)))]
pub async fn reboot(
    state: web::Data<AppState>,
    path: web::Path<String>,
    ctx: Ctx,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let b: RebootBody = body.json_or_default()?;
    let reply = operate(
        &state,
        &ctx,
        &path,
        &body.0,
        vec![Command::Reboot { soft: b.soft }],
    )
    .await?;
    Ok(respond(
        StatusCode::ACCEPTED,
        &reply,
        Some(view_of(&reply)?),
    ))
}

/// Resizes a stopped instance to another flavor.
#[utoipa::path(post, path = "/v1/instances/{id}/resize", tag = "instances", request_body = ResizeBody, params(("id" = String, Path, description = "Instance id (uuid) or short id (`i-xxxxxxxx`)"), ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and request return the original answer and append nothing"), ("If-Match" = Option<String>, Header, description = "The ETag (version) last seen; a stale one is refused with 412")),
    responses((status = 200, description = "Resized", body = InstanceView, headers(("ETag" = String))), (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType), (status = 404, response = NotFound), (status = 409, response = Conflict), (status = 410, response = Gone), (status = 412, response = PreconditionFailed), (status = 422, response = Unprocessable)))]
pub async fn resize(
    state: web::Data<AppState>,
    path: web::Path<String>,
    ctx: Ctx,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let b: ResizeBody = body.json()?;
    let flavor_id = b.flavor_id;
    let sizing = read(&state, move |snap| {
        sizing(&lookup(snap, "flavor_id", flavor_id, Kind::Flavor)?)
    })
    .await?;
    let reply = operate(&state, &ctx, &path, &body.0, vec![Command::Resize(sizing)]).await?;
    Ok(respond(StatusCode::OK, &reply, Some(view_of(&reply)?)))
}

/// Recovers a destroyed instance (to `stopped`).
#[utoipa::path(post, path = "/v1/instances/{id}/recover", tag = "instances", request_body(content = Option<NoFields>), params(("id" = String, Path, description = "Instance id (uuid) or short id (`i-xxxxxxxx`)"), ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and request return the original answer and append nothing"), ("If-Match" = Option<String>, Header, description = "The ETag (version) last seen; a stale one is refused with 412")),
    responses((status = 200, description = "Recovered", body = InstanceView, headers(("ETag" = String))), (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType), (status = 404, response = NotFound), (status = 409, response = Conflict), (status = 410, response = Gone), (status = 412, response = PreconditionFailed), (status = 422, response = Unprocessable)))]
pub async fn recover(
    state: web::Data<AppState>,
    path: web::Path<String>,
    ctx: Ctx,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let NoFields {} = body.json_or_default()?;
    let reply = operate(&state, &ctx, &path, &body.0, vec![Command::Recover]).await?;
    Ok(respond(StatusCode::OK, &reply, Some(view_of(&reply)?)))
}

/// Purges a destroyed instance: gone from views, kept in history.
#[utoipa::path(post, path = "/v1/instances/{id}/purge", tag = "instances", request_body(content = Option<NoFields>), params(("id" = String, Path, description = "Instance id (uuid) or short id (`i-xxxxxxxx`)"), ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and request return the original answer and append nothing"), ("If-Match" = Option<String>, Header, description = "The ETag (version) last seen; a stale one is refused with 412")),
    responses((status = 204, description = "Purged"), (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType), (status = 404, response = NotFound), (status = 409, response = Conflict), (status = 410, response = Gone), (status = 412, response = PreconditionFailed), (status = 422, response = Unprocessable)))]
pub async fn purge(
    state: web::Data<AppState>,
    path: web::Path<String>,
    ctx: Ctx,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let NoFields {} = body.json_or_default()?;
    let reply = operate(&state, &ctx, &path, &body.0, vec![Command::Purge]).await?;
    Ok(respond(StatusCode::NO_CONTENT, &reply, None::<()>))
}

/// Destroys an instance (soft delete: recoverable until purged).
#[utoipa::path(delete, path = "/v1/instances/{id}", tag = "instances",
    params(("id" = String, Path, description = "Instance id (uuid) or short id (`i-xxxxxxxx`)"), ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and request return the original answer and append nothing"), ("If-Match" = Option<String>, Header, description = "The ETag (version) last seen; a stale one is refused with 412"),
        ("force" = Option<bool>, Query, description = "Destroy a running instance"),
        ("purge" = Option<bool>, Query, description = "Purge at once")),
    responses(
        (status = 200, description = "Destroyed", body = InstanceView, headers(("ETag" = String))),
        (status = 204, description = "Destroyed and purged"),
        (status = 400, response = BadRequest), (status = 404, response = NotFound), (status = 409, response = Conflict), (status = 410, response = Gone), (status = 412, response = PreconditionFailed), (status = 422, response = Unprocessable),
    ))]
pub async fn destroy(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    ctx: Ctx,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    body.empty()?;
    let q = web::Query::<DeleteQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request(ProblemCode::InvalidParameter, e.to_string()))?
        .into_inner();
    let mut commands = vec![Command::Destroy { force: q.force }];
    if q.purge {
        commands.push(Command::Purge);
    }
    let reply = operate(&state, &ctx, &path, &body.0, commands).await?;
    if q.purge {
        Ok(respond(StatusCode::NO_CONTENT, &reply, None::<()>))
    } else {
        Ok(respond(StatusCode::OK, &reply, Some(view_of(&reply)?)))
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailBody {
    /// Why the transition failed, as the agent saw it.
    reason: String,
}

/// An agent reports that the pending transition finished.
#[utoipa::path(post, path = "/v1/instances/{id}/complete", tag = "instances", request_body(content = Option<NoFields>),
    params(("id" = String, Path, description = "Instance id or short id"),
        ("If-Match" = Option<String>, Header, description = "The version the agent was told about")),
    responses((status = 200, description = "Completed", body = InstanceView, headers(("ETag" = String))),
        (status = 400, response = BadRequest), (status = 404, response = NotFound), (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed)))]
pub async fn complete(
    state: web::Data<AppState>,
    path: web::Path<String>,
    ctx: Ctx,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let NoFields {} = body.json_or_default()?;
    let reply = operate(&state, &ctx, &path, &body.0, vec![Command::Complete]).await?;
    Ok(respond(StatusCode::OK, &reply, Some(view_of(&reply)?)))
}

/// An agent reports that the pending transition failed: the instance goes to `error`.
#[utoipa::path(post, path = "/v1/instances/{id}/fail", tag = "instances", request_body = FailBody,
    params(("id" = String, Path, description = "Instance id or short id"),
        ("If-Match" = Option<String>, Header, description = "The version the agent was told about")),
    responses((status = 200, description = "Failed", body = InstanceView, headers(("ETag" = String))),
        (status = 400, response = BadRequest), (status = 404, response = NotFound), (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed)))]
pub async fn fail(
    state: web::Data<AppState>,
    path: web::Path<String>,
    ctx: Ctx,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let b: FailBody = body.json()?;
    let reason = validate::name("reason", &b.reason)?;
    let reply = operate(&state, &ctx, &path, &body.0, vec![Command::Fail { reason }]).await?;
    Ok(respond(StatusCode::OK, &reply, Some(view_of(&reply)?)))
}

/// The instance's power state and pending target.
#[utoipa::path(get, path = "/v1/instances/{id}/power", tag = "instances", params(("id" = String, Path, description = "Instance id (uuid) or short id (`i-xxxxxxxx`)")),
    responses((status = 200, description = "Power", body = PowerView, headers(("ETag" = String))), (status = 404, response = NotFound), (status = 410, response = Gone)))]
pub async fn power(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let inst = load(&state, path.into_inner()).await?;
    Ok(HttpResponse::Ok()
        .insert_header(header::ETag(etag(inst.version)))
        .json(PowerView::from(&inst)))
}

/// Sets the power target: `on` starts, `off` cuts the power, `soft_off` stops gracefully,
/// `reboot`/`soft_reboot` reboot.
#[utoipa::path(put, path = "/v1/instances/{id}/power", tag = "instances", request_body = PowerBody, params(("id" = String, Path, description = "Instance id (uuid) or short id (`i-xxxxxxxx`)"), ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and request return the original answer and append nothing"), ("If-Match" = Option<String>, Header, description = "The ETag (version) last seen; a stale one is refused with 412")),
    responses((status = 202, description = "Accepted", body = PowerView, headers(("ETag" = String))), (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType), (status = 404, response = NotFound), (status = 409, response = Conflict), (status = 410, response = Gone), (status = 412, response = PreconditionFailed), (status = 422, response = Unprocessable)))]
pub async fn set_power(
    state: web::Data<AppState>,
    path: web::Path<String>,
    ctx: Ctx,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let b: PowerBody = body.json()?;
    let command = match b.target {
        PowerTarget::On => Command::Start,
        PowerTarget::Off => Command::Stop { force: true },
        PowerTarget::SoftOff => Command::Stop { force: false },
        PowerTarget::Reboot => Command::Reboot { soft: false },
        PowerTarget::SoftReboot => Command::Reboot { soft: true },
    };
    let reply = operate(&state, &ctx, &path, &body.0, vec![command]).await?;
    let power = match &reply.outcome {
        Outcome::Instance(inst) => PowerView::from(&**inst),
        _ => return Err(ApiError::Internal("expected an instance outcome".into())),
    };
    Ok(respond(StatusCode::ACCEPTED, &reply, Some(power)))
}

/// The instance's timeline, purged instances included.
#[utoipa::path(get, path = "/v1/instances/{id}/events", tag = "instances", params(("id" = String, Path, description = "Instance id (uuid) or short id (`i-xxxxxxxx`)")),
    responses((status = 200, description = "Its events in order", body = super::events::EventList), (status = 404, response = NotFound)))]
pub async fn events(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let raw = path.into_inner();
    let body = read(&state, move |snap| {
        let id = resolve(snap, &raw)?;
        let stream = snap.stream(id)?;
        if stream.is_empty() || stream[0].stream_kind != crate::store::StreamKind::Instance {
            return Err(ApiError::NotFound(format!("instance {raw}")));
        }
        let items = stream
            .iter()
            .map(super::events::EventItem::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(super::events::EventList { items })
    })
    .await?;
    Ok(HttpResponse::Ok().json(body))
}
