//! The instance collection in both spellings: lists (default fields, `fields`,
//! `all_tenants`, the servers' filters), `detail`, show, create from the vendor's body
//! schema, the JSON Patch update, and the asynchronous delete.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use serde_json::{Value, json};
use uuid::Uuid;

use super::repr::{self, DEFAULT_FIELDS, InstanceRepr, ServerRepr};
use super::{Caller, MoganError, Op, Spelling, patch, schemas, status, tenancy};
use crate::api::body_schema::violation;
use crate::api::{AppState, Failure};
use crate::authz::{Action, Principal};
use crate::domain::catalog::Spec as CatalogSpec;
use crate::domain::instance::{Command, Instance, Patch};
use crate::domain::lifecycle::State;
use crate::limits;
use crate::projection::Filter;
use crate::query::listing::{Listing, SortKey, TextField};
use crate::query::{self, QueryError, Reader};
use crate::service::{InstanceRequest, Outcome, Reference, Reply};

/// `scheme://host` of the request, for links.
pub fn origin(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

/// The query's pairs, in order.
pub fn pairs(req: &HttpRequest) -> Result<Vec<(String, String)>, MoganError> {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .map_err(|e| MoganError::bad_request(format!("Invalid query string: {e}")))
}

pub fn unknown_argument(name: &str) -> MoganError {
    MoganError::bad_request(format!("Unknown argument: \"{name}\""))
}

/// oslo's strict `bool_from_string`, which wsme's boolean type used.
pub fn boolean(field: &str, raw: &str) -> Result<bool, MoganError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Ok(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Ok(false),
        _ => Err(MoganError::bad_request(format!(
            "Invalid input for field/attribute {field}. Value: '{raw}'. Unrecognized value '{raw}', acceptable values are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'"
        ))),
    }
}

/// The key's name, for the servers' `key_name`.
fn key_name(r: &Reader<'_>, inst: &Instance) -> Result<Option<String>, QueryError> {
    let Some(id) = inst.spec.ssh_key_id else {
        return Ok(None);
    };
    Ok(r.resource_of(id)?.and_then(|k| match k.spec {
        CatalogSpec::SshKey { name, .. } => Some(name),
        _ => None,
    }))
}

/// The instance a path names, if the caller may do `action` and the original would still
/// show it (deleted instances are gone from Mogan).
pub fn visible(r: &Reader<'_>, raw: &str, action: Action) -> Result<Instance, QueryError> {
    let inst = r.instance_for(raw, action)?;
    if !inst.state.is_live() {
        return Err(QueryError::not_found("instance", raw));
    }
    Ok(inst)
}

/// Reads the instance a path names for `action`, as the spelling words a refusal.
pub async fn operable(
    spelling: Spelling,
    state: &AppState,
    caller: &Principal,
    raw: &str,
    action: Action,
    rule: &str,
) -> Result<Instance, MoganError> {
    let id = raw.to_string();
    query::read(&state.ledger, caller, move |r| visible(r, &id, action))
        .await
        .map_err(spelling.lookup(raw, rule))
}

/// The instance a write answered with.
pub fn written(reply: Reply) -> Result<Instance, MoganError> {
    match reply.outcome {
        Outcome::Instance(inst) => Ok(*inst),
        _ => Err(Failure::Internal("expected an instance outcome".into()).into()),
    }
}

/// A write refused at the version read: another request got there first.
pub fn in_progress(spelling: Spelling, id: Uuid) -> impl FnOnce(MoganError) -> MoganError {
    move |e| match e {
        MoganError::Failure(Failure::VersionMismatch { .. }) => MoganError::client(
            StatusCode::CONFLICT,
            format!(
                "{} {id} changed while the request was processed: an operation is already in progress",
                spelling.noun()
            ),
        ),
        MoganError::Failure(Failure::Locked { .. }) => spelling.locked(id),
        other => other,
    }
}

