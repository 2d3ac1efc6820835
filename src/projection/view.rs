//! The public shapes of the current views, derived from the folded state.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::catalog::{Resource, Spec};
use crate::domain::instance::{Fault, Instance};
use crate::domain::lifecycle::{PowerState, State, TargetPower};

/// The instance view of the native API.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema, ToSchema)]
pub struct InstanceView {
    pub id: Uuid,
    pub short_id: String,
    pub name: String,
    pub hostname: Option<String>,
    pub description: Option<String>,
    pub project_id: Uuid,
    pub customer_id: Uuid,
    pub flavor_id: Uuid,
    pub vcpus: u32,
    pub memory_mb: u64,
    pub disk_gb: u64,
    pub image_id: Uuid,
    pub network_ids: Vec<Uuid>,
    pub ssh_key_id: Option<Uuid>,
    pub security_groups: Vec<String>,
    pub availability_zone: Option<String>,
    /// The private address on the first network.
    pub ip_address: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub attributes: BTreeMap<String, String>,
    pub state: State,
    pub power_state: PowerState,
    pub target_power_state: Option<TargetPower>,
    /// Locked instances refuse power and delete operations to all but staff.
    pub locked: bool,
    /// When provisioning first completed.
    pub launched_at: Option<DateTime<Utc>>,
    /// The last failure a driver reported.
    pub fault: Option<Fault>,
    /// The ISO attached, if any.
    pub iso_id: Option<Uuid>,
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Instance> for InstanceView {
    fn from(i: &Instance) -> InstanceView {
        let s = &i.spec;
        InstanceView {
            id: i.id,
            short_id: s.short_id.clone(),
            name: s.name.clone(),
            hostname: s.hostname.clone(),
            description: s.description.clone(),
            project_id: s.project_id,
            customer_id: s.customer_id,
            flavor_id: s.sizing.flavor_id,
            vcpus: s.sizing.vcpus,
            memory_mb: s.sizing.memory_mb,
            disk_gb: s.sizing.disk_gb,
            image_id: s.image_id,
            network_ids: s.network_ids.clone(),
            ssh_key_id: s.ssh_key_id,
            security_groups: s.security_groups.clone(),
            availability_zone: s.availability_zone.clone(),
            ip_address: s.ip_address.clone(),
            tags: s.tags.clone(),
            attributes: s.attributes.clone(),
            state: i.state,
            power_state: i.power_state,
            target_power_state: i.target_power_state,
            locked: i.locked.is_some(),
            launched_at: i.launched_at,
            fault: i.fault.clone(),
            iso_id: i.iso_id,
            version: i.version,
            created_at: i.created_at,
            updated_at: i.updated_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PowerView {
    pub power_state: PowerState,
    pub target_power_state: Option<TargetPower>,
}

impl From<&Instance> for PowerView {
    fn from(i: &Instance) -> PowerView {
        PowerView {
            power_state: i.power_state,
            target_power_state: i.target_power_state,
        }
    }
}

/// A catalog resource: its id, its kind's attributes flattened, and its creation time.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ResourceView {
    pub id: Uuid,
    #[serde(flatten)]
    pub spec: Spec,
    pub created_at: DateTime<Utc>,
}

impl From<&Resource> for ResourceView {
    fn from(r: &Resource) -> ResourceView {
        ResourceView {
            id: r.id,
            spec: r.spec.clone(),
            created_at: r.created_at,
        }
    }
}
