//! Who may do what: the one authorization policy. `can` decides for a principal, an action
//! and the object it targets; `instance_scopes` turns the same relations into the index
//! keys that bound what lists and feeds may show. Pure: the caller loads the principal's
//! grants and the object.
//!
//! | principal | may |
//! |---|---|
//! | staff | everything |
//! | customer owner | read and operate every instance of the customer's projects; manage its projects and their members |
//! | project administrator | create, read and operate the project's instances |
//! | project manager | read the project's instances |
//! | agent | read every instance and report completions of requested transitions |
//! | anyone else | nothing of a customer or project it has no relation with: such objects do not exist for it (404) |

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::domain::identity::Role;
use crate::projection::{Filter, IndexKey};

/// An authenticated caller with its grants, as loaded for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The actor recorded in events: a user id, or `admin` for the bootstrap token.
    pub id: String,
    pub user_id: Option<Uuid>,
    pub token_id: Option<Uuid>,
    pub staff: bool,
    pub agent: bool,
    pub owned_customers: BTreeSet<Uuid>,
    /// Project -> (role, the project's customer).
    pub project_roles: BTreeMap<Uuid, (Role, Uuid)>,
}

impl Principal {
    /// The bootstrap staff principal of the admin token.
    pub fn bootstrap() -> Principal {
        Principal {
            id: "admin".into(),
            user_id: None,
            token_id: None,
            staff: true,
            agent: false,
            owned_customers: BTreeSet::new(),
            project_roles: BTreeMap::new(),
        }
    }

    fn owns(&self, customer: Uuid) -> bool {
        self.owned_customers.contains(&customer)
    }

    fn role(&self, project: Uuid) -> Option<Role> {
        self.project_roles.get(&project).map(|(r, _)| *r)
    }

    fn is(&self, user: Uuid) -> bool {
        self.user_id == Some(user)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ReadInstance,
    OperateInstance,
    CreateInstance,
    /// Report that a requested transition finished or failed (agents).
    CompleteInstance,
    /// Flavors, images, networks, SSH keys.
    ReadCatalog,
    ManageCatalog,
    ReadCustomer,
    CreateCustomer,
    ManageOwners,
    ReadProject,
    CreateProject,
    ManageMembers,
    /// Create and list users.
    ManageUsers,
    ReadUser,
    /// Issue, list and revoke a user's tokens.
    ManageTokens,
    /// Ledger-wide facts such as the head of the chain.
    ReadLedger,
    /// Things every authenticated caller may do (`/v1/me`, the filtered feed, lists).
    Authenticated,
}

/// What an action targets, with the relations the policy needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    None,
    Instance { project: Uuid, customer: Uuid },
    Project { id: Uuid, customer: Uuid },
    Customer { id: Uuid },
    User { id: Uuid },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// The caller may see the object but not do this: 403.
    Forbidden,
    /// The object does not exist for the caller: 404 (never 403, which would confirm it).
    Hidden,
}

use Decision::*;

fn allow_if(allowed: bool, visible: bool) -> Decision {
    match (allowed, visible) {
        (true, _) => Allow,
        (false, true) => Forbidden,
        (false, false) => Hidden,
    }
}

/// The policy.
pub fn can(p: &Principal, action: Action, object: &Object) -> Decision {
    if p.staff {
        return Allow;
    }
    match (action, *object) {
        (Action::Authenticated | Action::ReadCatalog, _) => Allow,
        (
            Action::ManageCatalog
            | Action::CreateCustomer
            | Action::ManageUsers
            | Action::ReadLedger,
            _,
        ) => Forbidden,

        (Action::ReadInstance, Object::Instance { project, customer }) => allow_if(
            p.agent || p.owns(customer) || p.role(project).is_some(),
            false,
        ),
        (Action::OperateInstance, Object::Instance { project, customer }) => {
            let visible = p.agent || p.owns(customer) || p.role(project).is_some();
            allow_if(
                p.owns(customer) || p.role(project) == Some(Role::Administrator),
                visible,
            )
        }
        (Action::CompleteInstance, Object::Instance { project, customer }) => {
            let visible = p.owns(customer) || p.role(project).is_some();
            allow_if(p.agent, visible || p.agent)
        }
        (Action::CreateInstance, Object::Project { id, customer }) => {
            let visible = p.owns(customer) || p.role(id).is_some();
            allow_if(
                p.owns(customer) || p.role(id) == Some(Role::Administrator),
                visible,
            )
        }
        (Action::ReadProject, Object::Project { id, customer }) => {
            allow_if(p.owns(customer) || p.role(id).is_some(), false)
        }
        (Action::ManageMembers, Object::Project { id, customer }) => {
            allow_if(p.owns(customer), p.role(id).is_some())
        }
        (Action::CreateProject, Object::Customer { id }) => {
            let visible = p.project_roles.values().any(|(_, c)| *c == id);
            allow_if(p.owns(id), visible)
        }
        (Action::ReadCustomer, Object::Customer { id }) => allow_if(
            p.owns(id) || p.project_roles.values().any(|(_, c)| *c == id),
            false,
        ),
        (Action::ManageOwners, Object::Customer { id }) => {
            let visible = p.owns(id) || p.project_roles.values().any(|(_, c)| *c == id);
            allow_if(false, visible)
        }
        (Action::ReadUser | Action::ManageTokens, Object::User { id }) => allow_if(p.is(id), false),
        // An action on an object of the wrong kind is a routing mistake: refuse it.
        _ => Hidden,
    }
}

