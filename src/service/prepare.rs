//! The preparation every surface shares before a write: resolve the catalog references a
//! request names, authorize the object named in a body (a project to create an instance
//! in, a customer to create a project for) and build the command. Catalog entries are
//! immutable, so this reads a snapshot outside the writer and keeps the writer lean.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::address::Network;
use super::{AddressProblem, Ledger, ServiceError, SizingProblem};
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

/// The vCPUs and memory an instance of a custom flavor asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    pub vcpus: u32,
    pub memory_mb: u64,
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
    /// An address on the first network; the writer assigns a free one when `None`.
    pub ip_address: Option<String>,
    /// Sizes for a custom flavor.
    pub sizes: Option<Sizes>,
    /// Free-form attributes the surface keeps with the instance.
    pub attributes: BTreeMap<String, String>,
    /// The host name is a lease unique in the customer (see
    /// [`super::WriteCommand::CreateInstances`]).
    pub hostname_lease: bool,
}

/// A catalog reference that must exist and be of the right kind.
fn lookup(snap: &dyn Snapshot, reference: Reference, id: Uuid) -> Result<Resource, ServiceError> {
    checked(snap.resource(id)?, reference, id)
}

fn checked(
    found: Option<Resource>,
    reference: Reference,
    id: Uuid,
) -> Result<Resource, ServiceError> {
    match found {
        Some(r) if Some(r.kind) == reference.catalog_kind() => Ok(r),
        _ => Err(ServiceError::UnknownReference { reference, id }),
    }
}

/// The catalog entries a create names, read at once (one round trip on PostgreSQL) and
/// handed out by id, so each is still checked in the order its errors take precedence.
struct Named(std::collections::HashMap<Uuid, Resource>);

impl Named {
    fn read(snap: &dyn Snapshot, ids: &[Uuid]) -> Result<Named, ServiceError> {
        let found = snap.resources(ids)?;
        Ok(Named(
            ids.iter()
                .zip(found)
                .filter_map(|(id, r)| r.map(|r| (*id, r)))
                .collect(),
        ))
    }

