//! The wrapper's handlers: launch (min..max instances in one request), the four actions
//! with EC2's rules, the attributes (all, filtered, one), and modify (stopped only).

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use uuid::Uuid;

use super::args::{Args, boolean};
use super::ec2::{self, Attributes, Plan};
use super::{Caller, LpError, Op, written};
use crate::api::tenancy::{self, ProjectProblem};
use crate::api::{AppState, Failure, validate};
use crate::authz::Action;
use crate::domain::catalog::{Kind, Resource, Spec as CatalogSpec};
use crate::domain::instance::{Command, Instance, Patch};
use crate::domain::lifecycle::State;
use crate::limits;
use crate::query::{self, QueryError, Reader};
use crate::service::{InstanceRequest, Outcome};

fn args_of(req: &HttpRequest) -> Args {
    req.extensions().get::<Args>().cloned().unwrap_or_default()
}

fn text(status: StatusCode, t: &str) -> LpError {
    LpError::Text(status, t.to_string())
}

fn timeout(t: &str) -> LpError {
    text(StatusCode::REQUEST_TIMEOUT, t)
}

/// The route's id pattern, `i-[0-9a-zA-Z]*`: anything else is Tornado's 404 page.
fn ec2_id(raw: &str) -> Result<&str, LpError> {
    match raw.strip_prefix("i-") {
        Some(rest) if rest.bytes().all(|b| b.is_ascii_alphanumeric()) => Ok(raw),
        _ => Err(LpError::Page(StatusCode::NOT_FOUND)),
    }
}

/// The instance an id names, if the caller may do `action`; purged ones are gone.
async fn instance(
    state: &AppState,
    caller: &crate::authz::Principal,
    raw: &str,
    action: Action,
) -> Result<Instance, LpError> {
    let id = ec2_id(raw)?.to_string();
    query::read(&state.ledger, caller, move |r| r.instance_for(&id, action))
        .await
        .map_err(|e| match e {
            QueryError::NotFound { .. } | QueryError::Gone => {
                text(StatusCode::NOT_FOUND, ec2::NOT_FOUND)
            }
            other => LpError::Failure(other.into()),
        })
}

/// A catalog entry by name (what EC2 clients pass) or by id.
fn named(r: &Reader<'_>, kind: Kind, raw: &str) -> Result<Option<Resource>, QueryError> {
    if let Ok(id) = Uuid::try_parse(raw)
        && let Ok(found) = r.resource(kind, &id.to_string())
    {
        return Ok(Some(found));
    }
    r.resource_named(kind, raw)
}

fn name_of(r: &Reader<'_>, id: Option<Uuid>) -> Result<Option<String>, QueryError> {
    let Some(id) = id else { return Ok(None) };
    Ok(r.resource_of(id)?.map(|res| match res.spec {
        CatalogSpec::Flavor { name, .. }
        | CatalogSpec::SshKey { name, .. }
        | CatalogSpec::Named { name }
        | CatalogSpec::Network { name, .. }
        | CatalogSpec::Project { name, .. }
        | CatalogSpec::SecurityGroup { name, .. }
        | CatalogSpec::Iso { name, .. } => name,
    }))
}

/// An instance's attributes, with the names of its flavor, image and key.
fn attributes_of(r: &Reader<'_>, inst: &Instance) -> Result<Attributes, QueryError> {
    let flavor = name_of(r, Some(inst.spec.sizing.flavor_id))?.unwrap_or_default();
    let image = name_of(r, Some(inst.spec.image_id))?.unwrap_or_default();
    let key = name_of(r, inst.spec.ssh_key_id)?;
    Ok(ec2::attributes(inst, flavor, image, key))
}

/// The version document (authenticated, as the original's root handler was).
#[utoipa::path(get, path = "/launch-provision/v1", tag = "launch-provision",
    responses((status = 200, description = "What the API is", body = Object), (status = 401, description = "Tornado's page", body = String, content_type = "text/html")),
    security(("launch_provision_key" = [], "launch_provision_token" = [])))]
pub async fn root(_caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(json!({"Internal API": {
        "description": "Internal API for managing EC2 infrastructure",
        "path": "/v1/",
        "version": 0.1,
    }}))
}

/// The default key's two spellings (document, then code); a default that does not exist
/// launches without a key, since the client asked for none.
const DEFAULT_KEYS: [&str; 2] = ["scalacity-dev1", "scalacity_dev1"];