/// Whether the principal is staff or holds the administrator role on the project: what
/// the stricter dialects (NodeConductor) ask of whoever creates or operates instances.
pub fn administers(p: &Principal, project: Uuid) -> bool {
    p.staff || p.role(project) == Some(Role::Administrator)
}

/// The index keys whose union is every instance the principal may read; `None` when it
/// may read all. The keys are disjoint (a role project inside an owned customer is
/// covered by the customer), so totals add up.
pub fn instance_scopes(p: &Principal) -> Option<Vec<IndexKey>> {
    if p.staff || p.agent {
        return None;
    }
    let mut keys: Vec<IndexKey> = p
        .owned_customers
        .iter()
        .map(|c| Filter::CustomerId(*c).index_key())
        .collect();
    keys.extend(
        p.project_roles
            .iter()
            .filter(|(_, (_, customer))| !p.owns(*customer))
            .map(|(project, _)| Filter::ProjectId(*project).index_key()),
    );
    Some(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: u128) -> Principal {
        Principal {
            id: n.to_string(),
            user_id: Some(Uuid::from_u128(n)),
            token_id: None,
            staff: false,
            agent: false,
            owned_customers: BTreeSet::new(),
            project_roles: BTreeMap::new(),
        }
    }

    const A: Uuid = Uuid::from_u128(0xA);
    const B: Uuid = Uuid::from_u128(0xB);
    const A1: Uuid = Uuid::from_u128(0xA1);
    const B1: Uuid = Uuid::from_u128(0xB1);

    #[test]
    fn roles_decide_instance_access_and_strangers_see_nothing() {
        let in_a1 = Object::Instance {
            project: A1,
            customer: A,
        };
        let in_b1 = Object::Instance {
            project: B1,
            customer: B,
        };
        let mut owner = user(1);
        owner.owned_customers.insert(A);
        let mut admin = user(2);
        admin.project_roles.insert(A1, (Role::Administrator, A));
        let mut manager = user(3);
        manager.project_roles.insert(A1, (Role::Manager, A));
        let stranger = user(4);
        for (p, read, operate) in [
            (&owner, Allow, Allow),
            (&admin, Allow, Allow),
            (&manager, Allow, Forbidden),
            (&stranger, Hidden, Hidden),
        ] {
            assert_eq!(can(p, Action::ReadInstance, &in_a1), read, "{p:?}");
            assert_eq!(can(p, Action::OperateInstance, &in_a1), operate, "{p:?}");
            assert_eq!(can(p, Action::ReadInstance, &in_b1), Hidden, "{p:?}");
            assert_eq!(can(p, Action::OperateInstance, &in_b1), Hidden, "{p:?}");
        }
        assert_eq!(
            can(&Principal::bootstrap(), Action::OperateInstance, &in_b1),
            Allow
        );
    }

    #[test]
    fn scopes_are_disjoint_and_cover_the_relations() {
        let mut p = user(1);
        p.owned_customers.insert(A);
        p.project_roles.insert(A1, (Role::Manager, A));
        p.project_roles.insert(B1, (Role::Administrator, B));
        let scopes = instance_scopes(&p).expect("scoped");
        assert_eq!(
            scopes,
            vec![
                Filter::CustomerId(A).index_key(),
                Filter::ProjectId(B1).index_key()
            ]
        );
        assert_eq!(instance_scopes(&Principal::bootstrap()), None);
    }
}