async fn list(
    spelling: Spelling,
    detail: bool,
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, MoganError> {
    let mut all_tenants = false;
    let mut fields: Option<Vec<String>> = None;
    let mut listing = Listing {
        order: vec![(SortKey::Created, false)],
        ..Listing::default()
    };
    let mut status_filter = None;
    let mut matches_nothing = false;
    for (k, v) in pairs(&req)? {
        match (k.as_str(), spelling) {
            ("all_tenants", _) => all_tenants = boolean("all_tenants", &v)?,
            ("fields", _) if !detail => fields = Some(repr::parse_fields(&v)),
            ("name", Spelling::Servers) => listing.contains.push((TextField::Name, v)),
            ("status", Spelling::Servers) => status_filter = Some(v),
            ("flavor_uuid", Spelling::Servers) => match Uuid::try_parse(&v) {
                Ok(id) => listing.filters.push(Filter::FlavorId(id)),
                Err(_) => matches_nothing = true,
            },
            ("image_uuid", Spelling::Servers) => match Uuid::try_parse(&v) {
                Ok(id) => listing.filters.push(Filter::ImageId(id)),
                Err(_) => matches_nothing = true,
            },
            (other, _) => return Err(unknown_argument(other)),
        }
    }
    listing.states = match &status_filter {
        Some(name) => status::states_named(name),
        None => State::ALL.into_iter().filter(|s| s.is_live()).collect(),
    };
    matches_nothing |= listing.states.is_empty();
    // A non-admin's all_tenants is silently their own project, as the original did.
    if !(caller.staff && all_tenants) {
        let project = tenancy::project(&state.ledger, &caller, &req).await?;
        listing.filters.push(Filter::ProjectId(project));
    }
    let origin = origin(&req);
    let items = query::read(&state.ledger, &caller, move |r| {
        if matches_nothing {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for inst in r.listing(&listing)?.items {
            let key = match spelling {
                Spelling::Servers => key_name(r, &inst)?,
                Spelling::Instances => None,
            };
            let full = repr::object(spelling, &origin, &inst, key);
            out.push(match (detail, &fields) {
                (true, _) => full,
                (false, Some(f)) => repr::select(full, f),
                (false, None) => repr::select(full, DEFAULT_FIELDS),
            });
        }
        Ok(out)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ spelling.collection(): items })))
}

async fn show(
    spelling: Spelling,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    caller: Caller,
) -> Result<HttpResponse, MoganError> {
    let mut fields = None;
    for (k, v) in pairs(&req)? {
        match k.as_str() {
            "fields" => fields = Some(repr::parse_fields(&v)),
            other => return Err(unknown_argument(other)),
        }
    }
    let raw = path.into_inner();
    let origin = origin(&req);
    let id = raw.clone();
    let body = query::read(&state.ledger, &caller, move |r| {
        let inst = visible(r, &id, Action::ReadInstance)?;
        let key = key_name(r, &inst)?;
        Ok(repr::object(spelling, &origin, &inst, key))
    })
    .await
    .map_err(spelling.lookup(&raw, "get"))?;
    Ok(HttpResponse::Ok().json(match fields {
        Some(f) => repr::select(body, &f),
        None => body,
    }))
}

/// A reference the create body named that is not there, as each spelling answered.
fn missing(spelling: Spelling, reference: Reference, id: &str) -> MoganError {
    let bad = |text: String| MoganError::bad_request(text);
    let gone = |text: String| MoganError::client(StatusCode::NOT_FOUND, text);
    match (spelling, reference) {
        (Spelling::Instances, Reference::Flavor) => bad(format!("Flavor {id} could not be found")),
        (Spelling::Instances, Reference::Image) => {
            bad(format!("Requested image {id} could not be found"))
        }
        (Spelling::Servers, Reference::Flavor) => gone(format!("Flavor {id} could not be found.")),
        (Spelling::Servers, Reference::Image) => gone(format!("Image {id} could not be found.")),
        (_, Reference::Network) => bad(format!("Network {id} could not be found.")),
        (Spelling::Instances, Reference::SshKey) => bad(format!("Invalid key_name {id} provided.")),
        (Spelling::Servers, Reference::SshKey) => gone(format!("Keypair {id} not found")),
        (_, Reference::Project) => MoganError::client(
            StatusCode::FORBIDDEN,
            format!("The token is not authorized for project {id}"),
        ),
        (_, Reference::Customer | Reference::User) => bad(format!("{id} could not be found.")),
    }
}

fn text(b: &Value, field: &str) -> Option<String> {
    b.get(field).and_then(Value::as_str).map(str::to_string)
}

