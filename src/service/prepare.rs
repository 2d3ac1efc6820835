//! The preparation every surface shares before a write: resolve the catalog references a
//! request names, authorize the object named in a body (a project to create an instance
//! in, a customer to create a project for) and build the command. Catalog entries are
//! immutable, so this reads a snapshot outside the writer and keeps the writer lean.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::{Ledger, ServiceError};
use crate::authz::{self, Action, Decision, Object, Principal};
use crate::domain::catalog::{self, Kind, Resource};
use crate::domain::instance::{self, Sizing};
use crate::store::Snapshot;

/// What a request may refer to; each surface names the field its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    Customer,
    Project,
    Flavor,
    Image,
    Network,
    SshKey,
    User,
}

impl Reference {
    /// The kind of object, as named in messages.
    pub fn kind(self) -> &'static str {
        match self {
            Reference::Customer => Kind::Customer.as_str(),
            Reference::Project => Kind::Project.as_str(),
            Reference::Flavor => Kind::Flavor.as_str(),
            Reference::Image => Kind::Image.as_str(),
            Reference::Network => Kind::Network.as_str(),
            Reference::SshKey => Kind::SshKey.as_str(),
            Reference::User => "user",
        }
    }

    fn catalog_kind(self) -> Option<Kind> {
        Some(match self {
            Reference::Customer => Kind::Customer,
            Reference::Project => Kind::Project,
            Reference::Flavor => Kind::Flavor,
            Reference::Image => Kind::Image,
            Reference::Network => Kind::Network,
            Reference::SshKey => Kind::SshKey,
            Reference::User => return None,
        })
    }
}

/// A new instance as a surface asks for it: values validated, references unresolved.
#[derive(Debug, Clone, Default)]
pub struct InstanceRequest {
    pub name: String,
    pub project_id: Uuid,
    pub flavor_id: Uuid,
    pub image_id: Uuid,
    pub hostname: Option<String>,
    pub description: Option<String>,
    pub network_ids: Vec<Uuid>,
    pub ssh_key_id: Option<Uuid>,
    pub security_groups: Vec<String>,
    pub availability_zone: Option<String>,
    pub user_data: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// A catalog reference that must exist and be of the right kind.
fn lookup(snap: &dyn Snapshot, reference: Reference, id: Uuid) -> Result<Resource, ServiceError> {
    match snap.resource(id)? {
        Some(r) if Some(r.kind) == reference.catalog_kind() => Ok(r),
        _ => Err(ServiceError::UnknownReference { reference, id }),
    }
}

/// Applies the policy to an object named in a body: an object the caller may not know of
/// is an unknown reference, like a missing one.
fn authorize(
    caller: &Principal,
    action: Action,
    object: &Object,
    reference: Reference,
    id: Uuid,
) -> Result<(), ServiceError> {
    match authz::can(caller, action, object) {
        Decision::Allow => Ok(()),
        Decision::Forbidden => Err(ServiceError::Forbidden(action)),
        Decision::Hidden => Err(ServiceError::UnknownReference { reference, id }),
    }
}

fn sizing(flavor: &Resource) -> Result<Sizing, ServiceError> {
    match &flavor.spec {
        catalog::Spec::Flavor {
            vcpus,
            memory_mb,
            disk_gb,
            ..
        } => Ok(Sizing {
            flavor_id: flavor.id,
            vcpus: *vcpus,
            memory_mb: *memory_mb,
            disk_gb: *disk_gb,
        }),
        _ => Err(ServiceError::Internal(format!(
            "flavor {} has no sizes",
            flavor.id
        ))),
    }
}

impl Ledger {
    /// Runs a preparation against one snapshot on the blocking pool.
    async fn prepare<T, F>(&self, f: F) -> Result<T, ServiceError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Snapshot) -> Result<T, ServiceError> + Send + 'static,
    {
        let store = self.store().clone();
        tokio::task::spawn_blocking(move || {
            let snap = store.read()?;
            f(&*snap)
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("a preparation did not finish: {e}")))?
    }

    /// Resolves a new instance's references as `caller` may see them and checks that it
    /// may create instances in the project. The short id is the writer's to assign.
    pub async fn prepare_instance(
        &self,
        caller: &Principal,
        req: InstanceRequest,
    ) -> Result<instance::Spec, ServiceError> {
        let caller = caller.clone();
        self.prepare(move |snap| {
            let project = lookup(snap, Reference::Project, req.project_id)?;
            let catalog::Spec::Project { customer_id, .. } = project.spec else {
                return Err(ServiceError::Internal("project without customer".into()));
            };
            let object = Object::Project {
                id: req.project_id,
                customer: customer_id,
            };
            authorize(
                &caller,
                Action::CreateInstance,
                &object,
                Reference::Project,
                req.project_id,
            )?;
            let sizing = sizing(&lookup(snap, Reference::Flavor, req.flavor_id)?)?;
            lookup(snap, Reference::Image, req.image_id)?;
            for n in &req.network_ids {
                lookup(snap, Reference::Network, *n)?;
            }
            if let Some(k) = req.ssh_key_id {
                lookup(snap, Reference::SshKey, k)?;
            }
            Ok(instance::Spec {
                short_id: String::new(),
                name: req.name,
                hostname: req.hostname,
                description: req.description,
                project_id: req.project_id,
                customer_id,
                sizing,
                image_id: req.image_id,
                network_ids: req.network_ids,
                ssh_key_id: req.ssh_key_id,
                security_groups: req.security_groups,
                availability_zone: req.availability_zone,
                user_data: req.user_data,
                tags: req.tags,
            })
        })
        .await
    }

    /// The sizes of a flavor, for a resize.
    pub async fn flavor_sizing(&self, flavor_id: Uuid) -> Result<Sizing, ServiceError> {
        self.prepare(move |snap| sizing(&lookup(snap, Reference::Flavor, flavor_id)?))
            .await
    }

    /// Checks that the customer of a new project exists for `caller` and that it may
    /// create projects there.
    pub async fn prepare_project(
        &self,
        caller: &Principal,
        name: String,
        customer_id: Uuid,
    ) -> Result<catalog::Spec, ServiceError> {
        let caller = caller.clone();
        self.prepare(move |snap| {
            lookup(snap, Reference::Customer, customer_id)?;
            authorize(
                &caller,
                Action::CreateProject,
                &Object::Customer { id: customer_id },
                Reference::Customer,
                customer_id,
            )?;
            Ok(catalog::Spec::Project { name, customer_id })
        })
        .await
    }

    /// Checks that a user a grant names exists.
    pub async fn user_must_exist(&self, user_id: Uuid) -> Result<(), ServiceError> {
        self.prepare(move |snap| match snap.user(user_id)? {
            Some(_) => Ok(()),
            None => Err(ServiceError::UnknownReference {
                reference: Reference::User,
                id: user_id,
            }),
        })
        .await
    }
}
