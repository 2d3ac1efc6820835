//! `/api/instances`: the account's list (newest first, terminated ones for a grace
//! period), show, create with the original's checks in its order, and destroy, reboot,
//! stop and start with its state rules.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde_json::{Value, json};
use uuid::Uuid;

use super::ids;
use super::params::Params;
use super::repr::{self, Document};
use super::{AccountHeader, Caller, JsonSuffix, Op, WakameError, api, bare, pretty};
use crate::api::{AppState, Failure};
use crate::authz::{Action, Principal};
use crate::domain::catalog::{Kind, Spec as CatalogSpec};
use crate::domain::instance::{Command, Instance};
use crate::domain::lifecycle::State;
use crate::projection::Filter;
use crate::query::access::{Access, Target};
use crate::query::listing::{Listing, SortKey};
use crate::query::{self, QueryError, Reader};
use crate::service::{InstanceRequest, Outcome};

/// The account the header names: a customer the caller may see.
async fn account(
    state: &AppState,
    caller: &Principal,
    req: &HttpRequest,
) -> Result<Uuid, WakameError> {
    let raw = req
        .extensions()
        .get::<AccountHeader>()
        .map(|a| a.0.clone())
        .unwrap_or_default();
    let invalid = || {
        api(
            "InvalidRequestCredentials",
            format!("Invalid uuid or unsupported uuid: {raw} in Dcmgr::Models::Account"),
        )
    };
    let id = ids::parse(ids::ACCOUNT, &raw).ok_or_else(invalid)?;
    let access = query::read(&state.ledger, caller, move |r| {
        r.access(Action::ReadCustomer, Target::Customer(&id.to_string()))
    })
    .await?;
    match access {
        Access::Allowed => Ok(id),
        _ => Err(invalid()),
    }
}

/// The ids of the instance's security groups (they are held by name).
fn group_ids(r: &Reader<'_>, inst: &Instance) -> Result<Vec<String>, QueryError> {
    let mut out = Vec::new();
    for name in &inst.spec.security_groups {
        if let Some(g) = r.resource_named(Kind::SecurityGroup, name)? {
            out.push(ids::show(ids::SECURITY_GROUP, g.id));
        }
    }
    Ok(out)
}

fn document(r: &Reader<'_>, inst: &Instance) -> Result<Document, QueryError> {
    Ok(repr::document(inst, group_ids(r, inst)?))
}

/// The instance an `i-` id names, if the caller may do `action`; purged ones are gone.
async fn instance(
    state: &AppState,
    caller: &Principal,
    raw: &str,
    action: Action,
) -> Result<Instance, WakameError> {
    let id = raw.to_string();
    let unknown = || api("UnknownUUIDResource", raw.to_string());
    if !raw.starts_with("i-") {
        return Err(unknown());
    }
    query::read(&state.ledger, caller, move |r| r.instance_for(&id, action))
        .await
        .map_err(|e| match e {
            QueryError::NotFound { .. } | QueryError::Gone => unknown(),
            QueryError::Forbidden(_) => bare("OperationNotPermitted"),
            other => WakameError::Failure(other.into()),
        })
}

/// dcmgr's `to_i`: leading digits, else 0.
fn to_i(raw: Option<&str>) -> i64 {
    let raw = raw.unwrap_or("").trim();
    let end = raw
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || (*i == 0 && *c == '-')))
        .map_or(raw.len(), |(i, _)| i);
    raw[..end].parse().unwrap_or(0)
}

/// The account's instances, newest first: live ones and those terminated within the
/// grace period. `[{"owner_total", "start", "limit", "results"}]` (and `result`, the
/// wiki's name).
#[utoipa::path(get, path = "/wakame/api/instances", tag = "wakame",
    params(("start" = Option<i64>, Query, description = "Offset (only with limit)"),
        ("limit" = Option<i64>, Query, description = "Most results; below 1 means all"),
        ("X-VDC-Account-UUID" = String, Header, description = "`a-` and the customer id")),
    responses((status = 200, description = "One object in an array", body = Object),
        (status = 400, description = "No account (code 103)", body = Object)),
    security(("wakame_token" = [])))]
