//! Catalog and tenancy resources as a caller may see them: customers and projects bounded
//! by the caller's grants, flavors, images, networks and SSH keys readable by everyone.

use uuid::Uuid;

use super::{QueryError, Reader, all_with};
use crate::authz::{self, Action, Decision, Object};
use crate::domain::catalog::{Kind, Resource, Spec};
use crate::projection::{Page, index};
use crate::store::paging;

/// A page of resources of one kind in creation order.
#[derive(Debug, Clone)]
pub struct ResourcePage {
    pub items: Vec<Resource>,
    pub next: Option<Uuid>,
    pub total: u64,
}

impl Reader<'_> {
    /// Whether the caller may read this resource.
    fn may_read(&self, r: &Resource) -> bool {
        let (action, object) = match (&r.kind, &r.spec) {
            (Kind::Customer, _) => (Action::ReadCustomer, Object::Customer { id: r.id }),
            (Kind::Project, Spec::Project { customer_id, .. }) => (
                Action::ReadProject,
                Object::Project {
                    id: r.id,
                    customer: *customer_id,
                },
            ),
            _ => (Action::ReadCatalog, Object::None),
        };
        authz::can(self.caller, action, &object) == Decision::Allow
    }

    /// A resource of `kind` by its id, if the caller may read it.
    pub fn resource(&self, kind: Kind, raw: &str) -> Result<Resource, QueryError> {
        let not_found = || QueryError::not_found(kind.as_str(), raw);
        let id = Uuid::parse_str(raw).map_err(|_| not_found())?;
        match self.snap.resource(id)? {
            Some(r) if r.kind == kind && self.may_read(&r) => Ok(r),
            _ => Err(not_found()),
        }
    }

    /// A page of the resources of `kind` the caller may read.
    pub fn resources(
        &self,
        kind: Kind,
        cursor: Option<Uuid>,
        limit: usize,
    ) -> Result<ResourcePage, QueryError> {
        let page = match self.visible_tenancy(kind)? {
            None => self
                .snap
                .page(&[index::resource_kind_key(kind)], cursor, limit)?,
            Some(ids) => page_of(ids, cursor, limit),
        };
        let mut items = Vec::with_capacity(page.ids.len());
        for id in &page.ids {
            items.extend(self.snap.resource(*id)?);
        }
        Ok(ResourcePage {
            items,
            next: page.next,
            total: page.total,
        })
    }

    /// A resource a visible object refers to (its image, flavor, project...), for
    /// rendering it. No check of its own: the referring object was checked.
    pub fn resource_of(&self, id: Uuid) -> Result<Option<Resource>, QueryError> {
        Ok(self.snap.resource(id)?)
    }

    /// The oldest resource of `kind` with this name, if the caller may read it.
    pub fn resource_named(&self, kind: Kind, name: &str) -> Result<Option<Resource>, QueryError> {
        let page = self
            .snap
            .page(&[index::resource_name_key(kind, name)], None, 1)?;
        match page.ids.first() {
            Some(id) => Ok(self.snap.resource(*id)?.filter(|r| self.may_read(r))),
            None => Ok(None),
        }
    }

    /// Every resource of `kind` the caller may read, in creation order (catalog kinds
    /// are small; bounded like a listing).
    pub fn all_resources(&self, kind: Kind) -> Result<Vec<Resource>, QueryError> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.resources(kind, cursor, crate::limits::PAGE_MAX)?;
            out.extend(page.items);
            if out.len() > crate::limits::LISTING_MAX {
                return Err(QueryError::Invalid(format!(
                    "more than {} {} resources",
                    crate::limits::LISTING_MAX,
                    kind.as_str()
                )));
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(out),
            }
        }
    }

    /// The flavors the caller may use somewhere: unrestricted ones, and those restricted
    /// to a project it can reach (all of them for staff).
    pub fn usable_flavors(&self) -> Result<Vec<Resource>, QueryError> {
        let reachable = self.reachable_projects()?;
        let staff = self.caller.staff;
        Ok(self
            .all_resources(Kind::Flavor)?
            .into_iter()
            .filter(|f| match &f.spec {
                Spec::Flavor { projects, .. } => {
                    staff || projects.is_empty() || projects.iter().any(|p| reachable.contains(p))
                }
                _ => false,
            })
            .collect())
    }

    /// The projects the caller works in: those it has a role in and those of the
    /// customers it owns (staff reach every project but belong to none).
    pub fn reachable_projects(&self) -> Result<Vec<Uuid>, QueryError> {
        let mut reachable: Vec<Uuid> = self.caller.project_roles.keys().copied().collect();
        for customer in &self.caller.owned_customers {
            reachable.extend(all_with(self.snap, &index::projects_of_key(*customer))?);
        }
        reachable.sort();
        reachable.dedup();
        Ok(reachable)
    }

    /// The projects of a customer the caller may see, in creation order.
    pub fn projects_of(&self, customer: Uuid) -> Result<Vec<Resource>, QueryError> {
        let mut out = Vec::new();
        for id in all_with(self.snap, &index::projects_of_key(customer))? {
            if let Some(r) = self.snap.resource(id)?
                && self.may_read(&r)
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// The SSH keys that are `user`'s own.
    pub fn ssh_keys_of(&self, user: Option<Uuid>) -> Result<Vec<Resource>, QueryError> {
        Ok(self
            .all_resources(Kind::SshKey)?
            .into_iter()
            .filter(|k| matches!(&k.spec, Spec::SshKey { owner, .. } if *owner == user))
            .collect())
    }

    /// The customers or projects a caller may see, sorted; `None` when it may see all of
    /// that kind. Tenancy lists are small per caller, so they are assembled from its grants.
    fn visible_tenancy(&self, kind: Kind) -> Result<Option<Vec<Uuid>>, QueryError> {
        let caller = self.caller;
        if caller.staff || !matches!(kind, Kind::Customer | Kind::Project) {
            return Ok(None);
        }
        let mut ids: Vec<Uuid> = match kind {
            Kind::Customer => caller
                .owned_customers
                .iter()
                .copied()
                .chain(caller.project_roles.values().map(|(_, c)| *c))
                .collect(),
            _ => {
                let mut ids: Vec<Uuid> = caller.project_roles.keys().copied().collect();
                for customer in &caller.owned_customers {
                    ids.extend(all_with(self.snap, &index::projects_of_key(*customer))?);
                }
                ids
            }
        };
        ids.sort();
        ids.dedup();
        Ok(Some(ids))
    }
}

/// A page cut from a sorted list of ids, by the store's own paging rule.
fn page_of(ids: Vec<Uuid>, cursor: Option<Uuid>, limit: usize) -> Page {
    let total = ids.len() as u64;
    let from = paging::start(cursor);
    let rest = ids
        .into_iter()
        .map(|id| id.as_u128())
        .filter(|id| from.is_some_and(|f| *id >= f))
        .take(limit.saturating_add(1))
        .collect();
    paging::paged(rest, limit, total)
}