/// Launches `min_count` to `max_count` instances of an image and flavor: 200 with their
/// ids. Arguments are query or form fields.
#[utoipa::path(put, path = "/launch-provision/v1/launch", tag = "launch-provision",
    params(
        ("ami" = Option<String>, Query, description = "The image (its name or id); `image_id` also works"),
        ("image_id" = Option<String>, Query),
        ("instance_type" = String, Query, description = "A flavor's name"),
        ("min_count" = Option<u32>, Query, description = "Default 1"),
        ("max_count" = Option<u32>, Query, description = "Default 1"),
        ("key_name" = Option<String>, Query, description = "One of the caller's keys; default `scalacity-dev1` if it exists"),
        ("security_groups" = Option<String>, Query, description = "Repeated or comma-separated; default `SSH`"),
        ("user_data" = Option<String>, Query),
        ("placement" = Option<String>, Query, description = "The zone; default `us-east-1b`"),
        ("placement_group" = Option<String>, Query),
        ("instance_initiated_shutdown_behavior" = Option<String>, Query, description = "`stop` or `terminate` (default)"),
        ("ebs_optimized" = Option<bool>, Query, description = "Default false"),
        ("project_id" = Option<String>, Query, description = "Else `X-Project-Id`, else the caller's only project")),
    responses(
        (status = 200, description = "The ids", body = Vec<String>, content_type = "text/html; charset=UTF-8"),
        (status = 400, description = "`\"Required arguments not provided.\"`", body = String, content_type = "text/html; charset=UTF-8"),
        (status = 401, description = "Tornado's page", body = String, content_type = "text/html"),
        (status = 408, description = "What EC2 would have refused (unknown image, type or key, bad counts or values)", body = String, content_type = "text/html; charset=UTF-8")),
    security(("launch_provision_key" = [], "launch_provision_token" = [])))]
