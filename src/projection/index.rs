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

/// A key an instance is also counted under per state, and whether the pair's counts
/// keep their history (for as-of totals).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatePair {
    pub key: IndexKey,
    pub state: State,
    pub history: bool,
}

/// The filters whose keys are counted per state, and whether those counts keep their
/// history. Project pairs keep a count-history row per move, so as-of totals are lookups
/// too; customer pairs keep their current count only (two history rows more per state
/// change would take the lifecycle mix past 1 KiB per event), so their as-of totals
/// intersect.
fn counted_with_history(filter: &Filter) -> Option<bool> {
    match filter {
        Filter::ProjectId(_) => Some(true),
        Filter::CustomerId(_) => Some(false),
        _ => None,
    }
}

/// The pairs an instance is counted under: its project's key and its customer's, in its
/// state. A pair's count alone answers "a project's or customer's instances in a state"
/// (the list every tenant-scoped caller asks for) in one lookup, where the intersection
/// of two runs grows with the fleet. A backend may keep none (PostgreSQL does not).
pub fn instance_state_counts(inst: &Instance) -> Vec<StatePair> {
    if inst.state == State::Purged {
        return Vec::new();
    }
    let s = &inst.spec;
    [
        Filter::ProjectId(s.project_id),
        Filter::CustomerId(s.customer_id),
    ]
    .iter()
    .filter_map(|f| {
        counted_with_history(f).map(|history| StatePair {
            key: f.index_key(),
            state: inst.state,
            history,
        })
    })
    .collect()
}

/// The pair counted per state ([`instance_state_counts`]) whose count is the size of the
/// intersection of `keys`, when there is one: exactly a state key and a counted key, in
/// either order. Keys are recognised by rebuilding them ([`Filter::index_key`] is the
/// only place their format is written).
pub fn state_pair(keys: &[IndexKey]) -> Option<StatePair> {
    let state_of = |k: &IndexKey| {
        State::ALL
            .into_iter()
            .find(|s| Filter::State(*s).index_key() == *k)
    };
    let pair = |k: &IndexKey, state: State| {
        let parts: Vec<String> = serde_json::from_slice(k).ok()?;
        let id = Uuid::parse_str(parts.get(1)?).ok()?;
        let filter = [Filter::ProjectId(id), Filter::CustomerId(id)]
            .into_iter()
            .find(|f| f.index_key() == *k)?;
        counted_with_history(&filter).map(|history| StatePair {
            key: k.clone(),
            state,
            history,
        })
    };
    match keys {
        [a, b] => match (state_of(a), state_of(b)) {
            (Some(s), None) => pair(b, s),
            (None, Some(s)) => pair(a, s),
            _ => None,
        },
        _ => None,
    }
}

/// The key that holds an address on a network: one instance at a time.
pub fn address_key(network: Uuid, address: &str) -> IndexKey {
    key(&["address", &network.to_string(), address])
}

/// An instance holding a host name in its customer (a lease that lapses when the instance
/// is destroyed).
pub fn hostname_key(customer: Uuid, hostname: &str) -> IndexKey {
    key(&["hostname_of", &customer.to_string(), hostname])
}

/// The keys that make an instance's claims unique: its address on its first network
/// while it is not purged, and its host name in its customer while it is live. Kept
/// current only (no history), unlike the filter keys.
pub fn instance_unique_keys(inst: &Instance) -> Vec<IndexKey> {
    if inst.state == State::Purged {
        return Vec::new();
    }
    let s = &inst.spec;
    let mut keys = Vec::new();
    if let (Some(network), Some(address)) = (s.network_ids.first(), &s.ip_address) {
        keys.push(address_key(*network, address));
    }
    if let Some(hostname) = s.hostname.as_deref().filter(|_| inst.state.is_live()) {
        keys.push(hostname_key(s.customer_id, hostname));
    }
    keys.sort();
    keys
}

/// The key that lists the resources of one catalog kind.
pub fn resource_kind_key(kind: crate::domain::catalog::Kind) -> IndexKey {
    key(&["kind", kind.as_str()])
}

/// The resources of a kind carrying a name (names are unique for security groups only).
pub fn resource_name_key(kind: crate::domain::catalog::Kind, name: &str) -> IndexKey {
    key(&["name_of", kind.as_str(), name])
}

pub fn resource_keys(res: &Resource) -> Vec<IndexKey> {
    let mut keys = vec![
        resource_kind_key(res.kind),
        resource_name_key(res.kind, res.name()),
    ];
    if let crate::domain::catalog::Spec::Project { customer_id, .. } = &res.spec {
        keys.push(projects_of_key(*customer_id));
    }
    keys.extend(res.owners.iter().map(|u| owner_key(*u)));
    keys.extend(res.members.keys().map(|u| member_key(*u)));
    keys.sort();
    keys
}

/// The projects of a customer.
pub fn projects_of_key(customer: Uuid) -> IndexKey {
    key(&["projects_of", &customer.to_string()])
}

/// Customers a user owns.
pub fn owner_key(user: Uuid) -> IndexKey {
    key(&["owner", &user.to_string()])
}

/// Projects a user holds a role on.
pub fn member_key(user: Uuid) -> IndexKey {
    key(&["member", &user.to_string()])
}

pub fn users_key() -> IndexKey {
    key(&["kind", "user"])
}

pub fn username_key(username: &str) -> IndexKey {
    key(&["username", username])
}

/// Finds the user a token id belongs to.
pub fn token_key(token: Uuid) -> IndexKey {
    key(&["token", &token.to_string()])
}

pub fn user_keys(user: &crate::domain::identity::User) -> Vec<IndexKey> {
    let mut keys = vec![users_key(), username_key(&user.username)];
    keys.extend(user.tokens.keys().map(|t| token_key(*t)));
    keys.sort();
    keys
}

/// A page of ids in creation order, with the cursor to continue after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub ids: Vec<Uuid>,
    pub next: Option<Uuid>,
    pub total: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_state_with_a_project_or_customer_is_a_counted_pair() {
        let running = Filter::State(State::Running).index_key();
        let project = Filter::ProjectId(Uuid::from_u128(1)).index_key();
        let customer = Filter::CustomerId(Uuid::from_u128(2)).index_key();
        let name = Filter::Name("project_id".into()).index_key();
        let want = Some(StatePair {
            key: project.clone(),
            state: State::Running,
            history: true,
        });
        assert_eq!(state_pair(&[running.clone(), project.clone()]), want);
        assert_eq!(state_pair(&[project.clone(), running.clone()]), want);
        assert_eq!(
            state_pair(&[customer.clone(), running.clone()]),
            Some(StatePair {
                key: customer.clone(),
                state: State::Running,
                history: false,
            })
        );
        for keys in [
            vec![running.clone(), name],
            vec![running.clone(), Filter::State(State::Stopped).index_key()],
            vec![project.clone(), customer.clone()],
            vec![running.clone(), project, customer],
            vec![running],
            vec![],
        ] {
            assert_eq!(state_pair(&keys), None, "{keys:?}");
        }
    }
}
