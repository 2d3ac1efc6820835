//! `{environment}`: a project the caller can reach, by name (CloudMC's environment name)
//! or id; `{service}` is accepted as given (this server is the one service).

use uuid::Uuid;

use super::CmError;
use crate::authz::Principal;
use crate::domain::catalog::Kind;
use crate::query::{self, Source};

/// The project an environment segment names. Several visible projects of one name: the
/// oldest (names are unique per customer in CloudMC; here they need not be).
pub async fn project(
    source: impl Into<Source>,
    caller: &Principal,
    environment: &str,
) -> Result<Uuid, CmError> {
    let env = environment.to_string();
    let found = query::read(source, caller, move |r| {
        let projects = r.all_resources(Kind::Project)?;
        Ok(projects
            .iter()
            .find(|p| p.id.to_string() == env || p.id.simple().to_string() == env)
            .or_else(|| projects.iter().find(|p| p.name() == env))
            .map(|p| p.id))
    })
    .await?;
    found.ok_or_else(|| CmError::not_found("environments", environment))
}
