//! Enforces the authorization policy (`authz::can`) for every `/v1` route: the route table
//! declares each route's action and where its object comes from; this middleware asks the
//! query layer whether the caller may act on that object and refuses with 403, or with
//! 404 when the object does not exist for the caller. Routes whose object is named in the
//! body leave the check to the service, which makes it once the body is parsed.

use std::collections::HashMap;
use std::sync::OnceLock;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, web};

use super::NativeError;
use super::routes::{ObjectFrom, table};
use crate::api::{AppState, Failure};
use crate::authz::{Action, Principal};
use crate::query::{self, access::Access, access::Target};

/// (method, path pattern) -> the route's action and object source.
type Rules = HashMap<(String, String), (Action, ObjectFrom)>;

fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| {
        table()
            .into_iter()
            .map(|r| {
                (
                    (r.method.to_string(), r.path.to_string()),
                    (r.action, r.object),
                )
            })
            .collect()
    })
}

fn target(from: ObjectFrom, raw: &str) -> Target<'_> {
    match from {
        ObjectFrom::None | ObjectFrom::Body => Target::Nothing,
        ObjectFrom::Instance => Target::Instance(raw),
        ObjectFrom::Project => Target::Project(raw),
        ObjectFrom::Customer => Target::Customer(raw),
        ObjectFrom::User => Target::User(raw),
        ObjectFrom::Token => Target::Token(raw),
    }
}

fn kind(from: ObjectFrom) -> &'static str {
    match from {
        ObjectFrom::Instance => "instance",
        ObjectFrom::Project => "project",
        ObjectFrom::Customer => "customer",
        ObjectFrom::User => "user",
        ObjectFrom::Token => "token",
        ObjectFrom::None | ObjectFrom::Body => "resource",
    }
}

/// The gate's verdict: proceed, or the refusal to send.
async fn decide(
    state: &AppState,
    principal: &Principal,
    action: Action,
    from: ObjectFrom,
    raw: String,
) -> Result<(), Failure> {
    let access = query::read(&state.ledger, principal, move |r| {
        r.access(action, target(from, &raw))
    })
    .await?;
    match access {
        // Missing objects are the handler's 404 (or 410 for purged instances).
        Access::Allowed | Access::Missing => Ok(()),
        Access::Forbidden => Err(Failure::Forbidden(format!(
            "your role does not allow this ({action:?})"
        ))),
        // Worded as the handler words a missing object, so the two cannot be told apart.
        Access::Hidden => Err(Failure::NotFound(kind(from).into())),
    }
}

pub async fn enforce(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let pattern = req.match_pattern().unwrap_or_default();
    let rule = rules()
        .get(&(req.method().to_string(), pattern.clone()))
        .copied();
    // Every route of the table has a rule; a method without one falls to the resource's
    // 405 answer, which reveals nothing.
    let Some((action, from)) = rule else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let principal = req.extensions().get::<Principal>().cloned();
    let (Some(principal), Some(state)) =
        (principal, req.app_data::<web::Data<AppState>>().cloned())
    else {
        let e = Failure::Internal(format!(
            "authorization context missing for {} {pattern}",
            req.method()
        ));
        return Ok(req.error_response(NativeError(e)));
    };
    let raw = req.match_info().get("id").unwrap_or_default().to_string();
    // The handler checks the object named in the body once it has parsed it.
    let decision = match from {
        ObjectFrom::Body => Ok(()),
        _ => decide(&state, &principal, action, from, raw).await,
    };
    match decision {
        Ok(()) => Ok(next.call(req).await?.map_into_boxed_body()),
        Err(e) => Ok(req.error_response(NativeError(e))),
    }
}
