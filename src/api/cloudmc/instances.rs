//! `/services/{service}/{environment}/instances`: list (with the optional paging), retrieve,
//! create, update (`PUT`, or `POST` without `operation`), the `?operation=`s and destroy.
//! Every change answers its task.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use uuid::Uuid;

use super::body::Fields;
use super::repr::{self, InstanceRepr};
use super::{Caller, CloudMc, CmError, Op, environment, operations, tasks};
use crate::api::surface::Surface;
use crate::api::{AppState, Failure};
use crate::authz::{Action, Principal};
use crate::domain::instance::{Command, Instance};
use crate::domain::lifecycle::State;
use crate::projection::Filter;
use crate::query::listing::{Listing, SortKey};
use crate::query::{self, QueryError};
use crate::service::{InstanceRequest, Outcome, Reply};

type EnvPath = web::Path<(String, String)>;
type ItemPath = web::Path<(String, String, String)>;

fn pairs(req: &HttpRequest) -> Vec<(String, String)> {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default()
}

fn token(req: &HttpRequest) -> String {
    CloudMc::token(req.headers(), "").unwrap_or_default()
}

/// The instance `raw` in the environment's project, if the caller may do `action`.
async fn instance(
    state: &AppState,
    caller: &Principal,
    project: Uuid,
    raw: &str,
    action: Action,
) -> Result<Instance, CmError> {
    let id = raw.to_string();
    let not_found = || CmError::not_found("instances", raw);
    if Uuid::try_parse(raw).is_err() {
        return Err(not_found());
    }
    let inst = query::read(&state.ledger, caller, move |r| r.instance_for(&id, action))
        .await
        .map_err(|e| match e {
            QueryError::NotFound { .. } | QueryError::Gone => not_found(),
            other => CmError::Failure(other.into()),
        })?;
    if inst.spec.project_id != project {
        return Err(not_found());
    }
    Ok(inst)
}

/// The task of a write: its last event, or the instance's latest when it changed nothing.
async fn task_of(
    op: &Op,
    before: u64,
    reply: Reply,
    token: String,
) -> Result<HttpResponse, CmError> {
    let inst = match reply.outcome {
        Outcome::Instance(inst) => *inst,
        _ => return Err(Failure::Internal("expected an instance outcome".into()).into()),
    };
    let caller = op.ctx.principal.clone();
    let position = reply.position;
    let found = query::read(&op.state.ledger, &caller, move |r| {
        let position = if inst.version > before {
            position
        } else {
            r.timeline(&inst.id.to_string())?
                .last()
                .map_or(position, |e| e.position)
        };
        tasks::find(r, tasks::task_id(position, inst.id), &token)
    })
    .await?
    .ok_or_else(|| Failure::Internal("the task of a write is missing".into()))?;
    Ok(tasks::answer(&found))
}

/// Submits a change at the version read and answers its task.
async fn change(
    op: &Op,
    inst: &Instance,
    commands: Vec<Command>,
    token: String,
) -> Result<HttpResponse, CmError> {
    let reply = op.operate_at(inst.id, inst.version, commands).await?;
    task_of(op, inst.version, reply, token).await
}