pub async fn launch(req: HttpRequest, op: Op) -> Result<HttpResponse, LpError> {
    let args = args_of(&req);
    let (Some(image), Some(flavor)) = (
        args.get("image_id").or(args.get("ami")).map(str::to_string),
        args.get("instance_type").map(str::to_string),
    ) else {
        return Err(text(StatusCode::BAD_REQUEST, ec2::MISSING_LAUNCH));
    };
    let count = |name: &str| -> Result<usize, LpError> {
        match args.get(name) {
            None => Ok(1),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| timeout(ec2::RUN_FAILED)),
        }
    };
    let (min, max) = (count("min_count")?, count("max_count")?);
    if min > max || min > limits::LAUNCH_MAX {
        return Err(timeout(ec2::RUN_FAILED));
    }
    let max = max.min(limits::LAUNCH_MAX);
    let shutdown = args
        .get("instance_initiated_shutdown_behavior")
        .unwrap_or("terminate")
        .to_string();
    if !["stop", "terminate"].contains(&shutdown.as_str()) {
        return Err(timeout(ec2::RUN_FAILED));
    }
    let ebs = match args.get("ebs_optimized") {
        None => false,
        Some(v) => boolean(v).ok_or_else(|| timeout(ec2::RUN_FAILED))?,
    };
    let mut groups = args.list("security_groups");
    if groups.is_empty() {
        groups.push("SSH".into());
    }
    // Group names follow the ledger's rule for names (no control characters, not blank),
    // whichever surface gives them; EC2 refused a group it could not take.
    let groups = validate::security_groups(&groups).map_err(|_| timeout(ec2::RUN_FAILED))?;
    let caller = op.ctx.principal.clone();
    let named_project = args.get("project_id").map(str::to_string).or_else(|| {
        req.headers()
            .get("x-project-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    });
    let project = match tenancy::project(&op.state.ledger, &caller, named_project.as_deref())
        .await?
    {
        Ok(p) => p,
        // The original had no projects: one it cannot settle on is a launch EC2 refused.
        Err(ProjectProblem::Malformed(_) | ProjectProblem::NotVisible(_)) => {
            return Err(timeout(ec2::RUN_FAILED));
        }
        Err(ProjectProblem::NotOne(_)) => {
            return Err(text(
                StatusCode::BAD_REQUEST,
                "Required arguments not provided: project_id (the caller is not in exactly one project)",
            ));
        }
    };
    let key_name = args.get("key_name").map(str::to_string);
    let user = caller.user_id;
    let resolved = query::read(&op.state.ledger, &caller, move |r| {
        let image = named(r, Kind::Image, &image)?;
        let flavor = named(r, Kind::Flavor, &flavor)?;
        let keys = r.ssh_keys_of(user)?;
        let key_named = |n: &str| {
            keys.iter()
                .find(|k| matches!(&k.spec, CatalogSpec::SshKey { name, .. } if name == n))
                .map(|k| k.id)
        };
        let key = match &key_name {
            Some(n) => Some(key_named(n).ok_or(())),
            None => DEFAULT_KEYS.iter().find_map(|n| key_named(n)).map(Ok),
        };
        Ok((image.map(|i| i.id), flavor.map(|f| f.id), key))
    })
    .await?;
    let (Some(image_id), Some(flavor_id)) = (resolved.0, resolved.1) else {
        return Err(timeout(ec2::RUN_FAILED));
    };
    let ssh_key_id = match resolved.2 {
        None => None,
        Some(Ok(k)) => Some(k),
        Some(Err(())) => return Err(timeout(ec2::RUN_FAILED)),
    };
    let mut attributes = BTreeMap::from([
        ("instance_initiated_shutdown_behavior".to_string(), shutdown),
        ("ebs_optimized".to_string(), ebs.to_string()),
    ]);
    if let Some(group) = args.get("placement_group") {
        attributes.insert("placement_group".into(), group.to_string());
    }
    let request = InstanceRequest {
        // Unnamed: the writer names it by its `i-` id.
        name: String::new(),
        project_id: project,
        flavor_id,
        image_id,
        ssh_key_id,
        security_groups: groups,
        availability_zone: Some(args.get("placement").unwrap_or("us-east-1b").to_string()),
        user_data: args.get("user_data").map(str::to_string),
        attributes,
        ..InstanceRequest::default()
    };
    let reply = op.create_instances(request, (min, max)).await?;
    let Outcome::Instances(made) = reply.outcome else {
        return Err(Failure::Internal("expected the created instances".into()).into());
    };
    let ids: Vec<Value> = made.iter().map(|i| json!(i.spec.short_id)).collect();
    Ok(written(StatusCode::OK, &Value::Array(ids)))
}

/// One of the four actions: EC2's rule for the state, then the write at the version read.
async fn act(req: &HttpRequest, op: Op, action: &'static str) -> Result<HttpResponse, LpError> {
    let force = match args_of(req).get("force") {
        None => false,
        Some(v) => boolean(v).unwrap_or(false),
    };
    let inst = instance(
        &op.state,
        &op.ctx.principal,
        &op.id,
        Action::OperateInstance,
    )
    .await?;
    let refused = || {
        timeout(&ec2::incorrect_state(
            &inst.spec.short_id,
            action,
            &op.ctx.request_id,
        ))
    };
    match ec2::plan(action, &inst, force) {
        Plan::Refuse => return Err(refused()),
        Plan::Nothing => {}
        Plan::Do(commands) => {
            op.operate_at(inst.id, inst.version, commands)
                .await
                .map_err(|e| match e {
                    LpError::Failure(
                        Failure::InvalidTransition { .. }
                        | Failure::VersionMismatch { .. }
                        | Failure::Locked { .. },
                    ) => refused(),
                    other => other,
                })?;
        }
    }
    Ok(written(
        StatusCode::OK,
        &json!(format!("{} {action}", inst.spec.short_id)),
    ))
}

macro_rules! action {
    ($name:ident, $path:literal, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(put, path = $path, tag = "launch-provision",
            params(("id" = String, Path, description = "`i-` and letters or digits"),
                ("force" = Option<bool>, Query, description = "stop and terminate only")),
            responses(
                (status = 200, description = "`\"<id> <action>\"`", body = String, content_type = "text/html; charset=UTF-8"),
                (status = 401, description = "Tornado's page", body = String, content_type = "text/html"),
                (status = 404, description = "`\"Instance not found\"`", body = String, content_type = "text/html; charset=UTF-8"),
                (status = 408, description = "EC2's IncorrectInstanceState", body = String, content_type = "text/html; charset=UTF-8")),
            security(("launch_provision_key" = [], "launch_provision_token" = [])))]
        pub async fn $name(req: HttpRequest, op: Op) -> Result<HttpResponse, LpError> {
            act(&req, op, stringify!($name)).await
        }
    };
}

action!(
    start,
    "/launch-provision/v1/{id}/start",
    "Starts a stopped instance (a running or pending one: 200, nothing changes)."
);
action!(
    stop,
    "/launch-provision/v1/{id}/stop",
    "Stops a running instance; `force` cuts the power at once."
);
action!(
    terminate,
    "/launch-provision/v1/{id}/terminate",
    "Terminates an instance (`shutting-down`, then `terminated`, which stays readable); `force` at once."
);
action!(
    reboot,
    "/launch-provision/v1/{id}/reboot",
    "Reboots a running instance (a terminated one: ignored, as EC2 ignored it)."
);

/// The document's 13 attributes; `filter` keeps the named ones.
#[utoipa::path(get, path = "/launch-provision/v1/{id}/attributes", tag = "launch-provision",
    params(("id" = String, Path), ("filter" = Option<String>, Query, description = "Comma-separated field names")),
    responses((status = 200, body = Attributes), (status = 401, description = "Tornado's page", body = String, content_type = "text/html"),
        (status = 404, description = "`\"Instance not found\"`", body = String, content_type = "text/html; charset=UTF-8")),
    security(("launch_provision_key" = [], "launch_provision_token" = [])))]
