//! The project a request works in. Keystone scoped a token to one project; here a token
//! belongs to a user, so the client names the project in `X-Project-Id` (as
//! keystonemiddleware passed it on) or the caller's only project is taken.

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use uuid::Uuid;

use super::MoganError;
use crate::authz::{Action, Principal};
use crate::query::access::{Access, Target};
use crate::query::{self, Source};

/// The project of this request, checked against what the caller may see.
pub async fn project(
    source: impl Into<Source>,
    caller: &Principal,
    req: &HttpRequest,
) -> Result<Uuid, MoganError> {
    let named = match req.headers().get("x-project-id") {
        None => None,
        Some(v) => {
            let raw = v.to_str().unwrap_or("").trim().to_string();
            let id = Uuid::try_parse(&raw).map_err(|_| {
                MoganError::bad_request(format!(
                    "Invalid X-Project-Id header: {raw:?} is not a project id"
                ))
            })?;
            Some(id)
        }
    };
    query::read(source, caller, move |r| match named {
        Some(id) => Ok(
            match r.access(Action::ReadProject, Target::Project(&id.to_string()))? {
                Access::Allowed | Access::Forbidden => Ok(id),
                Access::Hidden | Access::Missing => Err(MoganError::client(
                    StatusCode::FORBIDDEN,
                    format!("The token is not authorized for project {}", id.simple()),
                )),
            },
        ),
        None => {
            let projects = r.reachable_projects()?;
            Ok(match projects.as_slice() {
                [only] => Ok(*only),
                [] => Err(MoganError::bad_request(
                    "No project: send X-Project-Id (the caller is in no project)",
                )),
                many => Err(MoganError::bad_request(format!(
                    "No project: send X-Project-Id (the caller is in {} projects)",
                    many.len()
                ))),
            })
        }
    })
    .await?
}
