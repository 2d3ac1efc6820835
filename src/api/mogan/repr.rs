//! How Mogan showed things: the seed's instance, the 2017 server, the states summary and
//! the flavor, with their links, Python-style timestamps, and `fields` selection. Ports
//! (Neutron's) do not exist here: each (instance, network) pair gets a port id, a MAC and
//! a subnet id derived from the two ids, stable across reads, so the shape is the one a
//! client parses.

use std::collections::BTreeMap;

use chrono::{DateTime, Timelike, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use super::status;
use super::{MOUNT, Spelling};
use crate::domain::catalog::{Resource, Spec};
use crate::domain::instance::Instance;

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = mogan::Link)]
pub struct Link {
    pub href: String,
    /// `self` (under `/v1`) or `bookmark` (without it).
    pub rel: &'static str,
}

/// `self` and `bookmark` links to one object.
pub fn links(origin: &str, collection: &str, id: impl std::fmt::Display) -> Vec<Link> {
    vec![
        Link {
            href: format!("{origin}{MOUNT}/{collection}/{id}"),
            rel: "self",
        },
        Link {
            href: format!("{origin}{}/{collection}/{id}", super::BARE_MOUNT),
            rel: "bookmark",
        },
    ]
}

/// `datetime.isoformat()` of an aware UTC time: microseconds unless they are zero.
pub fn iso(t: DateTime<Utc>) -> String {
    if t.nanosecond() / 1000 == 0 {
        t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
    }
}

/// Keystone ids are 32 hex digits; the bootstrap principal is `admin`.
pub fn keystone_id(raw: &str) -> String {
    Uuid::try_parse(raw)
        .map(|u| u.simple().to_string())
        .unwrap_or_else(|_| raw.to_string())
}

fn derived(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn derived_uuid(parts: &[&[u8]]) -> Uuid {
    let d = derived(parts);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&d[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

fn port_id(inst: Uuid, network: Uuid) -> Uuid {
    derived_uuid(&[b"port", inst.as_bytes(), network.as_bytes()])
}

fn subnet_id(network: Uuid) -> Uuid {
    derived_uuid(&[b"subnet", network.as_bytes()])
}

/// OpenStack's `fa:16:3e` prefix, then three bytes of the port.
fn mac(inst: Uuid, network: Uuid) -> String {
    let d = derived(&[b"mac", inst.as_bytes(), network.as_bytes()]);
    format!("fa:16:3e:{:02x}:{:02x}:{:02x}", d[0], d[1], d[2])
}

/// The address on each network: the first network holds the instance's address.
fn addresses_of(inst: &Instance) -> Vec<(Uuid, Option<String>)> {
    inst.spec
        .network_ids
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let ip = if i == 0 {
                inst.spec.ip_address.clone()
            } else {
                None
            };
            (*n, ip)
        })
        .collect()
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = mogan::FixedIp)]
pub struct FixedIp {
    pub subnet_id: Uuid,
    pub ip_address: String,
}

/// One port of `network_info`: the code's `fixed_ips` list, and the seed sample's
/// single `fixed_ip`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = mogan::Port)]
pub struct Port {
    pub network: Uuid,
    pub mac_address: String,
    pub fixed_ip: Option<String>,
    pub fixed_ips: Vec<FixedIp>,
}