/// The instances of an environment: `data` and `metadata.recordCount`; with
/// `page_number`/`page_size` (and `sort_by`, `sort_order`) one page of them.
#[utoipa::path(get, path = "/cloudmc/api/v2/services/{service}/{environment}/instances", tag = "cloudmc",
    params(("service" = String, Path, description = "The service code, e.g. `compute-on`"),
        ("environment" = String, Path, description = "A project's name or id"),
        ("page_number" = Option<usize>, Query), ("page_size" = Option<usize>, Query),
        ("sort_by" = Option<String>, Query, description = "`name`, `state` or `created`"),
        ("sort_order" = Option<String>, Query, description = "`ASC` or `DESC`")),
    responses((status = 200, description = "`{\"data\": [...], \"metadata\": {\"recordCount\": N}}`", body = Object),
        (status = 401, body = Object), (status = 404, description = "No such environment", body = Object)),
    security(("cloudmc_key" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: EnvPath,
    caller: Caller,
) -> Result<HttpResponse, CmError> {
    let (_, env) = path.into_inner();
    let project = environment::project(&state.ledger, &caller, &env).await?;
    let q: BTreeMap<String, String> = pairs(&req).into_iter().collect();
    let int = |k: &str| -> Result<Option<usize>, CmError> {
        q.get(k)
            .map(|v| {
                v.parse::<usize>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| CmError::invalid(k, format!("{k} must be a positive integer")))
            })
            .transpose()
    };
    let (page_number, page_size) = (int("page_number")?, int("page_size")?);
    let sort_field = q.get("sort_by").cloned();
    let key = match sort_field.as_deref() {
        None | Some("created") => SortKey::Created,
        Some("name") => SortKey::Name,
        Some("state") => SortKey::State,
        Some(other) => {
            return Err(CmError::invalid(
                "sort_by",
                format!("Cannot sort instances by {other:?}: name, state or created"),
            ));
        }
    };
    let descending = match q
        .get("sort_order")
        .map(|s| s.to_ascii_uppercase())
        .as_deref()
    {
        None | Some("ASC") => false,
        Some("DESC") => true,
        Some(_) => return Err(CmError::invalid("sort_order", "sort_order is ASC or DESC")),
    };
    let paged = page_number.is_some() || page_size.is_some();
    let size = page_size.unwrap_or(crate::limits::PAGE_DEFAULT);
    let current = page_number.unwrap_or(1);
    let listing = Listing {
        filters: vec![Filter::ProjectId(project)],
        states: State::ALL
            .into_iter()
            .filter(|s| *s != State::Purged)
            .collect(),
        order: vec![(key, descending)],
        // Saturating: a page number past any ledger is an empty page, not an overflow.
        offset: if paged {
            (current - 1).saturating_mul(size)
        } else {
            0
        },
        limit: paged.then_some(size),
        ..Listing::default()
    };
    let (items, total) = query::read(&state.ledger, &caller, move |r| {
        let listed = r.listing(&listing)?;
        let items = listed
            .items
            .iter()
            .map(|i| repr::instance(r, i, false))
            .collect::<Result<Vec<InstanceRepr>, _>>()?;
        Ok((items, listed.total))
    })
    .await?;
    let mut metadata = json!({ "recordCount": total });
    if paged {
        metadata["pageSize"] = json!(size);
        metadata["pageCurrent"] = json!(current);
        metadata["sortField"] = json!(sort_field.unwrap_or_else(|| "created".into()));
        metadata["sortOrder"] = json!(if descending { "DESC" } else { "ASC" });
    }
    Ok(HttpResponse::Ok().json(json!({ "data": items, "metadata": metadata })))
}

/// One instance, with `userData`, `nics` and `publicIps`.
#[utoipa::path(get, path = "/cloudmc/api/v2/services/{service}/{environment}/instances/{id}", tag = "cloudmc",
    params(("service" = String, Path), ("environment" = String, Path), ("id" = Uuid, Path)),
    responses((status = 200, description = "`{\"data\": {...}}`", body = InstanceRepr), (status = 401, body = Object), (status = 404, body = Object)),
    security(("cloudmc_key" = [])))]
pub async fn retrieve(
    state: web::Data<AppState>,
    path: ItemPath,
    caller: Caller,
) -> Result<HttpResponse, CmError> {
    let (_, env, id) = path.into_inner();
    let project = environment::project(&state.ledger, &caller, &env).await?;
    let inst = instance(&state, &caller, project, &id, Action::ReadInstance).await?;
    let body = query::read(&state.ledger, &caller, move |r| {
        repr::instance(r, &inst, true)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "data": body })))
}

