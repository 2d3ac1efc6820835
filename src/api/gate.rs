//! Enforces the authorization policy (`authz::can`) for every `/v1` route: the route table
//! declares each route's action and where its object comes from; this middleware loads the
//! object and refuses with 403, or with 404 when the object does not exist for the caller.
//! Routes whose object is named in the body call [`check`] once the body is parsed.

use std::collections::HashMap;
use std::sync::OnceLock;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, web};
use uuid::Uuid;

use super::AppState;
use super::problem::ApiError;
use super::routes::{ObjectFrom, table};
use crate::authz::{Action, Decision, Object, Principal, can};
use crate::domain::catalog::{Kind, Spec};
use crate::domain::short_id;
use crate::projection::index;
use crate::store::{Snapshot, StoreError};

/// Applies the policy: Ok to proceed, or the refusal to send. `hidden` is what a caller
/// who may not know the object exists gets (404, or 422 for a reference in a body).
pub fn check(
    p: &Principal,
    action: Action,
    object: &Object,
    hidden: ApiError,
) -> Result<(), ApiError> {
    match can(p, action, object) {
        Decision::Allow => Ok(()),
        Decision::Forbidden => Err(ApiError::Forbidden(format!(
            "your role does not allow this ({action:?})"
        ))),
        Decision::Hidden => Err(hidden),
    }
}

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

/// Loads the object a path id names; `None` when it does not exist (the handler then
/// answers 404 itself).
pub fn load_object(
    snap: &dyn Snapshot,
    from: ObjectFrom,
    raw: &str,
) -> Result<Option<Object>, StoreError> {
    let uuid = Uuid::try_parse(raw).ok();
    Ok(match from {
        // The gate decides these without loading anything.
        ObjectFrom::None | ObjectFrom::Body => None,
        ObjectFrom::Instance => {
            let id = match uuid {
                Some(id) => Some(id),
                None if short_id::is_valid(raw) => snap.instance_by_short_id(raw)?,
                None => None,
            };
            match id {
                Some(id) => snap.instance(id)?.map(|i| Object::Instance {
                    project: i.spec.project_id,
                    customer: i.spec.customer_id,
                }),
                None => None,
            }
        }
        ObjectFrom::Project => match uuid {
            Some(id) => snap.resource(id)?.and_then(|r| match (r.kind, r.spec) {
                (Kind::Project, Spec::Project { customer_id, .. }) => Some(Object::Project {
                    id,
                    customer: customer_id,
                }),
                _ => None,
            }),
            None => None,
        },
        ObjectFrom::Customer => match uuid {
            Some(id) => snap
                .resource(id)?
                .filter(|r| r.kind == Kind::Customer)
                .map(|_| Object::Customer { id }),
            None => None,
        },
        ObjectFrom::User => uuid.map(|id| Object::User { id }),
        ObjectFrom::Token => match uuid {
            Some(t) => snap
                .page(&[index::token_key(t)], None, 1)?
                .ids
                .first()
                .map(|user| Object::User { id: *user }),
            None => None,
        },
    })
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
        let e = ApiError::Internal(format!(
            "authorization context missing for {} {pattern}",
            req.method()
        ));
        return Ok(req.error_response(e));
    };
    let raw = req.match_info().get("id").unwrap_or_default().to_string();
    let decision = if from == ObjectFrom::Body {
        // The handler checks the object named in the body once it has parsed it.
        Ok(())
    } else if from == ObjectFrom::None {
        check(
            &principal,
            action,
            &Object::None,
            ApiError::NotFound("resource".into()),
        )
    } else {
        let store = state.ledger.store().clone();
        let object = web::block(move || {
            let snap = store.read()?;
            load_object(&*snap, from, &raw)
        })
        .await
        .map_err(ApiError::from)
        .and_then(|r| r.map_err(ApiError::from));
        match object {
            Err(e) => Err(e),
            // Missing objects are the handler's 404 (or 410 for purged instances).
            Ok(None) => Ok(()),
            Ok(Some(object)) => check(
                &principal,
                action,
                &object,
                ApiError::NotFound("resource".into()),
            ),
        }
    };
    match decision {
        Ok(()) => Ok(next.call(req).await?.map_into_boxed_body()),
        Err(e) => Ok(req.error_response(e)),
    }
}