pub async fn index(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, WakameError> {
    let customer = account(&state, &caller, &req).await?;
    let q: BTreeMap<String, String> =
        web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map(|q| q.into_inner().into_iter().collect())
            .unwrap_or_default();
    let start = to_i(q.get("start").map(String::as_str)).max(0) as usize;
    let limit = Some(to_i(q.get("limit").map(String::as_str))).filter(|l| *l >= 1);
    let cutoff = Utc::now()
        - chrono::Duration::from_std(state.dialects.wakame_terminated)
            .unwrap_or(chrono::Duration::zero());
    let listing = Listing {
        filters: vec![Filter::CustomerId(customer)],
        states: State::ALL
            .into_iter()
            .filter(|s| *s != State::Purged)
            .collect(),
        order: vec![(SortKey::Created, true)],
        ..Listing::default()
    };
    let (total, results) = query::read(&state.ledger, &caller, move |r| {
        let shown: Vec<Instance> = r
            .listing(&listing)?
            .items
            .into_iter()
            .filter(|i| i.state != State::Destroyed || i.updated_at >= cutoff)
            .collect();
        let total = shown.len();
        // `start` counts only when a limit is given, as the original's dataset did.
        let page: Vec<&Instance> = match limit {
            Some(l) => shown.iter().skip(start).take(l as usize).collect(),
            None => shown.iter().collect(),
        };
        let docs = page
            .into_iter()
            .map(|i| document(r, i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((total, docs))
    })
    .await?;
    Ok(pretty(
        StatusCode::OK,
        &json!([{
            "owner_total": total,
            "start": start,
            "limit": limit,
            "results": results,
            "result": results,
        }]),
    ))
}

/// One instance's document (terminated ones too).
#[utoipa::path(get, path = "/wakame/api/instances/{id}", tag = "wakame",
    params(("id" = String, Path, description = "`i-` id"), ("X-VDC-Account-UUID" = String, Header)),
    responses((status = 200, body = Document), (status = 404, description = "Code 100", body = Object)),
    security(("wakame_token" = [])))]
pub async fn show(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    caller: Caller,
) -> Result<HttpResponse, WakameError> {
    account(&state, &caller, &req).await?;
    let inst = instance(&state, &caller, &path, Action::ReadInstance).await?;
    let doc = query::read(&state.ledger, &caller, move |r| document(r, &inst)).await?;
    Ok(pretty(StatusCode::OK, &doc))
}

/// The project an instance of the account is created in: `X-Project-Id` if it is one of
/// the account's, else the account's only project.
async fn project(
    state: &AppState,
    caller: &Principal,
    req: &HttpRequest,
    customer: Uuid,
) -> Result<Uuid, WakameError> {
    let named = req
        .headers()
        .get("x-project-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string());
    let projects: Vec<Uuid> = query::read(&state.ledger, caller, move |r| {
        Ok(r.projects_of(customer)?.into_iter().map(|p| p.id).collect())
    })
    .await?;
    match named {
        Some(raw) => Uuid::try_parse(&raw)
            .ok()
            .filter(|id| projects.contains(id))
            .ok_or_else(|| {
                api(
                    "UndefinedRequiredParameter",
                    format!("X-Project-Id {raw} is not a project of the account"),
                )
            }),
        None => match projects.as_slice() {
            [only] => Ok(*only),
            other => Err(api(
                "UndefinedRequiredParameter",
                format!(
                    "X-Project-Id is required: the account has {} projects",
                    other.len()
                ),
            )),
        },
    }
}

/// `[0-9a-z][0-9a-z-]{0,31}` after downcasing.
fn hostname(raw: &str) -> Result<String, WakameError> {
    let h = raw.to_lowercase();
    let ok = h.len() <= 32
        && h.bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_digit() || b.is_ascii_lowercase() || (i > 0 && b == b'-'))
        && !h.is_empty();
    if ok {
        Ok(h)
    } else {
        Err(api(
            "InvalidHostname",
            format!("{raw:?} must match [0-9a-z][0-9a-z-]{{0,31}}"),
        ))
    }
}

/// Runs a new instance in the account: the document, `scheduling` and `offline`.
#[utoipa::path(post, path = "/wakame/api/instances", tag = "wakame",
    params(("image_id" = String, Query, description = "`wmi-` id (or form field, or JSON)"),
        ("instance_spec_id" = String, Query, description = "`is-` id: a flavor"),
        ("hostname" = Option<String>, Query, description = "Downcased, unique in the account; default the id"),
        ("host_node_id" = Option<String>, Query), ("user_data" = Option<String>, Query),
        ("security_groups" = Option<Vec<String>>, Query, description = "`sg-` ids; unknown ones are skipped"),
        ("ssh_key_id" = Option<String>, Query), ("network_id" = Option<String>, Query),
        ("ha_enabled" = Option<String>, Query, description = "`true` enables it"),
        ("X-VDC-Account-UUID" = String, Header), ("X-Project-Id" = Option<String>, Header)),
    responses((status = 200, body = Document),
        (status = 400, description = "Codes 103, 118, 126, 130, 137, 138, 142", body = Object),
        (status = 404, description = "Codes 114 (host node), 121 (key pair), 129 (network)", body = Object)),
    security(("wakame_token" = [])))]