/// The seed-spelling instance (with the mature `launched_at` and `extra`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = mogan::Instance)]
pub struct InstanceRepr {
    pub uuid: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub project_id: String,
    pub user_id: Option<String>,
    /// `building`, `active`, `powering-on`, `powering-off`, `rebooting`, `stopped`,
    /// `rebuilding`, `deleting`, `error`.
    pub status: &'static str,
    /// `power on`, `power off`, or null before the first deployment.
    pub power_state: Option<&'static str>,
    /// Never set (the seed did not either).
    pub task_state: Option<String>,
    /// Set while a power change is pending.
    pub target_power_state: Option<&'static str>,
    pub availability_zone: Option<String>,
    pub instance_type_uuid: Uuid,
    pub image_uuid: Uuid,
    /// Ports by id.
    pub network_info: BTreeMap<String, Port>,
    pub links: Vec<Link>,
    pub launched_at: Option<String>,
    pub extra: BTreeMap<String, String>,
    pub created_at: String,
    /// Null until the instance first changes.
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = mogan::Address)]
pub struct Address {
    pub addr: String,
    /// Always `fixed`: there are no floating addresses here.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// What an error status carries.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = mogan::Fault)]
pub struct FaultRepr {
    pub code: u16,
    pub message: String,
    pub detail: String,
}

/// The server of September 2017: the 19 keys of its detail view, and `fault` in error.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = mogan::Server)]
pub struct ServerRepr {
    pub uuid: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub project_id: String,
    pub user_id: Option<String>,
    pub status: &'static str,
    pub power_state: Option<&'static str>,
    pub availability_zone: Option<String>,
    pub flavor_uuid: Uuid,
    pub image_uuid: Uuid,
    /// Addresses by network id.
    pub addresses: BTreeMap<String, Vec<Address>>,
    pub links: Vec<Link>,
    pub launched_at: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub key_name: Option<String>,
    /// Always empty: disk partitions are not modelled here.
    pub partitions: BTreeMap<String, u64>,
    pub locked: bool,
    pub created_at: String,
    pub updated_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultRepr>,
}

/// `GET states`: the seed's two fields and the mature `status` and `locked`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = mogan::States)]
pub struct StatesRepr {
    pub power_state: Option<&'static str>,
    pub target_power_state: Option<&'static str>,
    pub status: &'static str,
    pub locked: bool,
}

fn updated(inst: &Instance) -> Option<String> {
    (inst.updated_at != inst.created_at).then(|| iso(inst.updated_at))
}

pub fn instance(origin: &str, inst: &Instance) -> InstanceRepr {
    let network_info = addresses_of(inst)
        .into_iter()
        .map(|(net, ip)| {
            let port = Port {
                network: net,
                mac_address: mac(inst.id, net),
                fixed_ip: ip.clone(),
                fixed_ips: ip
                    .map(|ip_address| FixedIp {
                        subnet_id: subnet_id(net),
                        ip_address,
                    })
                    .into_iter()
                    .collect(),
            };
            (port_id(inst.id, net).to_string(), port)
        })
        .collect();
    InstanceRepr {
        uuid: inst.id,
        name: inst.spec.name.clone(),
        description: inst.spec.description.clone(),
        project_id: inst.spec.project_id.simple().to_string(),
        user_id: inst.spec.created_by.as_deref().map(keystone_id),
        status: status::status(inst.state),
        power_state: status::power_state(inst),
        task_state: None,
        target_power_state: status::target_power_state(inst),
        availability_zone: inst.spec.availability_zone.clone(),
        instance_type_uuid: inst.spec.sizing.flavor_id,
        image_uuid: inst.spec.image_id,
        network_info,
        links: links(origin, "instances", inst.id),
        launched_at: inst.launched_at.map(iso),
        extra: inst.spec.attributes.clone(),
        created_at: iso(inst.created_at),
        updated_at: updated(inst),
    }
}

pub fn server(origin: &str, inst: &Instance, key_name: Option<String>) -> ServerRepr {
    let addresses = addresses_of(inst)
        .into_iter()
        .map(|(net, ip)| {
            let list = ip
                .map(|addr| Address {
                    addr,
                    kind: "fixed",
                })
                .into_iter()
                .collect();
            (net.to_string(), list)
        })
        .collect();
    let fault = match (inst.state, &inst.fault) {
        (crate::domain::lifecycle::State::Error, Some(f)) => Some(FaultRepr {
            code: 500,
            message: f.reason.clone(),
            detail: format!("{} failed at {}", f.operation, iso(f.at)),
        }),
        _ => None,
    };
    ServerRepr {
        uuid: inst.id,
        name: inst.spec.name.clone(),
        description: inst.spec.description.clone(),
        project_id: inst.spec.project_id.simple().to_string(),
        user_id: inst.spec.created_by.as_deref().map(keystone_id),
        status: status::status(inst.state),
        power_state: status::power_state(inst),
        availability_zone: inst.spec.availability_zone.clone(),
        flavor_uuid: inst.spec.sizing.flavor_id,
        image_uuid: inst.spec.image_id,
        addresses,
        links: links(origin, "servers", inst.id),
        launched_at: inst.launched_at.map(iso),
        metadata: inst.spec.attributes.clone(),
        key_name,
        partitions: BTreeMap::new(),
        locked: inst.locked.is_some(),
        created_at: iso(inst.created_at),
        updated_at: updated(inst),
        fault,
    }
}

pub fn states(inst: &Instance) -> StatesRepr {
    StatesRepr {
        power_state: status::power_state(inst),
        target_power_state: status::target_power_state(inst),
        status: status::status(inst.state),
        locked: inst.locked.is_some(),
    }
}

/// Either spelling's object as JSON.
pub fn object(
    spelling: Spelling,
    origin: &str,
    inst: &Instance,
    key_name: Option<String>,
) -> Value {
    let v = match spelling {
        Spelling::Instances => serde_json::to_value(instance(origin, inst)),
        Spelling::Servers => serde_json::to_value(server(origin, inst, key_name)),
    };
    v.unwrap_or(Value::Null)
}

/// What a list shows without `fields`.
pub const DEFAULT_FIELDS: &[&str] = &["uuid", "name", "description", "status", "power_state"];

/// `?fields=a,b`: lower-cased, duplicates dropped, unknown names ignored; `links` always.
pub fn parse_fields(raw: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in raw.split(',').map(|f| f.trim().to_ascii_lowercase()) {
        if !f.is_empty() && !out.contains(&f) {
            out.push(f);
        }
    }
    out
}

/// Keeps only the named fields (and `links`).
pub fn select(value: Value, fields: &[impl AsRef<str>]) -> Value {
    match value {
        Value::Object(map) => {
            let kept: Map<String, Value> = map
                .into_iter()
                .filter(|(k, _)| k == "links" || fields.iter().any(|f| f.as_ref() == k))
                .collect();
            Value::Object(kept)
        }
        other => other,
    }
}

/// A flavor (2017): what everybody sees, and what staff see besides.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = mogan::Flavor)]
pub struct FlavorRepr {
    pub uuid: Uuid,
    pub name: String,
    pub description: Option<String>,
    /// Usable in every project (not limited to some).
    pub is_public: bool,
    pub links: Vec<Link>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// `VCPU`, `MEMORY_MB`, `DISK_GB`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<BTreeMap<String, u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_aggregates: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Option<String>>,
}

pub fn flavor(origin: &str, r: &Resource, full: bool) -> Option<FlavorRepr> {
    let Spec::Flavor {
        name,
        vcpus,
        memory_mb,
        disk_gb,
        projects,
        ..
    } = &r.spec
    else {
        return None;
    };
    let resources = BTreeMap::from([
        ("VCPU".to_string(), *vcpus as u64),
        ("MEMORY_MB".to_string(), *memory_mb),
        ("DISK_GB".to_string(), *disk_gb),
    ]);
    Some(FlavorRepr {
        uuid: r.id,
        name: name.clone(),
        description: None,
        is_public: projects.is_empty(),
        links: links(origin, "flavors", r.id),
        disabled: full.then_some(false),
        resources: full.then_some(resources),
        resource_aggregates: full.then(BTreeMap::new),
        created_at: full.then(|| iso(r.created_at)),
        updated_at: full.then_some(None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_python_isoformat_of_aware_utc() {
        let t = DateTime::parse_from_rfc3339("2016-09-27T02:37:21.966342Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(iso(t), "2016-09-27T02:37:21.966342+00:00");
        let whole = DateTime::parse_from_rfc3339("2016-09-27T02:37:21Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(iso(whole), "2016-09-27T02:37:21+00:00");
    }

    #[test]
    fn derived_port_ids_are_stable_and_distinct_per_network() {
        let (i, a, b) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        assert_eq!(port_id(i, a), port_id(i, a));
        assert_ne!(port_id(i, a), port_id(i, b));
        assert_eq!(port_id(i, a).get_version_num(), 4);
        assert!(mac(i, a).starts_with("fa:16:3e:"));
    }

    #[test]
    fn fields_are_lowercased_deduplicated_and_links_always_kept() {
        let f = parse_fields("Name, uuid,name,,bogus");
        assert_eq!(f, vec!["name", "uuid", "bogus"]);
        let v = serde_json::json!({"uuid": 1, "name": 2, "status": 3, "links": []});
        assert_eq!(
            select(v, &f),
            serde_json::json!({"uuid": 1, "name": 2, "links": []})
        );
    }
}
