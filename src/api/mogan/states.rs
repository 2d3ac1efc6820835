//! The `states` sub-resource: the summary, the power change (202 with `Location`, legal
//! only from the FSM state the original allowed, refused while locked or while another
//! transition runs), and the lock.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value};

use super::instances::{boolean, in_progress, operable, origin, visible};
use super::repr::{self, StatesRepr};
use super::{Caller, MoganError, Op, Spelling, status};
use crate::api::AppState;
use crate::authz::Action;
use crate::domain::instance::Command;
use crate::query;

async fn show(
    spelling: Spelling,
    state: web::Data<AppState>,
    path: web::Path<String>,
    caller: Caller,
) -> Result<HttpResponse, MoganError> {
    let raw = path.into_inner();
    let id = raw.clone();
    let inst = query::read(&state.ledger, &caller, move |r| {
        visible(r, &id, Action::ReadInstance)
    })
    .await
    .map_err(spelling.lookup(&raw, "get_states"))?;
    Ok(HttpResponse::Ok().json(repr::states(&inst)))
}

/// The `target` of a states body: wsme's missing and unknown arguments first.
fn target(op: &Op) -> Result<Value, MoganError> {
    if op.body.bytes.is_empty() {
        return Err(MoganError::bad_request("Missing argument: \"target\""));
    }
    let body: Value = op.body.json()?;
    let Value::Object(mut fields) = body else {
        return Err(MoganError::bad_request(
            "Invalid input: the body must be a JSON object",
        ));
    };
    if let Some(unknown) = fields.keys().find(|k| *k != "target") {
        return Err(MoganError::bad_request(format!(
            "Unknown argument: \"{unknown}\""
        )));
    }
    take(&mut fields, "target")
}

fn take(fields: &mut Map<String, Value>, name: &str) -> Result<Value, MoganError> {
    fields
        .remove(name)
        .ok_or_else(|| MoganError::bad_request(format!("Missing argument: \"{name}\"")))
}

async fn power(spelling: Spelling, req: HttpRequest, op: Op) -> Result<HttpResponse, MoganError> {
    let caller = &op.ctx.principal;
    let inst = operable(
        spelling,
        &op.state,
        caller,
        &op.id,
        Action::OperateInstance,
        "set_power_state",
    )
    .await?;
    let raw = target(&op)?;
    let wanted = raw.as_str().and_then(status::target).ok_or_else(|| {
        let shown = raw.as_str().map(str::to_string).unwrap_or(raw.to_string());
        MoganError::bad_request(format!(
            "The Parameter value: {shown} for power action of {} {} is invalid.",
            spelling.noun().to_ascii_lowercase(),
            inst.id
        ))
    })?;
    if inst.locked.is_some() && !caller.staff {
        return Err(spelling.locked(inst.id));
    }
    if inst.state.is_transitional() {
        return Err(MoganError::client(
            StatusCode::CONFLICT,
            format!(
                "{} {} is {}: an operation is already in progress",
                spelling.noun(),
                inst.id,
                status::status(inst.state)
            ),
        ));
    }
    if inst.state != wanted.from {
        return Err(MoganError::bad_request(format!(
            "Can not transition from state '{}' on event '{}' (no defined transition)",
            status::status(inst.state),
            wanted.event
        )));
    }
    op.operate_at(inst.id, inst.version, vec![wanted.command])
        .await
        .map_err(in_progress(spelling, inst.id))?;
    let location = format!(
        "{}{}/{}/{}/states",
        origin(&req),
        super::MOUNT,
        spelling.collection(),
        inst.id
    );
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, location))
        .finish())
}

async fn lock(spelling: Spelling, op: Op) -> Result<HttpResponse, MoganError> {
    let inst = operable(
        spelling,
        &op.state,
        &op.ctx.principal,
        &op.id,
        Action::OperateInstance,
        "set_lock_state",
    )
    .await?;
    let lock = match target(&op)? {
        Value::Bool(b) => b,
        Value::String(s) => boolean("target", &s)?,
        other => boolean("target", &other.to_string())?,
    };
    let by = op.lock_holder();
    let command = if lock {
        Command::Lock { by }
    } else {
        Command::Unlock { by }
    };
    op.operate(inst.id, vec![command]).await?;
    Ok(HttpResponse::Accepted().finish())
}