pub async fn create(req: HttpRequest, op: Op) -> Result<HttpResponse, WakameError> {
    let caller = op.ctx.principal.clone();
    let customer = account(&op.state, &caller, &req).await?;
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let suffix = req.extensions().get::<JsonSuffix>().is_some();
    let p = Params::parse(
        req.query_string(),
        content_type.as_deref(),
        suffix,
        &op.body.bytes,
    )
    .map_err(|why| api("UndefinedRequiredParameter", why))?;

    let image = p.text("image_id");
    let spec = p.text("instance_spec_id");
    let key = p.text("ssh_key_id");
    let network = p.text("network_id");
    let groups = p.list("security_groups");
    let resolved = query::read(&op.state.ledger, &caller, move |r| {
        let of =
            |prefix: &str, kind: Kind, raw: &Option<String>| -> Result<Option<Uuid>, QueryError> {
                let Some(id) = raw.as_deref().and_then(|raw| ids::parse(prefix, raw)) else {
                    return Ok(None);
                };
                Ok(r.resource(kind, &id.to_string()).ok().map(|res| res.id))
            };
        let mut names = Vec::new();
        for g in &groups {
            if let Some(id) = ids::parse(ids::SECURITY_GROUP, g)
                && let Ok(res) = r.resource(Kind::SecurityGroup, &id.to_string())
                && let CatalogSpec::SecurityGroup { name, .. } = res.spec
                && !names.contains(&name)
            {
                names.push(name);
            }
        }
        Ok((
            of(ids::IMAGE, Kind::Image, &image)?,
            of(ids::SPEC, Kind::Flavor, &spec)?,
            of(ids::SSH_KEY, Kind::SshKey, &key)?,
            of(ids::NETWORK, Kind::Network, &network)?,
            names,
        ))
    })
    .await?;
    let (image_id, flavor_id, key_id, network_id, security_groups) = resolved;
    let image_id = image_id.ok_or_else(|| bare("InvalidImageID"))?;
    let flavor_id = flavor_id.ok_or_else(|| bare("InvalidInstanceSpec"))?;
    if let Some(node) = p.text("host_node_id") {
        return Err(api("UnknownHostNode", node));
    }
    let hostname = p.text("hostname").map(|h| hostname(&h)).transpose()?;
    let ssh_key_id = match (p.text("ssh_key_id"), key_id) {
        (Some(_), Some(id)) => Some(id),
        (Some(raw), None) => return Err(api("UnknownSshKeyPair", raw)),
        (None, _) => None,
    };
    let network_ids = match (p.text("network_id"), network_id) {
        (Some(_), Some(id)) => vec![id],
        (Some(raw), None) => return Err(api("UnknownNetworkID", raw)),
        (None, _) => Vec::new(),
    };
    let mut attributes = BTreeMap::new();
    if p.flag("ha_enabled") {
        attributes.insert("ha_enabled".to_string(), "1".to_string());
    }
    let request = InstanceRequest {
        name: String::new(),
        project_id: project(&op.state, &caller, &req, customer).await?,
        flavor_id,
        image_id,
        hostname,
        network_ids,
        ssh_key_id,
        security_groups,
        user_data: p.text("user_data"),
        attributes,
        hostname_lease: true,
        ..InstanceRequest::default()
    };
    let reply = op.create_instances(request, (1, 1)).await?;
    let Outcome::Instances(mut made) = reply.outcome else {
        return Err(Failure::Internal("expected the created instance".into()).into());
    };
    let inst = made
        .pop()
        .ok_or_else(|| Failure::Internal("no instance created".into()))?;
    let doc = query::read(&op.state.ledger, &caller, move |r| document(r, &inst)).await?;
    Ok(pretty(StatusCode::OK, &doc))
}

