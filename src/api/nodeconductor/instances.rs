//! NodeConductor's `instances/`: the hyperlinked representation, the filtered and ordered
//! list, creation from hyperlinks, updates, and the scheduled operations (start, stop,
//! resize, destroy) with the original's preconditions and messages.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use uuid::Uuid;

use super::forms::{
    DESCRIPTION_CHARS, Errors, HOSTNAME_CHARS, body_fields, resolve_create, text_field,
};
use super::links::{self, Paging, parse_link, url};
use super::repr::{
    CreateBody, CreatedRepr, DetailBody, InstanceRepr, ResizeBody, StatusBody, UpdateBody,
    created_repr, repr,
};
use super::states::{self, display};
use super::{Caller, NcError, Op, transition_refused};
use crate::api::AppState;
use crate::api::failure::Failure;
use crate::authz::{self, Action, Principal};
use crate::domain::instance::{Command, Instance, Patch};
use crate::domain::lifecycle::State;
use crate::query::listing::{Listing, SortKey, TextField};
use crate::query::{self, QueryError, Reader};
use crate::service::Outcome;

/// The instance a path names, if the caller may see it and it is not deleted.
fn visible(r: &Reader<'_>, raw: &str) -> Result<Instance, QueryError> {
    let inst = r.instance(raw)?;
    if !inst.state.is_live() {
        return Err(QueryError::not_found("instance", raw));
    }
    Ok(inst)
}

/// `o=`: `hostname` or `state`, `-` for descending; anything else matches nothing (the
/// original's strict ordering filter answered an empty list).
fn ordering(raw: Option<&str>) -> Option<Vec<(SortKey, bool)>> {
    let raw = raw.unwrap_or("hostname");
    let (descending, field) = match raw.strip_prefix('-') {
        Some(f) => (true, f),
        None => (false, raw),
    };
    let key = match field {
        "" | "hostname" => SortKey::Name,
        "state" => SortKey::State,
        _ => return None,
    };
    Some(vec![(key, descending)])
}

/// Instances the caller may see, as a JSON array of one page.
#[utoipa::path(get, path = "/nodeconductor/api/instances/", tag = "nodeconductor",
    params(
        ("hostname" = Option<String>, Query, description = "Case-insensitive containment"),
        ("customer_name" = Option<String>, Query, description = "Case-insensitive containment"),
        ("project" = Option<String>, Query, description = "Project name, case-insensitive containment"),
        ("project_group" = Option<String>, Query, description = "Project group name (there are none here)"),
        ("security_groups" = Option<String>, Query, description = "A security group name, case-insensitive containment"),
        ("state" = Option<String>, Query, description = "A state's one-character code (`+`, `-`, `p`, ...) or display name"),
        ("o" = Option<String>, Query, description = "`hostname` or `state`, `-` for descending"),
        ("page" = Option<String>, Query, description = "A page number or `last`"),
        ("page_size" = Option<u32>, Query, description = "1 to 100, default 10")),
    responses((status = 200, description = "One page", body = Vec<InstanceRepr>,
        headers(("Link" = String, description = "next, prev, last, first"), ("X-Result-Count" = u64))),
        (status = 401, body = DetailBody), (status = 404, description = "No such page", body = DetailBody)),
    security(("nodeconductor_token" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, NcError> {
    let pairs = links::url_pairs(req.query_string());
    let paging = Paging::from_pairs(&pairs)?;
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(name, v)| name == k && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    let mut listing = Listing {
        states: states::listed(),
        ..Listing::default()
    };
    let mut matches_nothing = false;
    if let Some(s) = get("state") {
        listing.states = states::matching(&s);
        matches_nothing |= listing.states.is_empty();
    }
    for (param, field) in [
        ("hostname", TextField::Name),
        ("customer_name", TextField::CustomerName),
        ("project", TextField::ProjectName),
        ("security_groups", TextField::SecurityGroup),
    ] {
        if let Some(v) = get(param) {
            listing.contains.push((field, v));
        }
    }
    // There are no project groups here: naming one matches nothing.
    matches_nothing |= get("project_group").is_some();
    match ordering(get("o").as_deref()) {
        Some(order) => listing.order = order,
        None => matches_nothing = true,
    }
    let origin = links::origin(&req);
    let (items, total) = query::read(&state.ledger, &caller, move |r| {
        if matches_nothing {
            return Ok((Vec::new(), 0));
        }
        let all = r.listing(&listing)?;
        let items = all
            .items
            .iter()
            .map(|i| repr(r, &origin, i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((items, all.total as usize))
    })
    .await?;
    let (page, last) = paging.resolve(total)?;
    let start = (page - 1) * paging.size;
    let shown: Vec<&InstanceRepr> = items.iter().skip(start).take(paging.size).collect();
    Ok(links::paged(&req, &shown, total, page, last))
}

/// One instance.
#[utoipa::path(get, path = "/nodeconductor/api/instances/{uuid}/", tag = "nodeconductor",
    params(("uuid" = String, Path, description = "32 hex digits (dashes accepted)")),
    responses((status = 200, body = InstanceRepr), (status = 401, body = DetailBody), (status = 404, body = DetailBody)),
    security(("nodeconductor_token" = [])))]
pub async fn show(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    caller: Caller,
) -> Result<HttpResponse, NcError> {
    let raw = links::path_uuid(&path)?.to_string();
    let origin = links::origin(&req);
    let body = query::read(&state.ledger, &caller, move |r| {
        let inst = visible(r, &raw)?;
        repr(r, &origin, &inst)
    })
    .await?;
    Ok(HttpResponse::Ok().json(body))
}

/// The key must be the caller's own (the bootstrap token owns the keys nobody owns).
fn owns_key(caller: &Principal, owner: Option<Uuid>) -> bool {
    owner == caller.user_id
}

/// Creates an instance from hyperlinks (project administrators and staff).
#[utoipa::path(post, path = "/nodeconductor/api/instances/", tag = "nodeconductor", request_body = CreateBody,
    responses((status = 201, body = CreatedRepr, headers(("Location" = String))),
        (status = 400, description = "Field errors `{\"field\": [\"message\"]}`, or `{\"__all__\": [...]}`", body = Object),
        (status = 401, body = DetailBody), (status = 403, body = DetailBody),
        (status = 404, description = "The key is not the caller's", body = DetailBody)),
    security(("nodeconductor_token" = [])))]
