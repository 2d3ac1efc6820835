//! Filter-index keys: which keys an instance or resource carries and how list filters
//! translate into them. Backends store the keys next to the log and update them in the
//! append's own transaction.

use crate::domain::catalog::Resource;
use crate::domain::instance::Instance;
use crate::domain::lifecycle::State;
use uuid::Uuid;

/// An index key: a JSON array of strings, e.g. `["state","running"]`. JSON keeps
/// arbitrary user strings (tag keys with colons, names with quotes) unambiguous.
pub type IndexKey = Vec<u8>;

fn key(parts: &[&str]) -> IndexKey {
    serde_json::to_vec(parts).unwrap_or_default()
}

/// The key every listable instance carries; the unfiltered list walks it.
pub fn all_instances() -> IndexKey {
    key(&["all"])
}

/// A filter on the instance list. Each maps to exactly one index key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    State(State),
    ProjectId(Uuid),
    CustomerId(Uuid),
    Hostname(String),
    Name(String),
    SecurityGroup(String),
    FlavorId(Uuid),
    ImageId(Uuid),
    AvailabilityZone(String),
    Tag(String, String),
}

impl Filter {
    pub fn index_key(&self) -> IndexKey {
        match self {
            Filter::State(s) => key(&["state", s.as_str()]),
            Filter::ProjectId(id) => key(&["project_id", &id.to_string()]),
            Filter::CustomerId(id) => key(&["customer_id", &id.to_string()]),
            Filter::Hostname(h) => key(&["hostname", h]),
            Filter::Name(n) => key(&["name", n]),
            Filter::SecurityGroup(g) => key(&["security_group", g]),
            Filter::FlavorId(id) => key(&["flavor_id", &id.to_string()]),
            Filter::ImageId(id) => key(&["image_id", &id.to_string()]),
            Filter::AvailabilityZone(z) => key(&["availability_zone", z]),
            Filter::Tag(k, v) => key(&["tag", k, v]),
        }
    }
}

/// The index keys of an instance's current view. A purged instance has none: it is gone
/// from current views (its history stays in the log).
pub fn instance_keys(inst: &Instance) -> Vec<IndexKey> {
    if inst.state == State::Purged {
        return Vec::new();
    }
    let s = &inst.spec;
    let mut filters = vec![
        Filter::State(inst.state),
        Filter::ProjectId(s.project_id),
        Filter::CustomerId(s.customer_id),
        Filter::Name(s.name.clone()),
        Filter::FlavorId(s.sizing.flavor_id),
        Filter::ImageId(s.image_id),
    ];
    if let Some(h) = &s.hostname {
        filters.push(Filter::Hostname(h.clone()));
    }
    if let Some(z) = &s.availability_zone {
        filters.push(Filter::AvailabilityZone(z.clone()));
    }
    filters.extend(s.security_groups.iter().cloned().map(Filter::SecurityGroup));
    filters.extend(
        s.tags
            .iter()
            .map(|(k, v)| Filter::Tag(k.clone(), v.clone())),
    );
    let mut keys: Vec<IndexKey> = filters.iter().map(Filter::index_key).collect();
    keys.push(all_instances());
    keys.sort();
    keys.dedup();
    keys
}

/// The key that lists the resources of one catalog kind.
pub fn resource_kind_key(kind: crate::domain::catalog::Kind) -> IndexKey {
    key(&["kind", kind.as_str()])
}

pub fn resource_keys(res: &Resource) -> Vec<IndexKey> {
    vec![resource_kind_key(res.kind)]
}

/// A page of ids in creation order, with the cursor to continue after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub ids: Vec<Uuid>,
    pub next: Option<Uuid>,
    pub total: u64,
}
