//! The project a request works in, for the dialects whose vendor scoped a credential to
//! one project (Keystone) or had no tenancy at all: the project the request names (a
//! header or an argument), checked against what the caller may see, or else the
//! caller's only project. Each dialect words the problems in its own shape.

use uuid::Uuid;

use super::Failure;
use crate::authz::{Action, Principal};
use crate::query::access::{Access, Target};
use crate::query::{self, Source};

/// Why no project could be settled on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectProblem {
    /// The named value is not a project id.
    Malformed(String),
    /// The named project is not one the caller may see (or does not exist).
    NotVisible(Uuid),
    /// None named, and the caller works in this many projects (not exactly one).
    NotOne(usize),
}

/// The project of a request: `named` (a raw id, dashed or not) if the caller may see it,
/// else the caller's only project.
pub async fn project(
    source: impl Into<Source>,
    caller: &Principal,
    named: Option<&str>,
) -> Result<Result<Uuid, ProjectProblem>, Failure> {
    let named = match named.map(str::trim) {
        None => None,
        Some(raw) => match Uuid::try_parse(raw) {
            Ok(id) => Some(id),
            Err(_) => return Ok(Err(ProjectProblem::Malformed(raw.to_string()))),
        },
    };
    let found = query::read(source, caller, move |r| match named {
        Some(id) => Ok(
            match r.access(Action::ReadProject, Target::Project(&id.to_string()))? {
                Access::Allowed | Access::Forbidden => Ok(id),
                Access::Hidden | Access::Missing => Err(ProjectProblem::NotVisible(id)),
            },
        ),
        None => {
            let projects = r.reachable_projects()?;
            Ok(match projects.as_slice() {
                [only] => Ok(*only),
                other => Err(ProjectProblem::NotOne(other.len())),
            })
        }
    })
    .await?;
    Ok(found)
}
