//! Tasks: CloudMC answered every change with a task to poll. Here a task is the log
//! itself: its id encodes the position of the request's last event (with a keyed check
//! against the instance, so ids cannot be guessed into other streams), and its status is
//! read from that stream's events after it: nothing yet for a request a driver must
//! complete is `PENDING`, a `Failed` next is `FAILED`, anything else `SUCCESS`. Tasks
//! therefore survive a restart and never expire.
//!
//! A password reset's new password is derived from the caller's own token and the event
//! (HMAC-SHA-256), so only the same token can read it back from the task; the log keeps
//! only its SHA-256.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Caller, CloudMc, CmError, repr};
use crate::api::AppState;
use crate::api::surface::Surface;
use crate::domain::instance::Instance;
use crate::domain::lifecycle::State;
use crate::query::{self, Envelope, QueryError, Reader};

fn check(position: u64, stream: Uuid) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"cloudmc-task")
        .chain_update(position.to_be_bytes())
        .chain_update(stream.as_bytes())
        .finalize()
        .into()
}

/// The task of the request whose last event is at `position` on `stream`: 48 bits of
/// position, version 8, and 66 bits of the check.
pub fn task_id(position: u64, stream: Uuid) -> Uuid {
    let c = check(position, stream);
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&position.to_be_bytes()[2..]);
    b[6] = 0x80 | (c[0] & 0x0f);
    b[7] = c[1];
    b[8] = 0x80 | (c[2] & 0x3f);
    b[9..].copy_from_slice(&c[3..10]);
    Uuid::from_bytes(b)
}

/// The position a task id names, if it is one this server could have issued.
fn position_of(id: Uuid) -> Option<u64> {
    let b = id.as_bytes();
    let mut p = [0u8; 8];
    p[2..].copy_from_slice(&b[..6]);
    let position = u64::from_be_bytes(p);
    (b[6] & 0xf0 == 0x80 && b[8] & 0xc0 == 0x80).then_some(position)
}

/// HMAC-SHA-256 (RFC 2104), for the password derivation.
fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// The new password of a reset: the token that asked for it, the instance, and the
/// version the reset event takes.
pub fn password(token: &str, instance: Uuid, version: u64) -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut msg = b"cloudmc-reset-password".to_vec();
    msg.extend_from_slice(instance.as_bytes());
    msg.extend_from_slice(&version.to_be_bytes());
    hmac(token.as_bytes(), &msg)
        .iter()
        .take(16)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn digest(password: &str) -> String {
    hex(&Sha256::digest(password.as_bytes()))
}

/// A task's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Success,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Success => "SUCCESS",
            Status::Failed => "FAILED",
        }
    }
}

/// Events that leave work for a driver: their task is pending until the next event.
const AWAITING: &[&str] = &[
    "Created",
    "StartRequested",
    "StopRequested",
    "RebootRequested",
    "ResizeRequested",
    "DestroyRequested",
];

/// Everything a task answer needs, read in one snapshot.
pub struct Found {
    pub id: Uuid,
    pub status: Status,
    pub created: DateTime<Utc>,
    pub result: Option<Value>,
}

/// The task `id` as `caller` may see it, with the password of a reset when `token` is the
/// one that asked.
pub fn find(r: &Reader<'_>, id: Uuid, token: &str) -> Result<Option<Found>, QueryError> {
    let Some(position) = position_of(id) else {
        return Ok(None);
    };
    let Some(event) = r.event_at(position)? else {
        return Ok(None);
    };
    if task_id(position, event.stream_id) != id {
        return Ok(None);
    }
    let timeline = r.timeline(&event.stream_id.to_string())?;
    let next = timeline.iter().find(|e| e.version > event.version);
    let status = match next {
        Some(e) if e.event_type == "Failed" && AWAITING.contains(&event.event_type.as_str()) => {
            Status::Failed
        }
        None if AWAITING.contains(&event.event_type.as_str())
            && !(event.event_type == "StopRequested" && forced(&event)) =>
        {
            Status::Pending
        }
        _ => Status::Success,
    };
    let result = match status {
        Status::Success => Some(result(r, &event, token)?),
        Status::Failed => next.map(|e| json!({"errors": [{"message": e.data["reason"]}]})),
        Status::Pending => None,
    };
    Ok(Some(Found {
        id,
        status,
        created: event.at,
        result,
    }))
}

