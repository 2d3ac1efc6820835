//! The native lifecycle actions on one instance: start, stop, reboot, resize, recover,
//! purge, power, and the completions agents report.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::instances::{etag, respond, sizes};
use super::openapi::{
    BadRequest, Conflict, Gone, InstancePath, InstanceWriteHeaders, NotFound, PayloadTooLarge,
    PreconditionFailed, Unprocessable, UnsupportedMediaType,
};
use super::write::Act;
use super::{Caller, NativeError};
use crate::api::{AppState, Failure, validate};
use crate::domain::instance::Command;
use crate::projection::{InstanceView, PowerView};
use crate::query;
use crate::service::Outcome;

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
    /// vCPUs, for a custom flavor (with `memory_mb`).
    vcpus: Option<u32>,
    /// Memory in MB, for a custom flavor (with `vcpus`).
    memory_mb: Option<u64>,
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

/// Starts a stopped instance.
#[utoipa::path(post, path = "/v1/instances/{id}/start", tag = "instances", request_body(content = Option<NoFields>), params(InstancePath, InstanceWriteHeaders),
    responses((status = 202, description = "Accepted, state `starting`", body = InstanceView, headers(("ETag" = String))), (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType), (status = 404, response = NotFound), (status = 409, response = Conflict), (status = 410, response = Gone), (status = 412, response = PreconditionFailed), (status = 422, response = Unprocessable)))]
pub async fn start(act: Act) -> Result<HttpResponse, NativeError> {
    let NoFields {} = act.body.json_or_default()?;
    act.view(vec![Command::Start], StatusCode::ACCEPTED).await
}

/// Stops an instance; `force` cuts the power at once.
#[utoipa::path(post, path = "/v1/instances/{id}/stop", tag = "instances", request_body(content = Option<StopBody>), params(InstancePath, InstanceWriteHeaders),
    responses((status = 202, description = "Accepted, state `stopping` (or `stopped` when forced)", body = InstanceView, headers(("ETag" = String))), (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType), (status = 404, response = NotFound), (status = 409, response = Conflict), (status = 410, response = Gone), (status = 412, response = PreconditionFailed), (status = 422, response = Unprocessable)))]
pub async fn stop(act: Act) -> Result<HttpResponse, NativeError> {
    let b: StopBody = act.body.json_or_default()?;
    act.view(vec![Command::Stop { force: b.force }], StatusCode::ACCEPTED)
        .await
}

/// Reboots a running or stopped instance.
#[utoipa::path(post, path = "/v1/instances/{id}/reboot", tag = "instances", request_body(content = Option<RebootBody>), params(InstancePath, InstanceWriteHeaders),
    responses((status = 202, description = "Accepted, state `rebooting`", body = InstanceView, headers(("ETag" = String))), (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType), (status = 404, response = NotFound), (status = 409, response = Conflict), (status = 410, response = Gone), (status = 412, response = PreconditionFailed), (status = 422, response = Unprocessable)))]
pub async fn reboot(act: Act) -> Result<HttpResponse, NativeError> {
    let b: RebootBody = act.body.json_or_default()?;
    act.view(vec![Command::Reboot { soft: b.soft }], StatusCode::ACCEPTED)
        .await
}

/// Resizes a stopped instance to another flavor.
#[utoipa::path(post, path = "/v1/instances/{id}/resize", tag = "instances", request_body = ResizeBody, params(InstancePath, InstanceWriteHeaders),
    responses((status = 200, description = "Resized", body = InstanceView, headers(("ETag" = String))), (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType), (status = 404, response = NotFound), (status = 409, response = Conflict), (status = 410, response = Gone), (status = 412, response = PreconditionFailed), (status = 422, response = Unprocessable)))]
pub async fn resize(act: Act) -> Result<HttpResponse, NativeError> {
    let b: ResizeBody = act.body.json()?;
    let sizing = act
        .sizing(b.flavor_id, sizes(b.vcpus, b.memory_mb)?)
        .await?;
    act.view(vec![Command::Resize(sizing)], StatusCode::OK)
        .await
}

/// Recovers a destroyed instance (to `stopped`).
#[utoipa::path(post, path = "/v1/instances/{id}/recover", tag = "instances", request_body(content = Option<NoFields>), params(InstancePath, InstanceWriteHeaders),
    responses((status = 200, description = "Recovered", body = InstanceView, headers(("ETag" = String))), (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType), (status = 404, response = NotFound), (status = 409, response = Conflict), (status = 410, response = Gone), (status = 412, response = PreconditionFailed), (status = 422, response = Unprocessable)))]
pub async fn recover(act: Act) -> Result<HttpResponse, NativeError> {
    let NoFields {} = act.body.json_or_default()?;
    act.view(vec![Command::Recover], StatusCode::OK).await
}

/// Locks an instance: power, resize and deletion are refused (409 `locked`) to all but
/// staff until it is unlocked. Staff take over an owner's lock.
#[utoipa::path(post, path = "/v1/instances/{id}/lock", tag = "instances", request_body(content = Option<NoFields>), params(InstancePath, InstanceWriteHeaders),
    responses((status = 200, description = "Locked", body = InstanceView, headers(("ETag" = String))), (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType), (status = 404, response = NotFound), (status = 409, response = Conflict), (status = 410, response = Gone), (status = 412, response = PreconditionFailed)))]
