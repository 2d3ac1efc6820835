//! Catalog and tenancy resources that instances reference: customers, projects, flavors,
//! images, networks and SSH keys. Each stream starts with `*Created`; its attributes never
//! change afterwards (which lets handlers resolve references outside the writer). Customer
//! and project streams also carry the grants: customer owners and project roles.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::DomainError;
use super::identity::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Customer,
    Project,
    Flavor,
    Image,
    Network,
    SshKey,
    SecurityGroup,
    /// A CD image instances attach (installers, drivers, tools).
    Iso,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Customer,
        Kind::Project,
        Kind::Flavor,
        Kind::Image,
        Kind::Network,
        Kind::SshKey,
        Kind::SecurityGroup,
        Kind::Iso,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Customer => "customer",
            Kind::Project => "project",
            Kind::Flavor => "flavor",
            Kind::Image => "image",
            Kind::Network => "network",
            Kind::SshKey => "ssh_key",
            Kind::SecurityGroup => "security_group",
            Kind::Iso => "iso",
        }
    }
}

/// The kind-specific attributes of a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(untagged)]
pub enum Spec {
    Project {
        name: String,
        customer_id: Uuid,
    },
    Flavor {
        name: String,
        vcpus: u32,
        memory_mb: u64,
        disk_gb: u64,
        /// The projects it may be used in; empty: every project.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        projects: Vec<Uuid>,
        /// A custom flavor: each instance names its own vCPUs and memory (these are the
        /// most it may ask for).
        #[serde(default, skip_serializing_if = "is_false")]
        custom: bool,
    },
    Network {
        name: String,
        cidr: String,
    },
    SshKey {
        name: String,
        public_key: String,
        /// The user it belongs to, when it is somebody's own key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<Uuid>,
    },
    /// A named rule set instances refer to by name: traffic allowed in.
    SecurityGroup {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        protocol: String,
        from_port: u16,
        to_port: u16,
        ip_range: String,
    },
    /// An ISO: bootable ones install systems, the others are attached to running ones.
    Iso {
        name: String,
        bootable: bool,
    },
    /// Customers and images carry only a name.
    Named {
        name: String,
    },
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The events of catalog streams. The payload is the resource's attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum CatalogEvent {
    CustomerCreated(Spec),
    ProjectCreated(Spec),
    FlavorCreated(Spec),
    ImageCreated(Spec),
    NetworkCreated(Spec),
    SshKeyCreated(Spec),
    SecurityGroupCreated(Spec),
    IsoCreated(Spec),
    CustomerOwnerAdded {
        user_id: Uuid,
    },
    CustomerOwnerRemoved {
        user_id: Uuid,
    },
    /// Adds a member, or changes the role of one.
    ProjectMemberAdded {
        user_id: Uuid,
        role: Role,
    },
    ProjectMemberRemoved {
        user_id: Uuid,
    },
}

impl CatalogEvent {
    pub fn created(kind: Kind, spec: Spec) -> CatalogEvent {
        match kind {
            Kind::Customer => CatalogEvent::CustomerCreated(spec),
            Kind::Project => CatalogEvent::ProjectCreated(spec),
            Kind::Flavor => CatalogEvent::FlavorCreated(spec),
            Kind::Image => CatalogEvent::ImageCreated(spec),
            Kind::Network => CatalogEvent::NetworkCreated(spec),
            Kind::SshKey => CatalogEvent::SshKeyCreated(spec),
            Kind::SecurityGroup => CatalogEvent::SecurityGroupCreated(spec),
            Kind::Iso => CatalogEvent::IsoCreated(spec),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            CatalogEvent::CustomerCreated(_)
            | CatalogEvent::CustomerOwnerAdded { .. }
            | CatalogEvent::CustomerOwnerRemoved { .. } => Kind::Customer,
            CatalogEvent::ProjectCreated(_)
            | CatalogEvent::ProjectMemberAdded { .. }
            | CatalogEvent::ProjectMemberRemoved { .. } => Kind::Project,
            CatalogEvent::FlavorCreated(_) => Kind::Flavor,
            CatalogEvent::ImageCreated(_) => Kind::Image,
            CatalogEvent::NetworkCreated(_) => Kind::Network,
            CatalogEvent::SshKeyCreated(_) => Kind::SshKey,
            CatalogEvent::SecurityGroupCreated(_) => Kind::SecurityGroup,
            CatalogEvent::IsoCreated(_) => Kind::Iso,
        }
    }