pub async fn attributes(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    caller: Caller,
) -> Result<HttpResponse, LpError> {
    let inst = instance(&state, &caller, &path, Action::ReadInstance).await?;
    let all = query::read(&state.ledger, &caller, move |r| attributes_of(r, &inst)).await?;
    let filter = args_of(&req).get("filter").map(str::to_string);
    Ok(HttpResponse::Ok().json(ec2::filtered(&all, filter.as_deref())))
}

/// One attribute, `{"<field>": value}` (`{}` for a field there is not).
#[utoipa::path(get, path = "/launch-provision/v1/{id}/attributes/{field}", tag = "launch-provision",
    params(("id" = String, Path), ("field" = String, Path)),
    responses((status = 200, body = Object), (status = 401, description = "Tornado's page", body = String, content_type = "text/html"),
        (status = 404, description = "`\"Instance not found\"`", body = String, content_type = "text/html; charset=UTF-8")),
    security(("launch_provision_key" = [], "launch_provision_token" = [])))]
pub async fn attribute(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    caller: Caller,
) -> Result<HttpResponse, LpError> {
    let (id, field) = path.into_inner();
    let inst = instance(&state, &caller, &id, Action::ReadInstance).await?;
    let all = query::read(&state.ledger, &caller, move |r| attributes_of(r, &inst)).await?;
    Ok(HttpResponse::Ok().json(ec2::filtered(&all, Some(&field))))
}

/// Modifies one attribute of a stopped instance: `instance_type` (`instanceType`),
/// `user_data` (`userData`), `instance_initiated_shutdown_behavior`
/// (`instanceInitiatedShutdownBehavior`), `ebs_optimized` (`ebsOptimized`).
#[utoipa::path(put, path = "/launch-provision/v1/{id}/modify", tag = "launch-provision",
    params(("id" = String, Path), ("attribute" = String, Query), ("value" = String, Query)),
    responses(
        (status = 200, description = "`\"Instance modification succeeded\"`", body = String, content_type = "text/html; charset=UTF-8"),
        (status = 401, description = "Tornado's page", body = String, content_type = "text/html"),
        (status = 404, description = "`\"Instance not found\"`", body = String, content_type = "text/html; charset=UTF-8"),
        (status = 408, description = "Missing arguments, not stopped, or a value EC2 would refuse", body = String, content_type = "text/html; charset=UTF-8")),
    security(("launch_provision_key" = [], "launch_provision_token" = [])))]
pub async fn modify(req: HttpRequest, op: Op) -> Result<HttpResponse, LpError> {
    let args = args_of(&req);
    let (Some(attribute), Some(value)) = (args.get("attribute"), args.get("value")) else {
        return Err(timeout(ec2::MISSING_MODIFY));
    };
    let inst = instance(
        &op.state,
        &op.ctx.principal,
        &op.id,
        Action::OperateInstance,
    )
    .await?;
    if inst.state != State::Stopped {
        return Err(timeout(ec2::NOT_STOPPED));
    }
    let failed = || timeout(ec2::MODIFY_FAILED);
    let set = |key: &str, v: String| {
        let mut attributes = inst.spec.attributes.clone();
        attributes.insert(key.to_string(), v);
        Command::Update(Patch {
            attributes: Some(attributes),
            ..Patch::default()
        })
    };
    let command = match attribute {
        "instance_type" | "instanceType" => {
            let raw = value.to_string();
            let flavor = query::read(&op.state.ledger, &op.ctx.principal, move |r| {
                named(r, Kind::Flavor, &raw)
            })
            .await?
            .ok_or_else(failed)?;
            let sizing = op
                .state
                .ledger
                .flavor_sizing(flavor.id, Some(inst.spec.project_id), None)
                .await
                .map_err(|_| failed())?;
            Command::Resize(sizing)
        }
        "user_data" | "userData" => Command::Update(Patch {
            user_data: Some(Some(value.to_string())),
            ..Patch::default()
        }),
        "instance_initiated_shutdown_behavior" | "instanceInitiatedShutdownBehavior"
            if ["stop", "terminate"].contains(&value) =>
        {
            set("instance_initiated_shutdown_behavior", value.to_string())
        }
        "ebs_optimized" | "ebsOptimized" => {
            let b = boolean(value).ok_or_else(failed)?;
            set("ebs_optimized", b.to_string())
        }
        _ => return Err(failed()),
    };
    op.operate_at(inst.id, inst.version, vec![command])
        .await
        .map_err(|e| match e {
            LpError::Failure(
                Failure::InvalidTransition { .. } | Failure::VersionMismatch { .. },
            ) => timeout(ec2::NOT_STOPPED),
            LpError::Failure(Failure::Locked { .. }) => failed(),
            other => other,
        })?;
    Ok(written(StatusCode::OK, &json!(ec2::MODIFIED)))
}
