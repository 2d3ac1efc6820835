//! The project a request works in. Keystone scoped a token to one project; here a token
//! belongs to a user, so the client names the project in `X-Project-Id` (as
//! keystonemiddleware passed it on) or the caller's only project is taken.

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use uuid::Uuid;

use super::MoganError;
use crate::api::tenancy::{self, ProjectProblem};
use crate::authz::Principal;
use crate::query::Source;

/// The project of this request, checked against what the caller may see.
pub async fn project(
    source: impl Into<Source>,
    caller: &Principal,
    req: &HttpRequest,
) -> Result<Uuid, MoganError> {
    let named = req
        .headers()
        .get("x-project-id")
        .map(|v| v.to_str().unwrap_or("").to_string());
    match tenancy::project(source, caller, named.as_deref()).await? {
        Ok(id) => Ok(id),
        Err(ProjectProblem::Malformed(raw)) => Err(MoganError::bad_request(format!(
            "Invalid X-Project-Id header: {raw:?} is not a project id"
        ))),
        Err(ProjectProblem::NotVisible(id)) => Err(MoganError::client(
            StatusCode::FORBIDDEN,
            format!("The token is not authorized for project {}", id.simple()),
        )),
        Err(ProjectProblem::NotOne(0)) => Err(MoganError::bad_request(
            "No project: send X-Project-Id (the caller is in no project)",
        )),
        Err(ProjectProblem::NotOne(n)) => Err(MoganError::bad_request(format!(
            "No project: send X-Project-Id (the caller is in {n} projects)"
        ))),
    }
}