pub async fn create(req: HttpRequest, op: Op) -> Result<HttpResponse, NcError> {
    let fields = body_fields(&req, &op.body)?;
    let caller = &op.ctx.principal;
    let resolved = query::read(&op.state.ledger, caller, move |r| {
        resolve_create(r, &fields)
    })
    .await??;
    if !owns_key(caller, resolved.key_owner) {
        return Err(NcError::Failure(Failure::NotFound("key".into())));
    }
    if !authz::administers(caller, resolved.request.project_id) {
        return Err(NcError::Failure(Failure::Forbidden(
            "only project administrators create instances".into(),
        )));
    }
    let reply = op.create_instance(resolved.request).await?;
    let Outcome::Instance(inst) = reply.outcome else {
        return Err(Failure::Internal("expected an instance outcome".into()).into());
    };
    let origin = links::origin(&req);
    let location = url(&origin, "instances", inst.id);
    let body = query::read(&op.state.ledger, caller, move |r| {
        created_repr(r, &origin, &inst)
    })
    .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(body))
}

/// Updates the hostname and description.
#[utoipa::path(method(put, patch), path = "/nodeconductor/api/instances/{uuid}/", tag = "nodeconductor", request_body = UpdateBody,
    params(("uuid" = String, Path)),
    responses((status = 200, body = CreatedRepr), (status = 400, body = Object), (status = 401, body = DetailBody),
        (status = 403, body = DetailBody), (status = 404, body = DetailBody)),
    security(("nodeconductor_token" = [])))]
pub async fn update(req: HttpRequest, op: Op) -> Result<HttpResponse, NcError> {
    let fields = body_fields(&req, &op.body)?;
    let full = req.method() == actix_web::http::Method::PUT;
    let inst = operable(&op).await?;
    let mut errors = Errors::default();
    let hostname = text_field(&fields, "hostname", full, HOSTNAME_CHARS, &mut errors);
    let description = text_field(
        &fields,
        "description",
        false,
        DESCRIPTION_CHARS,
        &mut errors,
    );
    if matches!(fields.get("hostname"), Some(Value::String(s)) if s.trim().is_empty()) {
        errors.add("hostname", "This field cannot be blank.");
    }
    errors.finish()?;
    let patch = Patch {
        name: hostname.map(|h| h.trim().to_string()),
        description: fields.contains_key("description").then_some(description),
        ..Patch::default()
    };
    let reply = op.operate(inst.id, vec![Command::Update(patch)]).await?;
    let Outcome::Instance(inst) = reply.outcome else {
        return Err(Failure::Internal("expected an instance outcome".into()).into());
    };
    let origin = links::origin(&req);
    let body = query::read(&op.state.ledger, &op.ctx.principal, move |r| {
        created_repr(r, &origin, &inst)
    })
    .await?;
    Ok(HttpResponse::Ok().json(body))
}

