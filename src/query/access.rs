//! The objects actions target, loaded for the authorization policy: a surface names the
//! target (an instance, project, customer, user or token by its path id) and learns
//! whether the caller may act on it.

use uuid::Uuid;

use super::{QueryError, Reader};
use crate::authz::{self, Action, Decision, Object};
use crate::domain::catalog::{Kind, Spec};
use crate::domain::short_id;
use crate::projection::index;

/// What an action is aimed at, as a request names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// Nothing in particular (lists filtered by the caller's scopes, creation).
    Nothing,
    /// An instance by uuid or short id.
    Instance(&'a str),
    Project(&'a str),
    Customer(&'a str),
    User(&'a str),
    /// A token by id: the object is the user it belongs to.
    Token(&'a str),
}

/// How an authorization check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Allowed,
    /// The caller may see the object but not do this.
    Forbidden,
    /// The object does not exist for the caller.
    Hidden,
    /// There is no such object at all (the surface answers its own not-found).
    Missing,
}

impl Reader<'_> {
    /// The policy's object for a target; `None` when there is no such object.
    fn object(&self, target: Target<'_>) -> Result<Option<Object>, QueryError> {
        let uuid = |raw: &str| Uuid::try_parse(raw).ok();
        Ok(match target {
            Target::Nothing => Some(Object::None),
            Target::Instance(raw) => {
                let id = match uuid(raw) {
                    Some(id) => Some(id),
                    None if short_id::is_valid(raw) => self.snap.instance_by_short_id(raw)?,
                    None => None,
                };
                match id {
                    Some(id) => self.snap.instance(id)?.map(|i| Object::Instance {
                        project: i.spec.project_id,
                        customer: i.spec.customer_id,
                    }),
                    None => None,
                }
            }
            Target::Project(raw) => match uuid(raw) {
                Some(id) => self
                    .snap
                    .resource(id)?
                    .and_then(|r| match (r.kind, r.spec) {
                        (Kind::Project, Spec::Project { customer_id, .. }) => {
                            Some(Object::Project {
                                id,
                                customer: customer_id,
                            })
                        }
                        _ => None,
                    }),
                None => None,
            },
            Target::Customer(raw) => match uuid(raw) {
                Some(id) => self
                    .snap
                    .resource(id)?
                    .filter(|r| r.kind == Kind::Customer)
                    .map(|_| Object::Customer { id }),
                None => None,
            },
            Target::User(raw) => uuid(raw).map(|id| Object::User { id }),
            Target::Token(raw) => match uuid(raw) {
                Some(t) => self
                    .snap
                    .page(&[index::token_key(t)], None, 1)?
                    .ids
                    .first()
                    .map(|user| Object::User { id: *user }),
                None => None,
            },
        })
    }

    /// Whether the caller may do `action` to `target`.
    pub fn access(&self, action: Action, target: Target<'_>) -> Result<Access, QueryError> {
        Ok(match self.object(target)? {
            None => Access::Missing,
            Some(object) => match authz::can(self.caller, action, &object) {
                Decision::Allow => Access::Allowed,
                Decision::Forbidden => Access::Forbidden,
                Decision::Hidden => Access::Hidden,
            },
        })
    }
}
