//! The instance document (`Instance#to_api_document`, 17 keys) and the state names.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use super::ids;
use crate::domain::instance::Instance;
use crate::domain::lifecycle::{PowerState, State};

/// dcmgr's state of a core state. It had no error state: a failure ended terminated.
pub fn state_name(state: State) -> &'static str {
    match state {
        State::Provisioning => "scheduling",
        State::Starting => "starting",
        State::Running | State::Rebooting => "running",
        State::Stopping => "stopping",
        State::Stopped => "stopped",
        State::Resizing => "running",
        State::Deleting => "shuttingdown",
        State::Destroyed | State::Purged | State::Error => "terminated",
    }
}

fn state_of(inst: &Instance) -> &'static str {
    match (inst.state, inst.power_state) {
        (State::Resizing, PowerState::Off) => "stopped",
        (s, _) => state_name(s),
    }
}

/// Terminated in dcmgr's eyes: its NICs, groups and volumes are gone.
pub fn terminated(inst: &Instance) -> bool {
    state_of(inst) == "terminated"
}

/// The core states each dcmgr state name stands for.
pub fn states_named(name: &str) -> Vec<State> {
    State::ALL
        .into_iter()
        .filter(|s| state_name(*s) == name)
        .collect()
}

/// `Time#to_json`: `utc.iso8601`.
pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = wakame::Network)]
pub struct NetworkEntry {
    pub network_name: String,
    pub ipaddr: Vec<String>,
    pub dns_name: Option<String>,
    pub nat_network_name: Option<String>,
    pub nat_ipaddr: Vec<String>,
    pub nat_dns_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = wakame::Ipv4)]
pub struct Ipv4 {
    pub address: String,
    pub nat_address: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = wakame::Vif)]
pub struct Vif {
    pub vif_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<Ipv4>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = wakame::Volume)]
pub struct Volume {
    pub vol_id: String,
    pub guest_device_name: Option<String>,
    pub state: String,
}

/// The instance document.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = wakame::Instance)]
pub struct Document {
    /// `i-` and 8 characters.
    pub id: String,
    /// There are no host nodes here.
    pub host_node: Option<String>,
    pub cpu_cores: u32,
    /// MB.
    pub memory_size: u64,
    pub arch: &'static str,
    pub image_id: String,
    /// `YYYY-MM-DDTHH:MM:SSZ`.
    pub created_at: String,
    /// `scheduling`, `starting`, `running`, `stopping`, `stopped`, `shuttingdown`,
    /// `terminated`.
    pub state: &'static str,
    /// `online` while it runs, else `offline`.
    pub status: &'static str,
    pub ssh_key_pair: Option<String>,
    pub network: Vec<NetworkEntry>,
    /// Always empty: volumes are not modelled.
    pub volume: Vec<Volume>,
    pub security_groups: Vec<String>,
    pub vif: Vec<Vif>,
    pub hostname: String,
    /// 0 or 1, as the integer column was.
    pub ha_enabled: u8,
    pub instance_spec_id: String,
}

fn vif_id(inst: Uuid, network: Uuid) -> String {
    let d: [u8; 32] = Sha256::new()
        .chain_update(b"vif")
        .chain_update(inst.as_bytes())
        .chain_update(network.as_bytes())
        .finalize()
        .into();
    let hex: String = d[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{hex}", ids::VIF)
}

/// The document, given the ids of the instance's security groups.
pub fn document(inst: &Instance, security_groups: Vec<String>) -> Document {
    let s = &inst.spec;
    let gone = terminated(inst);
    let mut network = Vec::new();
    let mut vif = Vec::new();
    if !gone {
        for (i, net) in s.network_ids.iter().enumerate() {
            let ip = if i == 0 { s.ip_address.clone() } else { None };
            if let Some(ip) = &ip {
                network.push(NetworkEntry {
                    network_name: ids::show(ids::NETWORK, *net),
                    ipaddr: vec![ip.clone()],
                    dns_name: None,
                    nat_network_name: None,
                    nat_ipaddr: Vec::new(),
                    nat_dns_name: None,
                });
            }
            vif.push(Vif {
                vif_id: vif_id(inst.id, *net),
                ipv4: ip.map(|address| Ipv4 {
                    address,
                    nat_address: None,
                }),
            });
        }
    }
    let state = state_of(inst);
    Document {
        id: s.short_id.clone(),
        host_node: None,
        cpu_cores: s.sizing.vcpus,
        memory_size: s.sizing.memory_mb,
        arch: "x86_64",
        image_id: ids::show(ids::IMAGE, s.image_id),
        created_at: time(inst.created_at),
        state,
        status: if state == "running" {
            "online"
        } else {
            "offline"
        },
        ssh_key_pair: s.ssh_key_id.map(|k| ids::show(ids::SSH_KEY, k)),
        network,
        volume: Vec::new(),
        security_groups: if gone { Vec::new() } else { security_groups },
        vif,
        hostname: s.hostname.clone().unwrap_or_default(),
        ha_enabled: u8::from(s.attributes.get("ha_enabled").is_some_and(|v| v == "1")),
        instance_spec_id: ids::show(ids::SPEC, s.sizing.flavor_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_live_state_has_a_name_and_failures_read_terminated() {
        for s in State::ALL {
            assert!(states_named(state_name(s)).contains(&s));
        }
        assert_eq!(state_name(State::Error), "terminated");
        assert_eq!(state_name(State::Provisioning), "scheduling");
    }
}