    /// The attributes of a `*Created` event.
    pub fn spec(&self) -> Option<&Spec> {
        match self {
            CatalogEvent::CustomerCreated(s)
            | CatalogEvent::ProjectCreated(s)
            | CatalogEvent::FlavorCreated(s)
            | CatalogEvent::ImageCreated(s)
            | CatalogEvent::NetworkCreated(s)
            | CatalogEvent::SshKeyCreated(s)
            | CatalogEvent::SecurityGroupCreated(s)
            | CatalogEvent::IsoCreated(s) => Some(s),
            _ => None,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            CatalogEvent::CustomerCreated(_) => "CustomerCreated",
            CatalogEvent::ProjectCreated(_) => "ProjectCreated",
            CatalogEvent::FlavorCreated(_) => "FlavorCreated",
            CatalogEvent::ImageCreated(_) => "ImageCreated",
            CatalogEvent::NetworkCreated(_) => "NetworkCreated",
            CatalogEvent::SshKeyCreated(_) => "SshKeyCreated",
            CatalogEvent::SecurityGroupCreated(_) => "SecurityGroupCreated",
            CatalogEvent::IsoCreated(_) => "IsoCreated",
            CatalogEvent::CustomerOwnerAdded { .. } => "CustomerOwnerAdded",
            CatalogEvent::CustomerOwnerRemoved { .. } => "CustomerOwnerRemoved",
            CatalogEvent::ProjectMemberAdded { .. } => "ProjectMemberAdded",
            CatalogEvent::ProjectMemberRemoved { .. } => "ProjectMemberRemoved",
        }
    }
}

/// A change of grants on a customer or project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    AddOwner(Uuid),
    RemoveOwner(Uuid),
    AddMember(Uuid, Role),
    RemoveMember(Uuid),
}

/// A resource as projected: its id, kind, attributes, creation time and grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    pub id: Uuid,
    pub kind: Kind,
    pub spec: Spec,
    pub created_at: DateTime<Utc>,
    /// Customers: the users who own it.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub owners: BTreeSet<Uuid>,
    /// Projects: members and their roles.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub members: BTreeMap<Uuid, Role>,
}

impl Resource {
    /// Creating a resource that exists is refused.
    pub fn decide_create(
        existing: Option<&Resource>,
        kind: Kind,
        spec: Spec,
    ) -> Result<CatalogEvent, DomainError> {
        match existing {
            Some(_) => Err(DomainError::AlreadyExists),
            None => Ok(CatalogEvent::created(kind, spec)),
        }
    }

    /// Grants are idempotent: adding what is there appends nothing; removing what is not
    /// there is refused.
    pub fn decide_grant(&self, grant: &Grant) -> Result<Vec<CatalogEvent>, DomainError> {
        let wrong_kind = |needed: Kind| self.kind != needed;
        match grant {
            Grant::AddOwner(_) | Grant::RemoveOwner(_) if wrong_kind(Kind::Customer) => {
                Err(DomainError::NotFound)
            }
            Grant::AddMember(..) | Grant::RemoveMember(_) if wrong_kind(Kind::Project) => {
                Err(DomainError::NotFound)
            }
            Grant::AddOwner(u) if self.owners.contains(u) => Ok(vec![]),
            Grant::AddOwner(u) => Ok(vec![CatalogEvent::CustomerOwnerAdded { user_id: *u }]),
            Grant::RemoveOwner(u) if !self.owners.contains(u) => Err(DomainError::NoSuchGrant),
            Grant::RemoveOwner(u) => Ok(vec![CatalogEvent::CustomerOwnerRemoved { user_id: *u }]),
            Grant::AddMember(u, role) if self.members.get(u) == Some(role) => Ok(vec![]),
            Grant::AddMember(u, role) => Ok(vec![CatalogEvent::ProjectMemberAdded {
                user_id: *u,
                role: *role,
            }]),
            Grant::RemoveMember(u) if !self.members.contains_key(u) => {
                Err(DomainError::NoSuchGrant)
            }
            Grant::RemoveMember(u) => Ok(vec![CatalogEvent::ProjectMemberRemoved { user_id: *u }]),
        }
    }

    pub fn evolve(
        state: Option<Resource>,
        id: Uuid,
        event: &CatalogEvent,
        at: DateTime<Utc>,
    ) -> Resource {
        if let Some(spec) = event.spec() {
            return Resource {
                id,
                kind: event.kind(),
                spec: spec.clone(),
                created_at: at,
                owners: BTreeSet::new(),
                members: BTreeMap::new(),
            };
        }
        // Grants on a stream without its `*Created` cannot be decided; fold them onto a
        // placeholder so a damaged log still replays (verify reports the damage).
        let mut res = state.unwrap_or_else(|| Resource {
            id,
            kind: event.kind(),
            spec: Spec::Named {
                name: String::new(),
            },
            created_at: at,
            owners: BTreeSet::new(),
            members: BTreeMap::new(),
        });
        match event {
            CatalogEvent::CustomerOwnerAdded { user_id } => {
                res.owners.insert(*user_id);
            }
            CatalogEvent::CustomerOwnerRemoved { user_id } => {
                res.owners.remove(user_id);
            }
            CatalogEvent::ProjectMemberAdded { user_id, role } => {
                res.members.insert(*user_id, *role);
            }
            CatalogEvent::ProjectMemberRemoved { user_id } => {
                res.members.remove(user_id);
            }
            _ => {}
        }
        res
    }

    pub fn name(&self) -> &str {
        match &self.spec {
            Spec::Project { name, .. }
            | Spec::Flavor { name, .. }
            | Spec::Network { name, .. }
            | Spec::SshKey { name, .. }
            | Spec::SecurityGroup { name, .. }
            | Spec::Iso { name, .. }
            | Spec::Named { name } => name,
        }
    }
}