/// The instance a create body asks for, before its project and key are known.
fn request_of(spelling: Spelling, b: &Value) -> Result<InstanceRequest, MoganError> {
    let uuid_of = |field: &str, reference: Reference| {
        let raw = text(b, field).unwrap_or_default();
        Uuid::try_parse(&raw).map_err(|_| missing(spelling, reference, &raw))
    };
    let flavor_field = match spelling {
        Spelling::Instances => "instance_type_uuid",
        Spelling::Servers => "flavor_uuid",
    };
    let min = b.get("min_count").and_then(Value::as_u64).unwrap_or(1);
    let max = b.get("max_count").and_then(Value::as_u64).unwrap_or(min);
    if min > max {
        return Err(MoganError::bad_request("min_count must be <= max_count"));
    }
    if max > 1 {
        return Err(MoganError::bad_request(
            "Creating several instances in one request is not supported here: max_count must be 1",
        ));
    }
    let mut network_ids = Vec::new();
    for n in b["networks"].as_array().into_iter().flatten() {
        if let Some(port) = n.get("port_id").and_then(Value::as_str) {
            return Err(MoganError::bad_request(format!(
                "Port {port} could not be found."
            )));
        }
        let raw = text(n, "uuid")
            .or_else(|| text(n, "net_id"))
            .unwrap_or_default();
        let id = Uuid::try_parse(&raw).map_err(|_| missing(spelling, Reference::Network, &raw))?;
        network_ids.push(id);
    }
    let user_data = text(b, "user_data");
    if let Some(data) = &user_data {
        if data.len() > limits::USER_DATA_BYTES.min(65535) {
            return Err(MoganError::bad_request(
                "User data too large. User data must be no larger than 65535 bytes once base64 encoded.",
            ));
        }
        if base64::engine::general_purpose::STANDARD
            .decode(data.as_bytes())
            .is_err()
        {
            return Err(MoganError::bad_request(
                "Invalid user_data: it must be base64 encoded",
            ));
        }
    }
    let attributes = b
        .get(spelling.attributes())
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok(InstanceRequest {
        name: text(b, "name").unwrap_or_default(),
        flavor_id: uuid_of(flavor_field, Reference::Flavor)?,
        image_id: uuid_of("image_uuid", Reference::Image)?,
        description: text(b, "description"),
        network_ids,
        availability_zone: text(b, "availability_zone"),
        user_data,
        attributes,
        ..InstanceRequest::default()
    })
}

async fn create(spelling: Spelling, req: HttpRequest, op: Op) -> Result<HttpResponse, MoganError> {
    let body: Value = op.body.json()?;
    let schema = match spelling {
        Spelling::Instances => schemas::instance_create(),
        Spelling::Servers => schemas::server_create(),
    };
    if let Some(why) = violation(&schema, &body) {
        return Err(MoganError::bad_request(format!(
            "Invalid create body: {why}"
        )));
    }
    let b = match spelling {
        Spelling::Instances => &body,
        Spelling::Servers => &body["server"],
    };
    if let Some(group) = body
        .get("scheduler_hints")
        .and_then(|h| h.get("group"))
        .and_then(Value::as_str)
    {
        return Err(MoganError::client(
            StatusCode::NOT_FOUND,
            format!("Server group {group} could not be found."),
        ));
    }
    let mut request = request_of(spelling, b)?;
    let caller = op.ctx.principal.clone();
    request.project_id = tenancy::project(&op.state.ledger, &caller, &req).await?;
    if let Some(name) = text(b, "key_name") {
        let user = caller.user_id;
        let wanted = name.clone();
        let key = query::read(&op.state.ledger, &caller, move |r| {
            Ok(r.ssh_keys_of(user)?
                .into_iter()
                .find(|k| matches!(&k.spec, CatalogSpec::SshKey { name, .. } if *name == wanted)))
        })
        .await?;
        request.ssh_key_id = Some(
            key.ok_or_else(|| missing(spelling, Reference::SshKey, &name))?
                .id,
        );
    }
    let reply = op.create_instance(request).await.map_err(|e| match e {
        MoganError::Failure(Failure::UnknownReference { reference, id }) => {
            missing(spelling, reference, &id)
        }
        MoganError::Failure(Failure::FlavorNotInProject { flavor, .. }) => {
            missing(spelling, Reference::Flavor, &flavor)
        }
        MoganError::Failure(Failure::Forbidden(_)) => spelling.denied("create"),
        other => other,
    })?;
    let inst = written(reply)?;
    let origin = origin(&req);
    let location = format!(
        "{origin}{}/{}/{}",
        super::MOUNT,
        spelling.collection(),
        inst.id
    );
    let key = text(b, "key_name");
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(repr::object(spelling, &origin, &inst, key)))
}