/// Creates an instance; the task's result is the instance.
#[utoipa::path(post, path = "/cloudmc/api/v2/services/{service}/{environment}/instances", tag = "cloudmc",
    params(("service" = String, Path), ("environment" = String, Path)),
    request_body(content = Object, description = "Required `name`, `computeOfferingId`, `networkId`, `templateId`; optional `cpuCount` and `memoryInMB` (custom offerings), `ipAddress`, `sshKeyName` or `publicKey`, `userData`, `rootVolumeSizeInGb`, `portsToForward`, `affinityGroupId`, `diskOfferingId`, `additionalDiskSizeInGb`, `additionalDiskIops`, `volumeIdToAttach`"),
    responses((status = 200, description = "`{\"taskId\", \"taskStatus\": \"PENDING\"}`", body = Object),
        (status = 400, body = Object), (status = 401, body = Object), (status = 403, body = Object), (status = 404, body = Object)),
    security(("cloudmc_key" = [])))]
pub async fn create(req: HttpRequest, path: EnvPath, op: Op) -> Result<HttpResponse, CmError> {
    let (_, env) = path.into_inner();
    let caller = op.ctx.principal.clone();
    let project = environment::project(&op.state.ledger, &caller, &env).await?;
    let f = Fields::parse(&op.body.bytes)?;
    let name = f.required_text("name")?;
    let flavor_id = f.required_uuid("computeOfferingId")?;
    let network = f.required_uuid("networkId")?;
    let image_id = f.required_uuid("templateId")?;
    if name.trim().chars().count() > crate::limits::NAME_CHARS {
        return Err(CmError::invalid("name", "name is too long"));
    }
    let sizes = operations::sizes(&op, flavor_id, &f).await?;
    let ssh_key_id = match (f.text("sshKeyName")?, f.text("publicKey")?) {
        (Some(_), Some(_)) => {
            return Err(CmError::invalid(
                "publicKey",
                "Give sshKeyName or publicKey, not both",
            ));
        }
        (Some(key), None) => Some(operations::key_named(&op, &key).await?),
        _ => None,
    };
    // What is not modelled here (volumes, disk offerings, affinity groups, port
    // forwarding) is kept with the instance as given, so it reads back.
    let mut attributes = BTreeMap::new();
    for field in [
        "affinityGroupId",
        "diskOfferingId",
        "volumeIdToAttach",
        "publicKey",
    ] {
        if let Some(v) = f.text(field)? {
            attributes.insert(field.to_string(), v);
        }
    }
    for field in [
        "rootVolumeSizeInGb",
        "additionalDiskSizeInGb",
        "additionalDiskIops",
    ] {
        if let Some(v) = f.int(field)? {
            attributes.insert(field.to_string(), v.to_string());
        }
    }
    let ports = f.list("portsToForward")?;
    if !ports.is_empty() {
        attributes.insert("portsToForward".into(), ports.join(","));
    }
    let request = InstanceRequest {
        hostname: Some(name.trim().to_string()),
        name: name.trim().to_string(),
        project_id: project,
        flavor_id,
        image_id,
        network_ids: vec![network],
        ip_address: f.text("ipAddress")?,
        ssh_key_id,
        user_data: f.text("userData")?,
        sizes,
        attributes,
        ..InstanceRequest::default()
    };
    let reply = op.create_instance(request).await?;
    task_of(&op, 0, reply, token(&req)).await
}

/// `PUT .../instances/{id}`: `name` and `hostname` (a hostname change reboots).
#[utoipa::path(put, path = "/cloudmc/api/v2/services/{service}/{environment}/instances/{id}", tag = "cloudmc",
    params(("service" = String, Path), ("environment" = String, Path), ("id" = Uuid, Path)),
    request_body(content = Object, description = "`name`, `hostname`"),
    responses((status = 200, description = "The task", body = Object), (status = 400, body = Object), (status = 401, body = Object), (status = 404, body = Object)),
    security(("cloudmc_key" = [])))]
