//! The instance as CloudMC showed it: the list attributes, the ones only a retrieve adds,
//! the Go client's names beside the documented ones (`templateId` with `imageId`), and
//! CloudStack's state names. MACs and NIC ids are derived from the instance and network
//! ids (there are no NICs here), stable across reads.

use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::catalog::Spec;
use crate::domain::instance::Instance;
use crate::domain::lifecycle::{Operation, PowerState, State};
use crate::query::{QueryError, Reader};

/// CloudStack's `VirtualMachine.State` of a core state.
pub fn state_name(state: State) -> &'static str {
    match state {
        State::Provisioning | State::Starting => "Starting",
        State::Running | State::Rebooting => "Running",
        State::Stopping => "Stopping",
        State::Stopped => "Stopped",
        State::Resizing => "Running",
        State::Deleting => "Stopping",
        State::Destroyed => "Destroyed",
        State::Purged => "Expunging",
        State::Error => "Error",
    }
}

/// The state an instance shows: a deletion that purges is `Expunging`, a resize of a
/// stopped instance leaves it `Stopped`.
pub fn state_of(inst: &Instance) -> &'static str {
    match (inst.state, inst.pending_operation, inst.power_state) {
        (State::Deleting, Some(Operation::Expunge), _) => "Expunging",
        (State::Resizing, _, PowerState::Off) => "Stopped",
        (s, _, _) => state_name(s),
    }
}

fn derived(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// A stable id derived from names (zones are names here; NICs do not exist).
pub fn derived_id(parts: &[&[u8]]) -> Uuid {
    let d = derived(parts);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&d[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = cloudmc::Nic)]
#[serde(rename_all = "camelCase")]
pub struct Nic {
    pub id: Uuid,
    pub is_default: bool,
    pub network_id: Uuid,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = cloudmc::PublicIp)]
#[serde(rename_all = "camelCase")]
pub struct PublicIp {
    pub id: Uuid,
    pub ip_address: String,
    pub purposes: Vec<String>,
    pub ports: Vec<String>,
}

/// The instance: the list attributes, and with `detail` the retrieve-only ones.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = cloudmc::Instance)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRepr {
    pub id: Uuid,
    pub name: String,
    pub affinity_group_ids: Vec<String>,
    pub compute_offering_id: Uuid,
    pub compute_offering_name: String,
    pub cpu_count: u32,
    pub hostname: String,
    pub image_id: Uuid,
    pub image_name: String,
    /// The Go client's and Terraform's name for the image.
    pub template_id: Uuid,
    pub template_name: String,
    pub ip_address: Option<String>,
    pub is_password_enabled: bool,
    pub is_ssh_key_enabled: bool,
    pub mac_address: Option<String>,
    #[serde(rename = "memoryInMB")]
    pub memory_in_mb: u64,
    pub network_id: Option<Uuid>,
    pub network_name: Option<String>,
    /// `Starting`, `Running`, `Stopping`, `Stopped`, `Destroyed`, `Expunging`, `Error`.
    pub state: &'static str,
    pub username: &'static str,
    /// There are no VPCs here.
    pub vpc_id: Option<Uuid>,
    pub vpc_name: Option<String>,
    pub zone_id: Option<Uuid>,
    pub zone_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_key_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iso_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nics: Option<Vec<Nic>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_ips: Option<Vec<PublicIp>>,
}

fn name_of(r: &Reader<'_>, id: Option<Uuid>) -> Result<Option<String>, QueryError> {
    let Some(id) = id else { return Ok(None) };
    Ok(r.resource_of(id)?.map(|res| match res.spec {
        Spec::Project { name, .. }
        | Spec::Flavor { name, .. }
        | Spec::Network { name, .. }
        | Spec::SshKey { name, .. }
        | Spec::SecurityGroup { name, .. }
        | Spec::Iso { name, .. }
        | Spec::Named { name } => name,
    }))
}

pub fn instance(r: &Reader<'_>, inst: &Instance, detail: bool) -> Result<InstanceRepr, QueryError> {
    let s = &inst.spec;
    let network = s.network_ids.first().copied();
    let image_name = name_of(r, Some(s.image_id))?.unwrap_or_default();
    let mac = network.map(|n| {
        let d = derived(&[b"mac", inst.id.as_bytes(), n.as_bytes()]);
        format!("02:00:{:02x}:{:02x}:{:02x}:{:02x}", d[0], d[1], d[2], d[3])
    });
    Ok(InstanceRepr {
        id: inst.id,
        name: s.name.clone(),
        affinity_group_ids: s
            .attributes
            .get("affinityGroupId")
            .cloned()
            .into_iter()
            .collect(),
        compute_offering_id: s.sizing.flavor_id,
        compute_offering_name: name_of(r, Some(s.sizing.flavor_id))?.unwrap_or_default(),
        cpu_count: s.sizing.vcpus,
        hostname: s.hostname.clone().unwrap_or_else(|| s.name.clone()),
        image_id: s.image_id,
        image_name: image_name.clone(),
        template_id: s.image_id,
        template_name: image_name,
        ip_address: s.ip_address.clone(),
        is_password_enabled: true,
        is_ssh_key_enabled: s.ssh_key_id.is_some(),
        mac_address: mac,
        memory_in_mb: s.sizing.memory_mb,
        network_id: network,
        network_name: name_of(r, network)?,
        state: state_of(inst),
        username: "cca-user",
        vpc_id: None,
        vpc_name: None,
        zone_id: s
            .availability_zone
            .as_deref()
            .map(|z| derived_id(&[b"zone", z.as_bytes()])),
        zone_name: s.availability_zone.clone(),
        ssh_key_name: name_of(r, s.ssh_key_id)?,
        iso_id: inst.iso_id,
        user_data: detail.then(|| s.user_data.clone().unwrap_or_default()),
        nics: detail.then(|| {
            network
                .map(|n| Nic {
                    id: derived_id(&[b"nic", inst.id.as_bytes(), n.as_bytes()]),
                    is_default: true,
                    network_id: n,
                })
                .into_iter()
                .collect()
        }),
        public_ips: detail.then(Vec::new),
    })
}