async fn patch(spelling: Spelling, req: HttpRequest, op: Op) -> Result<HttpResponse, MoganError> {
    let body: Value = op.body.json()?;
    let inst = operable(
        spelling,
        &op.state,
        &op.ctx.principal,
        &op.id,
        Action::OperateInstance,
        "update",
    )
    .await?;
    let update = patch::update(spelling, &inst, &body)?;
    let inst = if update == Patch::default() {
        inst
    } else {
        let id = inst.id;
        written(
            op.operate_at(id, inst.version, vec![Command::Update(update)])
                .await
                .map_err(in_progress(spelling, id))?,
        )?
    };
    let origin = origin(&req);
    let caller = op.ctx.principal.clone();
    let body = query::read(&op.state.ledger, &caller, move |r| {
        let key = key_name(r, &inst)?;
        Ok(repr::object(spelling, &origin, &inst, key))
    })
    .await?;
    Ok(HttpResponse::Ok().json(body))
}

async fn delete(spelling: Spelling, op: Op) -> Result<HttpResponse, MoganError> {
    let inst = operable(
        spelling,
        &op.state,
        &op.ctx.principal,
        &op.id,
        Action::OperateInstance,
        "delete",
    )
    .await?;
    if inst.locked.is_some() && !op.ctx.principal.staff {
        return Err(spelling.locked(inst.id));
    }
    // The original's FSM takes a delete while deleting; there is nothing more to record.
    if inst.state != State::Deleting {
        op.operate_at(
            inst.id,
            inst.version,
            vec![Command::Delete { purge: false }],
        )
        .await
        .map_err(in_progress(spelling, inst.id))?;
    }
    Ok(HttpResponse::NoContent().finish())
}

/// The caller's project's instances (`uuid`, `name`, `description`, `status`,
/// `power_state`, `links`, or `fields`); staff with `all_tenants` see every project.
#[utoipa::path(get, path = "/mogan/v1/instances", tag = "mogan",
    params(("fields" = Option<String>, Query, description = "Comma-separated field names"),
        ("all_tenants" = Option<bool>, Query, description = "Staff: every project"),
        ("X-Project-Id" = Option<String>, Header, description = "The project (else the caller's only one)")),
    responses((status = 200, description = "`{\"instances\": [...]}`", body = Object), (status = 400, body = Object), (status = 401, body = Object)),
    security(("mogan_token" = [])))]
pub async fn list_instances(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, MoganError> {
    list(Spelling::Instances, false, state, req, caller).await
}

/// The caller's project's servers, summarised (see `servers/detail` for everything).
#[utoipa::path(get, path = "/mogan/v1/servers", tag = "mogan",
    params(("fields" = Option<String>, Query), ("all_tenants" = Option<bool>, Query),
        ("name" = Option<String>, Query, description = "Substring of the name"),
        ("status" = Option<String>, Query), ("flavor_uuid" = Option<String>, Query), ("image_uuid" = Option<String>, Query),
        ("X-Project-Id" = Option<String>, Header)),
    responses((status = 200, description = "`{\"servers\": [...]}`", body = Object), (status = 400, body = Object), (status = 401, body = Object)),
    security(("mogan_token" = [])))]
pub async fn list_servers(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, MoganError> {
    list(Spelling::Servers, false, state, req, caller).await
}

/// Every field of the caller's project's instances.
#[utoipa::path(get, path = "/mogan/v1/instances/detail", tag = "mogan",
    params(("all_tenants" = Option<bool>, Query), ("X-Project-Id" = Option<String>, Header)),
    responses((status = 200, description = "`{\"instances\": [...]}`", body = Vec<InstanceRepr>), (status = 400, body = Object), (status = 401, body = Object)),
    security(("mogan_token" = [])))]
pub async fn detail_instances(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, MoganError> {
    list(Spelling::Instances, true, state, req, caller).await
}

/// Every field of the caller's project's servers.
#[utoipa::path(get, path = "/mogan/v1/servers/detail", tag = "mogan",
    params(("all_tenants" = Option<bool>, Query), ("name" = Option<String>, Query), ("status" = Option<String>, Query),
        ("flavor_uuid" = Option<String>, Query), ("image_uuid" = Option<String>, Query), ("X-Project-Id" = Option<String>, Header)),
    responses((status = 200, description = "`{\"servers\": [...]}`", body = Vec<ServerRepr>), (status = 400, body = Object), (status = 401, body = Object)),
    security(("mogan_token" = [])))]
pub async fn detail_servers(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, MoganError> {
    list(Spelling::Servers, true, state, req, caller).await
}

/// One instance, `fields` to choose what it shows.
#[utoipa::path(get, path = "/mogan/v1/instances/{uuid}", tag = "mogan",
    params(("uuid" = String, Path), ("fields" = Option<String>, Query)),
    responses((status = 200, body = InstanceRepr), (status = 401, body = Object), (status = 404, body = Object)),
    security(("mogan_token" = [])))]
