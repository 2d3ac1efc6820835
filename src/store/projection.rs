//! The projections kept in the append's transaction, independent of the backend: how one
//! event changes the current views, the filter indexes and their counts, the history
//! intervals, per-version views, the time index and the fleet state hash. Each backend
//! supplies its tables through [`ProjectionTables`]; the logic is written once so both
//! backends (and `verify`'s rebuild) produce the same projections from the same log.

use uuid::Uuid;

use super::StoreError;
use super::compact;
use super::envelope::{Envelope, Payload};
use crate::domain::catalog::Resource;
use crate::domain::identity;
use crate::domain::instance::{self, Instance};
use crate::domain::lifecycle::State;
use crate::projection::IndexKey;
use crate::projection::index::{self, StatePair};

/// The version of the projection logic. Bump it whenever the same log would project
/// differently (new keys, new tables, a changed view): stores built by an older version
/// are rebuilt at start-up ([`super::ensure_current_projections`]).
/// 1: up to the restructuring; 2: resource name keys, address keys; 3: launch time and
/// last fault in the instance state; 4: host name leases; 5: instance keys counted in
/// the count history only (embedded store); 6: instance views stored in the
/// [`compact`] form, and (embedded store) per-version views keyed by position; 7: the
/// embedded store keeps each current view's state-hash term; 8: PostgreSQL's index
/// tables hold key digests ([`key_digest`]) instead of key bytes; 9: the embedded store
/// keys short ids by their ordinal and keeps key number -> digest (the reverse map in
/// memory); 10: (embedded store) a project's and a customer's instances counted per
/// state ([`index::instance_state_counts`]); 11: count history in blocks of 64 positions
/// ([`super::count_blocks`]), one row per key and block instead of one per event.
pub const VERSION: u32 = 11;

/// An instance's stored view (compact bytes) and, where the backend keeps it, its term of
/// the state hash ([`StateHash::term`] of the view's JSON).
pub(crate) type StoredView = (Vec<u8>, Option<[u8; 32]>);

/// The tables one backend keeps for the projections, inside one write transaction. Reads
/// see the transaction's own writes.
pub(crate) trait ProjectionTables {
    /// The instance's current view, in the [`compact`] form (as `put_instance` and
    /// `record_version` are given it), with its state-hash term if the backend keeps it.
    fn instance_bytes(&mut self, id: Uuid) -> Result<Option<StoredView>, StoreError>;
    fn put_instance(&mut self, id: Uuid, bytes: &[u8]) -> Result<(), StoreError>;
    fn resource_bytes(&mut self, id: Uuid) -> Result<Option<Vec<u8>>, StoreError>;
    fn put_resource(&mut self, id: Uuid, bytes: &[u8]) -> Result<(), StoreError>;
    fn user_bytes(&mut self, id: Uuid) -> Result<Option<Vec<u8>>, StoreError>;
    fn put_user(&mut self, id: Uuid, bytes: &[u8]) -> Result<(), StoreError>;
    fn put_short_id(&mut self, short_id: &str, id: Uuid) -> Result<(), StoreError>;
    fn index_add(&mut self, key: &[u8], id: Uuid) -> Result<(), StoreError>;
    fn index_remove(&mut self, key: &[u8], id: Uuid) -> Result<(), StoreError>;
    /// One id more (`up`) or fewer carries `key`: the maintained count moves by one
    /// (saturating at 0, which removes the entry) and, with a position (instance keys),
    /// the count after that event is recorded for as-of reads. One call rather than a
    /// read and a write, so a backend that pays a round trip per read can defer the
    /// arithmetic to its flush: nothing a decision reads depends on a count.
    fn shift_count(&mut self, key: &[u8], up: bool, history: Option<u64>)
    -> Result<(), StoreError>;
    /// One instance more (`up`) or fewer carries `key` in `state`; with a position, the
    /// count after that event is recorded for as-of reads. A backend that keeps no pair
    /// counts (PostgreSQL: each would be a row upsert and a count-history row more per
    /// state change, where rows are its whole cost) ignores it, and its snapshots say
    /// so ([`super::Snapshot::count_in_state`]).
    fn shift_state_count(
        &mut self,
        _key: &[u8],
        _state: State,
        _up: bool,
        _history: Option<u64>,
    ) -> Result<(), StoreError> {
        Ok(())
    }
    /// Opens an interval: `id` carries `key` from `position` on.
    fn open_interval(&mut self, key: &[u8], id: Uuid, position: u64) -> Result<(), StoreError>;
    /// Closes `id`'s open interval under `key` at `position` (if one is open).
    fn close_interval(&mut self, key: &[u8], id: Uuid, position: u64) -> Result<(), StoreError>;
    /// The last position committed at `nanos` (event time in ns since the epoch).
    fn record_time(&mut self, nanos: i64, position: u64) -> Result<(), StoreError>;
    fn record_creation(&mut self, position: u64, id: Uuid) -> Result<(), StoreError>;
    /// The instance's view after the event at `position` (compact), with the fleet's
    /// state hash after it (both exist at exactly the positions of instance events) and
    /// the view's own term of that hash, for a backend that keeps it with the view.
    fn record_version(
        &mut self,
        id: Uuid,
        position: u64,
        state_hash: &[u8; 32],
        view: &[u8],
        term: &[u8; 32],
    ) -> Result<(), StoreError>;
}