/// One action: the instance, the original's state rule, the write at the version read.
/// With `owned`, only the account's own instances (the original checked it on destroy).
async fn act(
    req: &HttpRequest,
    op: &Op,
    owned: bool,
    rule: fn(&Instance) -> Option<Vec<Command>>,
) -> Result<Instance, WakameError> {
    let customer = account(&op.state, &op.ctx.principal, req).await?;
    let inst = instance(
        &op.state,
        &op.ctx.principal,
        &op.id,
        Action::OperateInstance,
    )
    .await?;
    if owned && inst.spec.customer_id != customer {
        return Err(bare("OperationNotPermitted"));
    }
    let state = || api("InvalidInstanceState", repr::state_name(inst.state));
    match rule(&inst) {
        None => return Err(state()),
        Some(commands) if commands.is_empty() => {}
        Some(commands) => {
            op.operate_at(inst.id, inst.version, commands)
                .await
                .map_err(|e| match e {
                    WakameError::Failure(
                        Failure::InvalidTransition { .. } | Failure::VersionMismatch { .. },
                    ) => state(),
                    other => other,
                })?;
        }
    }
    Ok(inst)
}

/// Shuts an instance down: `["i-..."]`. Only the account's own (else 403, code 105); not
/// while scheduling or terminated (400, code 125). A stopped one is terminated at once.
#[utoipa::path(delete, path = "/wakame/api/instances/{id}", tag = "wakame",
    params(("id" = String, Path), ("X-VDC-Account-UUID" = String, Header)),
    responses((status = 200, description = "`[\"i-...\"]`", body = Vec<String>),
        (status = 400, description = "Code 125", body = Object), (status = 403, description = "Code 105", body = Object),
        (status = 404, description = "Code 100", body = Object)),
    security(("wakame_token" = [])))]
pub async fn destroy(req: HttpRequest, op: Op) -> Result<HttpResponse, WakameError> {
    let inst = act(&req, &op, true, |i| match i.state {
        State::Provisioning | State::Destroyed | State::Purged | State::Error => None,
        State::Stopped => Some(vec![Command::Destroy { force: false }]),
        // Already shutting down: nothing more to ask.
        State::Deleting => Some(Vec::new()),
        _ => Some(vec![Command::Delete { purge: false }]),
    })
    .await?;
    Ok(pretty(StatusCode::OK, &json!([inst.spec.short_id])))
}

/// Reboots a running instance: `{}`.
#[utoipa::path(put, path = "/wakame/api/instances/{id}/reboot", tag = "wakame",
    params(("id" = String, Path), ("X-VDC-Account-UUID" = String, Header)),
    responses((status = 200, description = "`{}`", body = Object), (status = 400, description = "Code 125", body = Object),
        (status = 404, description = "Code 100", body = Object)),
    security(("wakame_token" = [])))]
pub async fn reboot(req: HttpRequest, op: Op) -> Result<HttpResponse, WakameError> {
    act(&req, &op, false, |i| match i.state {
        State::Running => Some(vec![Command::Reboot { soft: false }]),
        State::Rebooting => Some(Vec::new()),
        _ => None,
    })
    .await?;
    Ok(pretty(StatusCode::OK, &Value::Object(Default::default())))
}

/// Stops a running instance: `["i-..."]`.
#[utoipa::path(put, path = "/wakame/api/instances/{id}/stop", tag = "wakame",
    params(("id" = String, Path), ("X-VDC-Account-UUID" = String, Header)),
    responses((status = 200, description = "`[\"i-...\"]`", body = Vec<String>), (status = 400, description = "Code 125", body = Object),
        (status = 404, description = "Code 100", body = Object)),
    security(("wakame_token" = [])))]
pub async fn stop(req: HttpRequest, op: Op) -> Result<HttpResponse, WakameError> {
    let inst = act(&req, &op, false, |i| match i.state {
        State::Running => Some(vec![Command::Stop { force: false }]),
        _ => None,
    })
    .await?;
    Ok(pretty(StatusCode::OK, &json!([inst.spec.short_id])))
}

/// Starts a stopped instance: `["i-..."]`.
#[utoipa::path(put, path = "/wakame/api/instances/{id}/start", tag = "wakame",
    params(("id" = String, Path), ("X-VDC-Account-UUID" = String, Header)),
    responses((status = 200, description = "`[\"i-...\"]`", body = Vec<String>), (status = 400, description = "Code 125", body = Object),
        (status = 404, description = "Code 100", body = Object)),
    security(("wakame_token" = [])))]
pub async fn start(req: HttpRequest, op: Op) -> Result<HttpResponse, WakameError> {
    let inst = act(&req, &op, false, |i| match i.state {
        State::Stopped => Some(vec![Command::Start]),
        _ => None,
    })
    .await?;
    Ok(pretty(StatusCode::OK, &json!([inst.spec.short_id])))
}