/// The instance a path names, if the caller may operate it: not visible is 404, visible
/// but not a project administrator (or staff) is 403.
async fn operable(op: &Op) -> Result<Instance, NcError> {
    let raw = links::path_uuid(&op.id)?.to_string();
    let caller = &op.ctx.principal;
    let inst = query::read(&op.state.ledger, caller, move |r| {
        r.instance_for(&raw, Action::ReadInstance)
    })
    .await?;
    if !authz::administers(caller, inst.spec.project_id) {
        return Err(NcError::Failure(Failure::Forbidden(
            "only project administrators operate instances".into(),
        )));
    }
    Ok(inst)
}

/// One scheduled operation: the caller may operate the instance, the instance is in the
/// state the original allowed it from, the command is submitted.
async fn schedule(
    op: &Op,
    word: &str,
    from: State,
    command: Command,
) -> Result<HttpResponse, NcError> {
    let inst = operable(op).await?;
    if inst.state != from {
        return Err(transition_refused(word, display(inst.state)));
    }
    op.operate(inst.id, vec![command]).await?;
    Ok(HttpResponse::Ok().json(json!({ "status": format!("{word} was scheduled") })))
}

/// Schedules a start (from Offline).
#[utoipa::path(post, path = "/nodeconductor/api/instances/{uuid}/start/", tag = "nodeconductor",
    params(("uuid" = String, Path)),
    responses((status = 200, body = StatusBody), (status = 401, body = DetailBody), (status = 403, body = DetailBody),
        (status = 404, body = DetailBody), (status = 409, body = StatusBody)),
    security(("nodeconductor_token" = [])))]
pub async fn start(op: Op) -> Result<HttpResponse, NcError> {
    schedule(&op, "start", State::Stopped, Command::Start).await
}
/// Schedules a stop (from Online).
#[utoipa::path(post, path = "/nodeconductor/api/instances/{uuid}/stop/", tag = "nodeconductor",
    params(("uuid" = String, Path)),
    responses((status = 200, body = StatusBody), (status = 401, body = DetailBody), (status = 403, body = DetailBody),
        (status = 404, body = DetailBody), (status = 409, body = StatusBody)),
    security(("nodeconductor_token" = [])))]
pub async fn stop(op: Op) -> Result<HttpResponse, NcError> {
    schedule(&op, "stop", State::Running, Command::Stop { force: false }).await
}
/// Schedules the deletion (from Offline).
#[utoipa::path(delete, path = "/nodeconductor/api/instances/{uuid}/", tag = "nodeconductor",
    params(("uuid" = String, Path)),
    responses((status = 200, body = StatusBody), (status = 401, body = DetailBody), (status = 403, body = DetailBody),
        (status = 404, body = DetailBody), (status = 409, body = StatusBody)),
    security(("nodeconductor_token" = [])))]
pub async fn destroy(op: Op) -> Result<HttpResponse, NcError> {
    schedule(
        &op,
        "destroy",
        State::Stopped,
        Command::Delete { purge: false },
    )
    .await
}
/// Schedules a resize (from Offline).
#[utoipa::path(post, path = "/nodeconductor/api/instances/{uuid}/resize/", tag = "nodeconductor", request_body = ResizeBody,
    params(("uuid" = String, Path)),
    responses((status = 200, body = StatusBody), (status = 400, description = "No flavor (empty body), or one not in the project", body = StatusBody),
        (status = 401, body = DetailBody), (status = 403, body = DetailBody), (status = 404, body = DetailBody), (status = 409, body = StatusBody)),
    security(("nodeconductor_token" = [])))]
pub async fn resize(req: HttpRequest, op: Op) -> Result<HttpResponse, NcError> {
    let inst = operable(&op).await?;
    let fields = body_fields(&req, &op.body)?;
    let Some(raw) = fields.get("flavor") else {
        return Err(NcError::Status(StatusCode::BAD_REQUEST, None));
    };
    let other_cloud = || {
        NcError::Status(
            StatusCode::BAD_REQUEST,
            Some(json!({"status": "New flavor is not within the same cloud"})),
        )
    };
    let flavor = raw
        .as_str()
        .and_then(|s| {
            Uuid::try_parse(s)
                .ok()
                .or_else(|| parse_link(s, "flavors").ok())
        })
        .ok_or_else(other_cloud)?;
    let sizing = match op
        .state
        .ledger
        .flavor_sizing(flavor, Some(inst.spec.project_id), None)
        .await
    {
        Ok(sizing) => sizing,
        Err(_) => return Err(other_cloud()),
    };
    if inst.state != State::Stopped {
        return Err(transition_refused("resize", display(inst.state)));
    }
    op.operate(inst.id, vec![Command::RequestResize(sizing)])
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "resize was scheduled" })))
}