/// The power state, its pending target, the FSM status and the lock.
#[utoipa::path(get, path = "/mogan/v1/instances/{uuid}/states", tag = "mogan", params(("uuid" = String, Path)),
    responses((status = 200, body = StatesRepr), (status = 401, body = Object), (status = 404, body = Object)),
    security(("mogan_token" = [])))]
pub async fn show_instance(
    state: web::Data<AppState>,
    path: web::Path<String>,
    caller: Caller,
) -> Result<HttpResponse, MoganError> {
    show(Spelling::Instances, state, path, caller).await
}

/// The power state, its pending target, the FSM status and the lock.
#[utoipa::path(get, path = "/mogan/v1/servers/{uuid}/states", tag = "mogan", params(("uuid" = String, Path)),
    responses((status = 200, body = StatesRepr), (status = 401, body = Object), (status = 404, body = Object)),
    security(("mogan_token" = [])))]
pub async fn show_server(
    state: web::Data<AppState>,
    path: web::Path<String>,
    caller: Caller,
) -> Result<HttpResponse, MoganError> {
    show(Spelling::Servers, state, path, caller).await
}

/// `{"target": "on"|"off"|"soft_off"|"reboot"|"soft_reboot"}` (also `power on`, `power
/// off`): 202, empty, `Location` of the states; 400 for an unknown target, a state the
/// target is not legal from, or a lock; 409 while another transition runs.
#[utoipa::path(put, path = "/mogan/v1/instances/{uuid}/states/power", tag = "mogan", params(("uuid" = String, Path)),
    responses((status = 202, description = "Accepted", headers(("Location" = String))), (status = 400, body = Object),
        (status = 401, body = Object), (status = 403, body = Object), (status = 404, body = Object), (status = 409, body = Object)),
    security(("mogan_token" = [])))]
pub async fn power_instance(req: HttpRequest, op: Op) -> Result<HttpResponse, MoganError> {
    power(Spelling::Instances, req, op).await
}

/// As for instances.
#[utoipa::path(put, path = "/mogan/v1/servers/{uuid}/states/power", tag = "mogan", params(("uuid" = String, Path)),
    responses((status = 202, description = "Accepted", headers(("Location" = String))), (status = 400, body = Object),
        (status = 401, body = Object), (status = 403, body = Object), (status = 404, body = Object), (status = 409, body = Object)),
    security(("mogan_token" = [])))]
pub async fn power_server(req: HttpRequest, op: Op) -> Result<HttpResponse, MoganError> {
    power(Spelling::Servers, req, op).await
}

/// `{"target": true|false}`: 202. A lock holds power changes and deletion back from all
/// but staff; staff take over an owner's lock, and only staff lift theirs (403).
#[utoipa::path(put, path = "/mogan/v1/instances/{uuid}/states/lock", tag = "mogan", params(("uuid" = String, Path)),
    responses((status = 202, description = "Accepted"), (status = 400, body = Object), (status = 401, body = Object),
        (status = 403, body = Object), (status = 404, body = Object)),
    security(("mogan_token" = [])))]
pub async fn lock_instance(op: Op) -> Result<HttpResponse, MoganError> {
    lock(Spelling::Instances, op).await
}

/// As for instances.
#[utoipa::path(put, path = "/mogan/v1/servers/{uuid}/states/lock", tag = "mogan", params(("uuid" = String, Path)),
    responses((status = 202, description = "Accepted"), (status = 400, body = Object), (status = 401, body = Object),
        (status = 403, body = Object), (status = 404, body = Object)),
    security(("mogan_token" = [])))]
pub async fn lock_server(op: Op) -> Result<HttpResponse, MoganError> {
    lock(Spelling::Servers, op).await
}
