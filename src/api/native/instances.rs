//! The native instance resource: create, list with filters, show (now or as of a point),
//! patch, destroy/purge and the per-instance timeline. Lifecycle actions are in
//! [`super::actions`].

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, EntityTag};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::openapi::{
    BadRequest, Conflict, Gone, IdempotencyHeader, InstancePath, InstanceWriteHeaders, NotFound,
    PayloadTooLarge, PreconditionFailed, Unprocessable, UnsupportedMediaType,
};
use super::params::{list_params, point_only};
use super::write::Act;
use super::{Caller, NativeError};
use crate::api::failure::{Failure, Input};
use crate::api::{AppState, validate};
use crate::domain::instance::{self, Command, Patch};
use crate::domain::lifecycle::{Operation, State};
use crate::limits;
use crate::projection::InstanceView;
use crate::query;
use crate::service::{InstanceRequest, Outcome, Reply, Sizes};

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
    /// An address on the first network (default: a free one is assigned).
    ip_address: Option<String>,
    /// vCPUs, for a custom flavor (with `memory_mb`).
    vcpus: Option<u32>,
    /// Memory in MB, for a custom flavor (with `vcpus`).
    memory_mb: Option<u64>,
    /// Free-form attributes, not indexed (unlike tags).
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

/// The sizes a body asks for a custom flavor: both or neither.
pub(super) fn sizes(vcpus: Option<u32>, memory_mb: Option<u64>) -> Result<Option<Sizes>, Failure> {
    match (vcpus, memory_mb) {
        (None, None) => Ok(None),
        (Some(vcpus), Some(memory_mb)) => Ok(Some(Sizes { vcpus, memory_mb })),
        _ => Err(Failure::bad_request(
            Input::InvalidField,
            "vcpus, memory_mb: give both or neither",
        )),
    }
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
    /// Replaces the attributes.
    attributes: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteQuery {
    #[serde(default)]
    force: bool,
    #[serde(default)]
    purge: bool,
}

pub(super) fn etag(version: u64) -> EntityTag {
    EntityTag::new_strong(version.to_string())
}

/// A write's answer: the ETag of the instance it produced, and whether an idempotency
/// key replayed an earlier answer.
pub(super) fn respond<T: serde::Serialize>(
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

pub(super) fn view_of(reply: &Reply) -> Result<InstanceView, NativeError> {
    match &reply.outcome {
        Outcome::Instance(inst) => Ok(InstanceView::from(&**inst)),
        _ => Err(Failure::Internal("expected an instance outcome".into()).into()),
    }
}

fn text(field: &str, value: Option<&str>, max: usize) -> Result<Option<String>, Failure> {
    value.map(|v| validate::text(field, v, max)).transpose()
}

/// Creates an instance; the driver then provisions it.
#[utoipa::path(post, path = "/v1/instances", tag = "instances", request_body = CreateBody,
    params(IdempotencyHeader),
    responses(
        (status = 201, description = "Created, state `provisioning`", body = InstanceView,
            headers(("Location" = String, description = "The new instance"), ("ETag" = String, description = "Its version"))),
        (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Unprocessable),
    ))]
pub async fn create(act: Act) -> Result<HttpResponse, NativeError> {
    let b: CreateBody = act.body.json()?;
    validate::tags(&b.tags)?;
    validate::attributes(&b.attributes)?;
    let request = InstanceRequest {
        name: validate::name("name", &b.name)?,
        hostname: b.hostname.as_deref().map(validate::hostname).transpose()?,
        description: text(
            "description",
            b.description.as_deref(),
            limits::DESCRIPTION_CHARS,
        )?,
        user_data: text("user_data", b.user_data.as_deref(), limits::USER_DATA_CHARS)?,
        availability_zone: b
            .availability_zone
            .as_deref()
            .map(|z| validate::name("availability_zone", z))
            .transpose()?,
        security_groups: validate::security_groups(&b.security_groups)?,
        project_id: b.project_id,
        flavor_id: b.flavor_id,
        image_id: b.image_id,
        network_ids: b.network_ids,
        ssh_key_id: b.ssh_key_id,
        tags: b.tags,
        ip_address: b.ip_address,
        sizes: sizes(b.vcpus, b.memory_mb)?,
        attributes: b.attributes,
        hostname_lease: false,
    };
    let reply = act.create_instance(request).await?;
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

/// Lists instances in creation order, filtered and paged.
#[utoipa::path(get, path = "/v1/instances", tag = "instances", params(InstanceListQuery),
    responses((status = 200, description = "A page", body = InstanceList), (status = 400, response = BadRequest)))]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, NativeError> {
    let q = list_params(req.query_string(), true)?;
    let page = query::read(&state.ledger, &caller, move |r| r.instances(&q)).await?;
    Ok(HttpResponse::Ok().json(InstanceList {
        items: page.items.iter().map(InstanceView::from).collect(),
        next_cursor: page.next.map(|id| id.simple().to_string()),
        total: page.total,
    }))
}