    fn get(&self, reference: Reference, id: Uuid) -> Result<Resource, ServiceError> {
        checked(self.0.get(&id).cloned(), reference, id)
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

/// An address asked for on a network, in its canonical spelling, if it lies inside it.
fn address_in(network: &Resource, address: &str) -> Result<String, ServiceError> {
    let catalog::Spec::Network { cidr, .. } = &network.spec else {
        return Err(ServiceError::Internal(format!(
            "network {} has no CIDR",
            network.id
        )));
    };
    Network::parse(cidr)
        .and_then(|n| n.canonical(address))
        .ok_or_else(|| ServiceError::Address {
            address: Some(address.to_string()),
            problem: AddressProblem::OutsideNetwork { cidr: cidr.clone() },
        })
}

/// The sizes an instance gets from its flavor: the flavor's own, or for a custom flavor
/// the ones asked for, up to the flavor's.
fn sizing(flavor: &Resource, sizes: Option<Sizes>) -> Result<Sizing, ServiceError> {
    let catalog::Spec::Flavor {
        vcpus,
        memory_mb,
        disk_gb,
        custom,
        ..
    } = &flavor.spec
    else {
        return Err(ServiceError::Internal(format!(
            "flavor {} has no sizes",
            flavor.id
        )));
    };
    let (vcpus, memory_mb) = match (custom, sizes) {
        (false, None) => (*vcpus, *memory_mb),
        (false, Some(_)) => return Err(ServiceError::Sizing(SizingProblem::NotCustom)),
        (true, None) => return Err(ServiceError::Sizing(SizingProblem::Required)),
        (true, Some(s))
            if s.vcpus == 0 || s.memory_mb == 0 || s.vcpus > *vcpus || s.memory_mb > *memory_mb =>
        {
            return Err(ServiceError::Sizing(SizingProblem::AboveFlavor {
                vcpus: *vcpus,
                memory_mb: *memory_mb,
            }));
        }
        (true, Some(s)) => (s.vcpus, s.memory_mb),
    };
    Ok(Sizing {
        flavor_id: flavor.id,
        vcpus,
        memory_mb,
        disk_gb: *disk_gb,
    })
}

/// Whether a flavor may be used in a project.
fn usable_in(flavor: &Resource, project: Uuid) -> Result<(), ServiceError> {
    match &flavor.spec {
        catalog::Spec::Flavor { projects, .. }
            if !projects.is_empty() && !projects.contains(&project) =>
        {
            Err(ServiceError::FlavorNotInProject {
                flavor: flavor.id,
                project,
            })
        }
        _ => Ok(()),
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
            let mut ids = vec![req.project_id, req.flavor_id, req.image_id];
            ids.extend(&req.network_ids);
            ids.extend(req.ssh_key_id);
            let named = Named::read(snap, &ids)?;
            let project = named.get(Reference::Project, req.project_id)?;
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
            let flavor = named.get(Reference::Flavor, req.flavor_id)?;
            usable_in(&flavor, req.project_id)?;
            let sizing = sizing(&flavor, req.sizes)?;
            named.get(Reference::Image, req.image_id)?;
            let mut networks = Vec::with_capacity(req.network_ids.len());
            for n in &req.network_ids {
                networks.push(named.get(Reference::Network, *n)?);
            }
            let ip_address = match (&req.ip_address, networks.first()) {
                (None, _) => None,
                (Some(_), None) => {
                    return Err(ServiceError::Address {
                        address: req.ip_address.clone(),
                        problem: AddressProblem::NoNetwork,
                    });
                }
                (Some(address), Some(network)) => Some(address_in(network, address)?),
            };
            if let Some(k) = req.ssh_key_id {
                named.get(Reference::SshKey, k)?;
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
                ip_address,
                attributes: req.attributes,
                created_by: None,
            })
        })
        .await
    }

    /// Prepares a new instance ([`Ledger::prepare_instance`]) and submits its creation.
    pub async fn create_instance(
        &self,
        caller: &Principal,
        meta: super::RequestMeta,
        req: InstanceRequest,
    ) -> Result<super::Reply, ServiceError> {
        let spec = self.prepare_instance(caller, req).await?;
        self.submit(super::WriteRequest {
            command: super::WriteCommand::CreateInstance(Box::new(spec)),
            meta,
            expected_version: None,
        })
        .await
    }

    /// Prepares one spec and submits the creation of `min` to `max` instances of it in one
    /// request ([`super::WriteCommand::CreateInstances`]).
    pub async fn create_instances(
        &self,
        caller: &Principal,
        meta: super::RequestMeta,
        req: InstanceRequest,
        (min, max): (usize, usize),
    ) -> Result<super::Reply, ServiceError> {
        let hostname_lease = req.hostname_lease;
        let spec = self.prepare_instance(caller, req).await?;
        self.submit(super::WriteRequest {
            command: super::WriteCommand::CreateInstances {
                spec: Box::new(spec),
                min,
                max,
                hostname_lease,
            },
            meta,
            expected_version: None,
        })
        .await
    }

    /// The sizes a resize to `flavor_id` gives the instance (in `project`).
    pub async fn flavor_sizing(
        &self,
        flavor_id: Uuid,
        project: Option<Uuid>,
        sizes: Option<Sizes>,
    ) -> Result<Sizing, ServiceError> {
        self.prepare(move |snap| {
            let flavor = lookup(snap, Reference::Flavor, flavor_id)?;
            if let Some(project) = project {
                usable_in(&flavor, project)?;
            }
            sizing(&flavor, sizes)
        })
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

    /// Checks that every reference a catalog resource names exists.
    pub async fn references_exist(
        &self,
        references: Vec<(Reference, Uuid)>,
    ) -> Result<(), ServiceError> {
        self.prepare(move |snap| {
            for (reference, id) in references {
                match reference {
                    Reference::User => {
                        if snap.user(id)?.is_none() {
                            return Err(ServiceError::UnknownReference { reference, id });
                        }
                    }
                    _ => {
                        lookup(snap, reference, id)?;
                    }
                }
            }
            Ok(())
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