pub async fn lock(act: Act) -> Result<HttpResponse, NativeError> {
    let NoFields {} = act.body.json_or_default()?;
    let by = act.lock_holder();
    act.view(vec![Command::Lock { by }], StatusCode::OK).await
}

/// Unlocks an instance; a lock staff set only staff can lift (409 `locked`).
#[utoipa::path(post, path = "/v1/instances/{id}/unlock", tag = "instances", request_body(content = Option<NoFields>), params(InstancePath, InstanceWriteHeaders),
    responses((status = 200, description = "Unlocked", body = InstanceView, headers(("ETag" = String))), (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType), (status = 404, response = NotFound), (status = 409, response = Conflict), (status = 410, response = Gone), (status = 412, response = PreconditionFailed)))]
pub async fn unlock(act: Act) -> Result<HttpResponse, NativeError> {
    let NoFields {} = act.body.json_or_default()?;
    let by = act.lock_holder();
    act.view(vec![Command::Unlock { by }], StatusCode::OK).await
}

/// Purges a destroyed instance: gone from views, kept in history.
#[utoipa::path(post, path = "/v1/instances/{id}/purge", tag = "instances", request_body(content = Option<NoFields>), params(InstancePath, InstanceWriteHeaders),
    responses((status = 204, description = "Purged"), (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType), (status = 404, response = NotFound), (status = 409, response = Conflict), (status = 410, response = Gone), (status = 412, response = PreconditionFailed), (status = 422, response = Unprocessable)))]
pub async fn purge(act: Act) -> Result<HttpResponse, NativeError> {
    let NoFields {} = act.body.json_or_default()?;
    act.bare(vec![Command::Purge], StatusCode::NO_CONTENT).await
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
pub async fn complete(act: Act) -> Result<HttpResponse, NativeError> {
    let NoFields {} = act.body.json_or_default()?;
    act.view(vec![Command::Complete], StatusCode::OK).await
}

/// An agent reports that the pending transition failed: the instance goes to `error`.
#[utoipa::path(post, path = "/v1/instances/{id}/fail", tag = "instances", request_body = FailBody,
    params(("id" = String, Path, description = "Instance id or short id"),
        ("If-Match" = Option<String>, Header, description = "The version the agent was told about")),
    responses((status = 200, description = "Failed", body = InstanceView, headers(("ETag" = String))),
        (status = 400, response = BadRequest), (status = 404, response = NotFound), (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed)))]
pub async fn fail(act: Act) -> Result<HttpResponse, NativeError> {
    let b: FailBody = act.body.json()?;
    let reason = validate::name("reason", &b.reason)?;
    act.view(vec![Command::Fail { reason }], StatusCode::OK)
        .await
}

/// The instance's power state and pending target.
#[utoipa::path(get, path = "/v1/instances/{id}/power", tag = "instances", params(InstancePath),
    responses((status = 200, description = "Power", body = PowerView, headers(("ETag" = String))), (status = 404, response = NotFound), (status = 410, response = Gone)))]
pub async fn power(
    state: web::Data<AppState>,
    path: web::Path<String>,
    caller: Caller,
) -> Result<HttpResponse, NativeError> {
    let raw = path.into_inner();
    let inst = query::read(&state.ledger, &caller, move |r| r.instance(&raw)).await?;
    Ok(HttpResponse::Ok()
        .insert_header(header::ETag(etag(inst.version)))
        .json(PowerView::from(&inst)))
}

/// Sets the power target: `on` starts, `off` cuts the power, `soft_off` stops gracefully,
/// `reboot`/`soft_reboot` reboot.
#[utoipa::path(put, path = "/v1/instances/{id}/power", tag = "instances", request_body = PowerBody, params(InstancePath, InstanceWriteHeaders),
    responses((status = 202, description = "Accepted", body = PowerView, headers(("ETag" = String))), (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType), (status = 404, response = NotFound), (status = 409, response = Conflict), (status = 410, response = Gone), (status = 412, response = PreconditionFailed), (status = 422, response = Unprocessable)))]
pub async fn set_power(act: Act) -> Result<HttpResponse, NativeError> {
    let b: PowerBody = act.body.json()?;
    let command = match b.target {
        PowerTarget::On => Command::Start,
        PowerTarget::Off => Command::Stop { force: true },
        PowerTarget::SoftOff => Command::Stop { force: false },
        PowerTarget::Reboot => Command::Reboot { soft: false },
        PowerTarget::SoftReboot => Command::Reboot { soft: true },
    };
    let reply = act.submit(vec![command]).await?;
    let power = match &reply.outcome {
        Outcome::Instance(inst) => PowerView::from(&**inst),
        _ => return Err(Failure::Internal("expected an instance outcome".into()).into()),
    };
    Ok(respond(StatusCode::ACCEPTED, &reply, Some(power)))
}