pub async fn update(req: HttpRequest, path: ItemPath, op: Op) -> Result<HttpResponse, CmError> {
    let (_, env, id) = path.into_inner();
    let project = environment::project(&op.state.ledger, &op.ctx.principal, &env).await?;
    let f = Fields::parse(&op.body.bytes)?;
    let inst = instance(
        &op.state,
        &op.ctx.principal,
        project,
        &id,
        Action::OperateInstance,
    )
    .await?;
    let commands = operations::update(&inst, &f)?;
    change(&op, &inst, commands, token(&req)).await
}

/// `POST .../instances/{id}?operation=<op>`: `start`, `stop`, `reboot`, `purge`,
/// `recover`, `changeComputeOffering`, `resetPassword`, `changeNetwork`,
/// `associateSSHKey`, `attachIso`, `detachIso`; without `operation`, the update.
#[utoipa::path(post, path = "/cloudmc/api/v2/services/{service}/{environment}/instances/{id}", tag = "cloudmc",
    params(("service" = String, Path), ("environment" = String, Path), ("id" = Uuid, Path),
        ("operation" = Option<String>, Query, description = "The operation; none: the update")),
    request_body(content = Object, description = "The operation's fields (`forceStop`, `computeOfferingId`, `cpuCount`, `memoryInMB`, `networkId`, `sshKeyName`, `isoId`), or the update's"),
    responses((status = 200, description = "The task", body = Object),
        (status = 400, description = "Invalid state (code 2012), missing or invalid field, unknown operation", body = Object),
        (status = 401, body = Object), (status = 403, body = Object), (status = 404, body = Object)),
    security(("cloudmc_key" = [])))]
pub async fn operate(req: HttpRequest, path: ItemPath, op: Op) -> Result<HttpResponse, CmError> {
    let (_, env, id) = path.into_inner();
    let project = environment::project(&op.state.ledger, &op.ctx.principal, &env).await?;
    let f = Fields::parse(&op.body.bytes)?;
    let operation = pairs(&req)
        .into_iter()
        .rev()
        .find(|(k, _)| k == "operation")
        .map(|(_, v)| v);
    let inst = instance(
        &op.state,
        &op.ctx.principal,
        project,
        &id,
        Action::OperateInstance,
    )
    .await?;
    let token = token(&req);
    let commands = match operation.as_deref() {
        None | Some("") => operations::update(&inst, &f)?,
        Some(name) => operations::operation(&op, name, &inst, &f, &token).await?,
    };
    change(&op, &inst, commands, token).await
}

/// Destroys an instance (from Running, Stopped or Error): Destroyed and recoverable, or
/// purged with `purgeImmediately`. The flags come as a JSON body or query arguments.
#[utoipa::path(delete, path = "/cloudmc/api/v2/services/{service}/{environment}/instances/{id}", tag = "cloudmc",
    params(("service" = String, Path), ("environment" = String, Path), ("id" = Uuid, Path),
        ("purgeImmediately" = Option<bool>, Query), ("deleteSnapshots" = Option<bool>, Query)),
    request_body(content = Object, description = "`purgeImmediately`, `deleteSnapshots`, `publicIpIdsToRelease`, `volumeIdsToDelete`"),
    responses((status = 200, description = "The task", body = Object), (status = 400, description = "Invalid state (code 2012)", body = Object),
        (status = 401, body = Object), (status = 404, body = Object)),
    security(("cloudmc_key" = [])))]
pub async fn destroy(req: HttpRequest, path: ItemPath, op: Op) -> Result<HttpResponse, CmError> {
    let (_, env, id) = path.into_inner();
    let project = environment::project(&op.state.ledger, &op.ctx.principal, &env).await?;
    let f = Fields::parse(&op.body.bytes)?.with_query(&pairs(&req));
    let inst = instance(
        &op.state,
        &op.ctx.principal,
        project,
        &id,
        Action::OperateInstance,
    )
    .await?;
    let commands = operations::destroy(&inst, &f)?;
    change(&op, &inst, commands, token(&req)).await
}