/// Shows an instance.
#[utoipa::path(get, path = "/v1/instances/{id}", tag = "instances",
    params(InstancePath,
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
    caller: Caller,
) -> Result<HttpResponse, NativeError> {
    let point = point_only(req.query_string())?;
    let raw = path.into_inner();
    let inst = query::read(&state.ledger, &caller, move |r| match point {
        None => r.instance(&raw),
        Some(p) => r.instance_at(&raw, p),
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(header::ETag(etag(inst.version)))
        .json(InstanceView::from(&inst)))
}

/// Updates name, hostname, description or tags (`null` clears a field).
#[utoipa::path(patch, path = "/v1/instances/{id}", tag = "instances", request_body = PatchBody, params(InstancePath, InstanceWriteHeaders),
    responses((status = 200, description = "Updated", body = InstanceView, headers(("ETag" = String))), (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType), (status = 404, response = NotFound), (status = 409, response = Conflict), (status = 410, response = Gone), (status = 412, response = PreconditionFailed), (status = 422, response = Unprocessable)))]
pub async fn patch(act: Act) -> Result<HttpResponse, NativeError> {
    let b: PatchBody = act.body.json()?;
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
            .map(|d| text("description", d.as_deref(), limits::DESCRIPTION_CHARS))
            .transpose()?,
        tags: b.tags,
        attributes: b.attributes,
        ..Patch::default()
    };
    if let Some(tags) = &patch.tags {
        validate::tags(tags)?;
    }
    if let Some(attributes) = &patch.attributes {
        validate::attributes(attributes)?;
    }
    if patch == Patch::default() {
        return Err(Failure::bad_request(
            Input::InvalidBody,
            "name, hostname, description, tags or attributes is required",
        )
        .into());
    }
    act.view(vec![Command::Update(patch)], StatusCode::OK).await
}

/// Destroys an instance (soft delete: recoverable until purged).
#[utoipa::path(delete, path = "/v1/instances/{id}", tag = "instances",
    params(InstancePath, InstanceWriteHeaders,
        ("force" = Option<bool>, Query, description = "Destroy a running instance"),
        ("purge" = Option<bool>, Query, description = "Purge at once")),
    responses(
        (status = 200, description = "Destroyed", body = InstanceView, headers(("ETag" = String))),
        (status = 204, description = "Destroyed and purged"),
        (status = 400, response = BadRequest), (status = 404, response = NotFound), (status = 409, response = Conflict), (status = 410, response = Gone), (status = 412, response = PreconditionFailed), (status = 422, response = Unprocessable),
    ))]
pub async fn destroy(req: HttpRequest, act: Act) -> Result<HttpResponse, NativeError> {
    act.body.empty()?;
    let q = web::Query::<DeleteQuery>::from_query(req.query_string())
        .map_err(|e| Failure::parameter(e.to_string()))?
        .into_inner();
    let mut commands = vec![Command::Destroy { force: q.force }];
    if q.purge {
        commands.push(Command::Purge);
    }
    if q.purge {
        act.bare(commands, StatusCode::NO_CONTENT).await
    } else {
        act.view(commands, StatusCode::OK).await
    }
}

/// The instance's timeline, purged instances included.
#[utoipa::path(get, path = "/v1/instances/{id}/events", tag = "instances", params(InstancePath),
    responses((status = 200, description = "Its events in order", body = super::events::EventList), (status = 404, response = NotFound)))]
pub async fn events(
    state: web::Data<AppState>,
    path: web::Path<String>,
    caller: Caller,
) -> Result<HttpResponse, NativeError> {
    let raw = path.into_inner();
    let stream = query::read(&state.ledger, &caller, move |r| r.timeline(&raw)).await?;
    let items = stream
        .iter()
        .map(super::events::EventItem::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(super::events::EventList { items }))
}

/// What the caller may do to the instance now.
#[derive(Debug, Serialize, ToSchema)]
pub struct Operations {
    /// Among `start`, `stop`, `force_stop`, `reboot`, `destroy`, `recover`, `purge`,
    /// `lock`, `unlock`: those the caller's role, the instance's lock and its state allow.
    pub operations: Vec<Operation>,
}

/// The operations the caller may perform on the instance now (the console's action
/// buttons): the same rules a request would meet, asked without changing anything.
#[utoipa::path(get, path = "/v1/instances/{id}/operations", tag = "instances", params(InstancePath),
    responses((status = 200, description = "Allowed now", body = Operations), (status = 404, response = NotFound), (status = 410, response = Gone)))]
pub async fn operations(
    state: web::Data<AppState>,
    path: web::Path<String>,
    caller: Caller,
) -> Result<HttpResponse, NativeError> {
    let raw = path.into_inner();
    let operations = query::read(&state.ledger, &caller, move |r| r.operations(&raw)).await?;
    Ok(HttpResponse::Ok().json(Operations { operations }))
}