pub async fn show_instance(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    caller: Caller,
) -> Result<HttpResponse, MoganError> {
    show(Spelling::Instances, state, req, path, caller).await
}

/// One server, `fields` to choose what it shows.
#[utoipa::path(get, path = "/mogan/v1/servers/{uuid}", tag = "mogan",
    params(("uuid" = String, Path), ("fields" = Option<String>, Query)),
    responses((status = 200, body = ServerRepr), (status = 401, body = Object), (status = 404, body = Object)),
    security(("mogan_token" = [])))]
pub async fn show_server(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    caller: Caller,
) -> Result<HttpResponse, MoganError> {
    show(Spelling::Servers, state, req, path, caller).await
}

/// Creates an instance in the request's project: 201, `Location`, the instance.
#[utoipa::path(post, path = "/mogan/v1/instances", tag = "mogan",
    params(("X-Project-Id" = Option<String>, Header)),
    responses((status = 201, body = InstanceRepr, headers(("Location" = String))), (status = 400, body = Object),
        (status = 401, body = Object), (status = 403, body = Object)),
    security(("mogan_token" = [])))]
pub async fn create_instance(req: HttpRequest, op: Op) -> Result<HttpResponse, MoganError> {
    create(Spelling::Instances, req, op).await
}

/// Creates a server (`{"server": {...}}`): 201, `Location`, the bare server object.
#[utoipa::path(post, path = "/mogan/v1/servers", tag = "mogan",
    params(("X-Project-Id" = Option<String>, Header)),
    responses((status = 201, body = ServerRepr, headers(("Location" = String))), (status = 400, body = Object),
        (status = 401, body = Object), (status = 403, body = Object), (status = 404, description = "Unknown flavor, image, key or server group", body = Object)),
    security(("mogan_token" = [])))]
pub async fn create_server(req: HttpRequest, op: Op) -> Result<HttpResponse, MoganError> {
    create(Spelling::Servers, req, op).await
}

/// Updates `/name`, `/description` and `/extra` with an RFC 6902 JSON Patch.
#[utoipa::path(patch, path = "/mogan/v1/instances/{uuid}", tag = "mogan", params(("uuid" = String, Path)),
    responses((status = 200, body = InstanceRepr), (status = 400, body = Object), (status = 401, body = Object),
        (status = 403, body = Object), (status = 404, body = Object), (status = 409, body = Object)),
    security(("mogan_token" = [])))]
pub async fn patch_instance(req: HttpRequest, op: Op) -> Result<HttpResponse, MoganError> {
    patch(Spelling::Instances, req, op).await
}

/// Updates `/name`, `/description` and `/metadata` with an RFC 6902 JSON Patch.
#[utoipa::path(patch, path = "/mogan/v1/servers/{uuid}", tag = "mogan", params(("uuid" = String, Path)),
    responses((status = 200, body = ServerRepr), (status = 400, body = Object), (status = 401, body = Object),
        (status = 403, body = Object), (status = 404, body = Object), (status = 409, body = Object)),
    security(("mogan_token" = [])))]
pub async fn patch_server(req: HttpRequest, op: Op) -> Result<HttpResponse, MoganError> {
    patch(Spelling::Servers, req, op).await
}

/// Deletes an instance: 204; it shows `deleting`, then is gone (404).
#[utoipa::path(delete, path = "/mogan/v1/instances/{uuid}", tag = "mogan", params(("uuid" = String, Path)),
    responses((status = 204, description = "Deletion started"), (status = 400, description = "Locked", body = Object),
        (status = 401, body = Object), (status = 403, body = Object), (status = 404, body = Object), (status = 409, body = Object)),
    security(("mogan_token" = [])))]
pub async fn delete_instance(op: Op) -> Result<HttpResponse, MoganError> {
    delete(Spelling::Instances, op).await
}

/// Deletes a server: 204; it shows `deleting`, then is gone (404).
#[utoipa::path(delete, path = "/mogan/v1/servers/{uuid}", tag = "mogan", params(("uuid" = String, Path)),
    responses((status = 204, description = "Deletion started"), (status = 400, description = "Locked", body = Object),
        (status = 401, body = Object), (status = 403, body = Object), (status = 404, body = Object), (status = 409, body = Object)),
    security(("mogan_token" = [])))]
pub async fn delete_server(op: Op) -> Result<HttpResponse, MoganError> {
    delete(Spelling::Servers, op).await
}