fn forced(e: &Envelope) -> bool {
    e.data["mode"] == "forced" || e.data["force"] == true
}

/// What a finished task carries: the instance as it is now (its id only once purged),
/// and a reset's password for the token that asked.
fn result(r: &Reader<'_>, event: &Envelope, token: &str) -> Result<Value, QueryError> {
    let inst: Option<Instance> = match r.instance(&event.stream_id.to_string()) {
        Ok(i) => Some(i),
        Err(QueryError::Gone | QueryError::NotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    let mut value = match &inst {
        Some(i) if i.state != State::Purged => {
            serde_json::to_value(repr::instance(r, i, true)?).unwrap_or(Value::Null)
        }
        _ => json!({ "id": event.stream_id }),
    };
    if event.event_type == "PasswordReset" {
        let candidate = password(token, event.stream_id, event.version);
        if event.data["digest"] == digest(&candidate).as_str() {
            value["password"] = json!(candidate);
        }
    }
    Ok(value)
}

/// The answer to a change: the task, and the result when it is already done (the Go
/// client takes `data` at once when the status is SUCCESS).
pub fn answer(found: &Found) -> HttpResponse {
    let mut body = json!({"taskId": found.id, "taskStatus": found.status.as_str()});
    if let Some(result) = &found.result
        && found.status == Status::Success
    {
        body["data"] = result.clone();
    }
    HttpResponse::Ok().json(body)
}

/// A task: the documented top-level `taskId`, `taskStatus`, `result`, and the `data`
/// object the Go and JS clients read (`id`, `status`, `created`, `result`).
#[utoipa::path(get, path = "/cloudmc/api/v2/tasks/{id}", tag = "cloudmc",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "`PENDING`, `SUCCESS` (with `result`) or `FAILED`", body = Object),
        (status = 401, body = Object), (status = 404, body = Object)),
    security(("cloudmc_key" = [])))]
pub async fn show(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    caller: Caller,
) -> Result<HttpResponse, CmError> {
    let raw = path.into_inner();
    let not_found = || CmError::not_found("tasks", &raw);
    let id = Uuid::try_parse(&raw).map_err(|_| not_found())?;
    let token = CloudMc::token(req.headers(), "").unwrap_or_default();
    let found = query::read(&state.ledger, &caller, move |r| find(r, id, &token))
        .await?
        .ok_or_else(not_found)?;
    let mut body = json!({
        "taskId": found.id,
        "taskStatus": found.status.as_str(),
        "data": {
            "id": found.id,
            "status": found.status.as_str(),
            "created": found.created.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        },
    });
    if let Some(result) = found.result {
        body["result"] = result.clone();
        body["data"]["result"] = result;
    }
    Ok(HttpResponse::build(StatusCode::OK).json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_carry_their_position_and_refuse_other_streams() {
        let stream = Uuid::from_u128(7);
        let id = task_id(123_456, stream);
        assert_eq!(position_of(id), Some(123_456));
        assert_ne!(task_id(123_456, Uuid::from_u128(8)), id);
        assert_eq!(id.get_version_num(), 8);
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_password_depends_on_the_token_and_only_its_digest_is_kept() {
        let i = Uuid::from_u128(1);
        let p = password("lt_a_b", i, 4);
        assert_eq!(p.len(), 16);
        assert_eq!(p, password("lt_a_b", i, 4));
        assert_ne!(p, password("lt_other", i, 4));
        assert_ne!(digest(&p), p);
    }
}
