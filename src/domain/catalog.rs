//! Catalog and tenancy resources that instances reference: customers, projects, flavors,
//! images, networks and SSH keys. Each is a one-event stream (`*Created`); they are
//! immutable once created, which lets handlers resolve references outside the writer.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Customer,
    Project,
    Flavor,
    Image,
    Network,
    SshKey,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Customer,
        Kind::Project,
        Kind::Flavor,
        Kind::Image,
        Kind::Network,
        Kind::SshKey,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Customer => "customer",
            Kind::Project => "project",
            Kind::Flavor => "flavor",
            Kind::Image => "image",
            Kind::Network => "network",
            Kind::SshKey => "ssh_key",
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
    },
    Network {
        name: String,
        cidr: String,
    },
    SshKey {
        name: String,
        public_key: String,
    },
    /// Customers and images carry only a name.
    Named {
        name: String,
    },
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
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            CatalogEvent::CustomerCreated(_) => Kind::Customer,
            CatalogEvent::ProjectCreated(_) => Kind::Project,
            CatalogEvent::FlavorCreated(_) => Kind::Flavor,
            CatalogEvent::ImageCreated(_) => Kind::Image,
            CatalogEvent::NetworkCreated(_) => Kind::Network,
            CatalogEvent::SshKeyCreated(_) => Kind::SshKey,
        }
    }

    pub fn spec(&self) -> &Spec {
        match self {
            CatalogEvent::CustomerCreated(s)
            | CatalogEvent::ProjectCreated(s)
            | CatalogEvent::FlavorCreated(s)
            | CatalogEvent::ImageCreated(s)
            | CatalogEvent::NetworkCreated(s)
            | CatalogEvent::SshKeyCreated(s) => s,
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
        }
    }
}

/// A resource as projected: its id, kind, attributes and creation time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    pub id: Uuid,
    pub kind: Kind,
    pub spec: Spec,
    pub created_at: DateTime<Utc>,
}

impl Resource {
    /// Catalog streams have exactly one event: creating one that exists is refused.
    pub fn decide_create(
        existing: Option<&Resource>,
        kind: Kind,
        spec: Spec,
    ) -> Result<CatalogEvent, super::DomainError> {
        match existing {
            Some(_) => Err(super::DomainError::AlreadyExists),
            None => Ok(CatalogEvent::created(kind, spec)),
        }
    }

    pub fn evolve(id: Uuid, event: &CatalogEvent, at: DateTime<Utc>) -> Resource {
        Resource {
            id,
            kind: event.kind(),
            spec: event.spec().clone(),
            created_at: at,
        }
    }

    pub fn name(&self) -> &str {
        match &self.spec {
            Spec::Project { name, .. }
            | Spec::Flavor { name, .. }
            | Spec::Network { name, .. }
            | Spec::SshKey { name, .. }
            | Spec::Named { name } => name,
        }
    }
}