/// What both backends store for an index key: the first 128 bits of its SHA-256. Keys
/// are only ever compared for equality, never listed or scanned by prefix, so their
/// bytes (JSON arrays of up to hundreds of bytes, a customer's id in a host name key)
/// need not be kept; a collision is as likely as a random one among 2^64 keys.
pub(crate) fn key_digest(key: &[u8]) -> [u8; 16] {
    use sha2::{Digest, Sha256};
    let full: [u8; 32] = Sha256::digest(key).into();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// A count after one id more (`up`) or fewer carries its key; never below 0. Every
/// backend's [`ProjectionTables::shift_count`] moves counts by this rule.
pub(crate) fn shifted(count: u64, up: bool) -> u64 {
    if up {
        count.saturating_add(1)
    } else {
        count.saturating_sub(1)
    }
}

pub(crate) fn decode_json<T: serde::de::DeserializeOwned>(
    what: &str,
    raw: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(raw).map_err(|e| StoreError::Corrupt {
        at: what.to_string(),
        detail: e.to_string(),
    })
}

pub(crate) fn encode_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Io(e.to_string()))
}

/// The time index's key for an instant: ns since the epoch, clamped to the i64 range
/// (beyond about 1677-2262) so that order is kept.
pub(crate) fn time_key(at: chrono::DateTime<chrono::Utc>) -> i64 {
    at.timestamp_nanos_opt().unwrap_or(if at.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// Applies events to one backend's projection tables, carrying the running state hash.
pub(crate) struct Projector {
    /// The fleet's state hash as of the last event applied.
    pub state_hash: StateHash,
}

impl Projector {
    pub fn new(state_hash: StateHash) -> Projector {
        Projector { state_hash }
    }

    /// Projects one stored event. Returns the instance's new state for instance events.
    pub fn apply(
        &mut self,
        t: &mut dyn ProjectionTables,
        env: &Envelope,
        payload: &Payload,
    ) -> Result<Option<Instance>, StoreError> {
        t.record_time(time_key(env.at), env.position)?;
        let id = env.stream_id;
        match payload {
            Payload::Instance(event) => {
                // The state hash is over JSON views; the stored view is compact. A backend
                // that keeps the current view's term spares encoding the old view.
                let (old, old_term) = match t.instance_bytes(id)? {
                    None => (None, None),
                    Some((raw, term)) => {
                        let old = compact::decode(&format!("instance {id}"), &raw)?;
                        let term = match term {
                            Some(term) => term,
                            None => StateHash::term(id, &encode_json(&old)?),
                        };
                        (Some(old), Some(term))
                    }
                };
                let old_keys = old.as_ref().map(index::instance_keys).unwrap_or_default();
                let old_pairs = old
                    .as_ref()
                    .map(index::instance_state_counts)
                    .unwrap_or_default();
                let old_unique = old
                    .as_ref()
                    .map(index::instance_unique_keys)
                    .unwrap_or_default();
                if let instance::Event::Created(spec) = event {
                    t.put_short_id(spec.short_id.as_str(), id)?;
                    t.record_creation(env.position, id)?;
                }
                let new = instance::evolve(old, id, event, env.version, env.at);
                let new_keys = index::instance_keys(&new);
                reindex(t, id, &old_keys, &new_keys, Some(env.position))?;
                recount(
                    t,
                    &old_pairs,
                    &index::instance_state_counts(&new),
                    env.position,
                )?;
                // Uniqueness keys answer "is this taken now"; they need no history.
                reindex(t, id, &old_unique, &index::instance_unique_keys(&new), None)?;
                // The fleet's state hash: a sum of per-instance hashes over the views'
                // JSON, so one instance changing updates it in constant time. Purged
                // instances leave the fleet.
                if let Some(term) = &old_term {
                    self.state_hash.remove_term(term);
                }
                let new_term = StateHash::term(id, &encode_json(&new)?);
                if new.state != State::Purged {
                    self.state_hash.add_term(&new_term);
                }
                let stored = compact::encode(&new);
                t.record_version(
                    id,
                    env.position,
                    &self.state_hash.to_bytes(),
                    &stored,
                    &new_term,
                )?;
                t.put_instance(id, &stored)?;
                Ok(Some(new))
            }
            Payload::Catalog(event) => {
                let old: Option<Resource> = t
                    .resource_bytes(id)?
                    .map(|b| decode_json(&format!("resource {id}"), &b))
                    .transpose()?;
                let old_keys = old.as_ref().map(index::resource_keys).unwrap_or_default();
                let res = Resource::evolve(old, id, event, env.at);
                reindex(t, id, &old_keys, &index::resource_keys(&res), None)?;
                t.put_resource(id, &encode_json(&res)?)?;
                Ok(None)
            }
            Payload::User(event) => {
                let old: Option<identity::User> = t
                    .user_bytes(id)?
                    .map(|b| decode_json(&format!("user {id}"), &b))
                    .transpose()?;
                let old_keys = old.as_ref().map(index::user_keys).unwrap_or_default();
                let user = identity::evolve(old, id, event, env.at);
                reindex(t, id, &old_keys, &index::user_keys(&user), None)?;
                t.put_user(id, &encode_json(&user)?)?;
                Ok(None)
            }
        }
    }
}

/// Moves `id` from the `old` keys to the `new` ones. With a position (instances), the
/// membership intervals and counts are also recorded for as-of reads.
fn reindex(
    t: &mut dyn ProjectionTables,
    id: Uuid,
    old: &[IndexKey],
    new: &[IndexKey],
    history: Option<u64>,
) -> Result<(), StoreError> {
    for key in old.iter().filter(|k| !new.contains(k)) {
        t.index_remove(key, id)?;
        t.shift_count(key, false, history)?;
        if let Some(position) = history {
            t.close_interval(key, id, position)?;
        }
    }
    for key in new.iter().filter(|k| !old.contains(k)) {
        t.index_add(key, id)?;
        t.shift_count(key, true, history)?;
        if let Some(position) = history {
            t.open_interval(key, id, position)?;
        }
    }
    Ok(())
}

/// Moves the pairs counted per state ([`index::instance_state_counts`]) from `old` to
/// `new`.
fn recount(
    t: &mut dyn ProjectionTables,
    old: &[StatePair],
    new: &[StatePair],
    position: u64,
) -> Result<(), StoreError> {
    for (pair, up) in old
        .iter()
        .filter(|p| !new.contains(p))
        .map(|p| (p, false))
        .chain(new.iter().filter(|p| !old.contains(p)).map(|p| (p, true)))
    {
        let history = pair.history.then_some(position);
        t.shift_state_count(&pair.key, pair.state, up, history)?;
    }
    Ok(())
}

/// A multiset hash of the fleet: the sum, modulo 2^256, of SHA-256(id || state) over
/// every instance that is not purged. Adding and removing one instance's term is constant
/// time, and any replay of the same log reaches the same value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateHash([u64; 4]);

impl StateHash {
    /// One instance's share of the hash: SHA-256(id || state), as 32 bytes.
    pub(crate) fn term(id: Uuid, state: &[u8]) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(id.as_bytes());
        h.update(state);
        h.finalize().into()
    }

    fn limbs(term: &[u8; 32]) -> [u64; 4] {
        let mut limbs = [0u64; 4];
        for (i, limb) in limbs.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&term[i * 8..i * 8 + 8]);
            *limb = u64::from_le_bytes(b);
        }
        limbs
    }

    pub(crate) fn add(&mut self, id: Uuid, state: &[u8]) {
        self.add_term(&Self::term(id, state));
    }

    pub(crate) fn add_term(&mut self, term: &[u8; 32]) {
        let mut carry = 0u64;
        for (limb, x) in self.0.iter_mut().zip(Self::limbs(term)) {
            let (s1, c1) = limb.overflowing_add(x);
            let (s2, c2) = s1.overflowing_add(carry);
            *limb = s2;
            carry = u64::from(c1) + u64::from(c2);
        }
    }

    pub(crate) fn remove_term(&mut self, term: &[u8; 32]) {
        let mut borrow = 0u64;
        for (limb, x) in self.0.iter_mut().zip(Self::limbs(term)) {
            let (d1, b1) = limb.overflowing_sub(x);
            let (d2, b2) = d1.overflowing_sub(borrow);
            *limb = d2;
            borrow = u64::from(b1) + u64::from(b2);
        }
    }

    /// The hash of a whole fleet: (id, stored state bytes) of every non-purged instance.
    pub fn of<'a>(fleet: impl IntoIterator<Item = (Uuid, &'a [u8])>) -> [u8; 32] {
        let mut h = StateHash::default();
        for (id, state) in fleet {
            h.add(id, state);
        }
        h.to_bytes()
    }

    pub fn to_bytes(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, limb) in self.0.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&limb.to_le_bytes());
        }
        out
    }

    pub fn from_bytes(raw: &[u8]) -> StateHash {
        let mut limbs = [0u64; 4];
        for (i, limb) in limbs.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            if let Some(chunk) = raw.get(i * 8..i * 8 + 8) {
                b.copy_from_slice(chunk);
            }
            *limb = u64::from_le_bytes(b);
        }
        StateHash(limbs)
    }
}
