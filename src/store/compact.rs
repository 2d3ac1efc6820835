//! The compact binary form in which both backends store instance views (current and per
//! version): ids as 16 bytes, numbers as LEB128 varints, times as seconds and
//! nanoseconds, texts length-prefixed, enums by name. A JSON view spent most of its
//! ~750 bytes on field names and hex ids; this form is about a third of that, and the
//! per-version views were most of what a ledger stored.
//!
//! What it never changes: the state hash and every answer are over the view's JSON, which
//! [`decode`] gives back exactly (`encode_json(decode(encode(v))) == encode_json(v)`).
//! It is a projection format, not a log format: changing it means bumping
//! [`super::projection::VERSION`], so stores rebuild their views from the log. The encoder
//! destructures [`Instance`] field by field and the decoder builds it with a struct
//! literal, so a new field fails to compile here until it has an encoding.
//!
//! Hand-written because serde's binary formats cannot carry the view's shape
//! (`#[serde(flatten)]` and skipped fields need a self-describing format, which is what
//! costs the bytes).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;
use crate::domain::instance::{Fault, Instance, LockHolder, Sizing, Spec};
use crate::domain::lifecycle::{Operation, PowerState, State, TargetPower};

/// The first byte of every encoded view: what layout follows.
const FORMAT: u8 = 1;

/// An instance view in its stored form.
pub fn encode(view: &Instance) -> Vec<u8> {
    let Instance {
        id,
        spec,
        state,
        power_state,
        target_power_state,
        pending_operation,
        version,
        created_at,
        updated_at,
        locked,
        launched_at,
        fault,
        iso_id,
    } = view;
    let Spec {
        short_id,
        name,
        hostname,
        description,
        project_id,
        customer_id,
        sizing,
        image_id,
        network_ids,
        ssh_key_id,
        security_groups,
        availability_zone,
        user_data,
        tags,
        ip_address,
        attributes,
        created_by,
    } = spec;
    let Sizing {
        flavor_id,
        vcpus,
        memory_mb,
        disk_gb,
    } = sizing;
    let mut w = Writer(Vec::with_capacity(256));
    w.byte(FORMAT);
    w.uuid(id);
    w.text(short_id);
    w.text(name);
    w.option(hostname.as_deref(), Writer::text);
    w.option(description.as_deref(), Writer::text);
    w.uuid(project_id);
    w.uuid(customer_id);
    w.uuid(flavor_id);
    w.number(u64::from(*vcpus));
    w.number(*memory_mb);
    w.number(*disk_gb);
    w.uuid(image_id);
    w.number(network_ids.len() as u64);
    network_ids.iter().for_each(|n| w.uuid(n));
    w.option(ssh_key_id.as_ref(), Writer::uuid);
    w.texts(security_groups);
    w.option(availability_zone.as_deref(), Writer::text);
    w.option(user_data.as_deref(), Writer::text);
    w.map(tags);
    w.option(ip_address.as_deref(), Writer::text);
    w.map(attributes);
    w.option(created_by.as_deref(), Writer::text);
    w.text(state.as_str());
    w.byte(match power_state {
        PowerState::On => 0,
        PowerState::Off => 1,
    });
    w.option(target_power_state.as_ref(), |w, t| {
        w.byte(match t {
            TargetPower::On => 0,
            TargetPower::Off => 1,
            TargetPower::Reboot => 2,
        })
    });
    w.option(pending_operation.as_ref(), |w, op| w.text(op.as_str()));
    w.number(*version);
    w.time(created_at);
    w.time(updated_at);
    w.option(locked.as_ref(), |w, l| {
        w.byte(match l {
            LockHolder::Owner => 0,
            LockHolder::Admin => 1,
        })
    });
    w.option(launched_at.as_ref(), Writer::time);
    w.option(fault.as_ref(), |w, f| {
        let Fault {
            operation,
            reason,
            at,
        } = f;
        w.text(operation.as_str());
        w.text(reason);
        w.time(at);
    });
    w.option(iso_id.as_ref(), Writer::uuid);
    w.0
}

/// A stored view; `what` names it in the error if the bytes are not one.
pub fn decode(what: &str, raw: &[u8]) -> Result<Instance, StoreError> {
    let corrupt = |detail: &str| StoreError::Corrupt {
        at: what.to_string(),
        detail: format!("stored view: {detail}"),
    };
    let mut r = Reader(raw);
    if r.byte().ok_or_else(|| corrupt("empty"))? != FORMAT {
        return Err(corrupt("unknown format"));
    }
    let view = read_view(&mut r).ok_or_else(|| corrupt("truncated or malformed"))?;
    if !r.0.is_empty() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(view)
}

fn read_view(r: &mut Reader<'_>) -> Option<Instance> {
    let id = r.uuid()?;
    let short_id = r.text()?;
    let name = r.text()?;
    let hostname = r.option(Reader::text)?;
    let description = r.option(Reader::text)?;
    let project_id = r.uuid()?;
    let customer_id = r.uuid()?;
    let sizing = Sizing {
        flavor_id: r.uuid()?,
        vcpus: u32::try_from(r.number()?).ok()?,
        memory_mb: r.number()?,
        disk_gb: r.number()?,
    };
    let image_id = r.uuid()?;
    let networks = r.count()?;
    let network_ids = (0..networks).map(|_| r.uuid()).collect::<Option<_>>()?;
    let spec = Spec {
        short_id,
        name,
        hostname,
        description,
        project_id,
        customer_id,
        sizing,
        image_id,
        network_ids,
        ssh_key_id: r.option(Reader::uuid)?,
        security_groups: r.texts()?,
        availability_zone: r.option(Reader::text)?,
        user_data: r.option(Reader::text)?,
        tags: r.map()?,
        ip_address: r.option(Reader::text)?,
        attributes: r.map()?,
        created_by: r.option(Reader::text)?,
    };
    Some(Instance {
        id,
        spec,
        state: State::parse(&r.text()?)?,
        power_state: match r.byte()? {
            0 => PowerState::On,
            1 => PowerState::Off,
            _ => return None,
        },
        target_power_state: r.option(|r| match r.byte()? {
            0 => Some(TargetPower::On),
            1 => Some(TargetPower::Off),
            2 => Some(TargetPower::Reboot),
            _ => None,
        })?,
        pending_operation: r.option(Reader::operation)?,
        version: r.number()?,
        created_at: r.time()?,
        updated_at: r.time()?,
        locked: r.option(|r| match r.byte()? {
            0 => Some(LockHolder::Owner),
            1 => Some(LockHolder::Admin),
            _ => None,
        })?,
        launched_at: r.option(Reader::time)?,
        fault: r.option(|r| {
            Some(Fault {
                operation: r.operation()?,
                reason: r.text()?,
                at: r.time()?,
            })
        })?,
        iso_id: r.option(Reader::uuid)?,
    })
}

struct Writer(Vec<u8>);

impl Writer {
    fn byte(&mut self, b: u8) {
        self.0.push(b);
    }

    /// LEB128: seven bits a byte, low first, the high bit set on all but the last.
    fn number(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.0.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.0.push(n as u8);
    }

    fn uuid(&mut self, id: &Uuid) {
        self.0.extend_from_slice(id.as_bytes());
    }

    fn text(&mut self, s: &str) {
        self.number(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }

    fn texts(&mut self, items: &[String]) {
        self.number(items.len() as u64);
        items.iter().for_each(|s| self.text(s));
    }

    fn map(&mut self, m: &BTreeMap<String, String>) {
        self.number(m.len() as u64);
        for (k, v) in m {
            self.text(k);
            self.text(v);
        }
    }

    /// Seconds since the epoch (zigzag, so times before 1970 stay short) and nanoseconds.
    fn time(&mut self, at: &DateTime<Utc>) {
        let s = at.timestamp();
        self.number(((s << 1) ^ (s >> 63)) as u64);
        self.number(u64::from(at.timestamp_subsec_nanos()));
    }

    fn option<T: ?Sized>(&mut self, value: Option<&T>, f: impl FnOnce(&mut Writer, &T)) {
        match value {
            None => self.byte(0),
            Some(v) => {
                self.byte(1);
                f(self, v);
            }
        }
    }
}

/// Every read is `None` past the end or on a malformed value.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn bytes(&mut self, n: usize) -> Option<&[u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn number(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    /// A length or count, bounded by the bytes left (each item takes at least one).
    fn count(&mut self) -> Option<usize> {
        let n = usize::try_from(self.number()?).ok()?;
        (n <= self.0.len()).then_some(n)
    }

    fn uuid(&mut self) -> Option<Uuid> {
        Uuid::from_slice(self.bytes(16)?).ok()
    }

    fn text(&mut self) -> Option<String> {
        let n = self.count()?;
        String::from_utf8(self.bytes(n)?.to_vec()).ok()
    }

    fn texts(&mut self) -> Option<Vec<String>> {
        let n = self.count()?;
        (0..n).map(|_| self.text()).collect()
    }

    fn map(&mut self) -> Option<BTreeMap<String, String>> {
        let n = self.count()?;
        (0..n).map(|_| Some((self.text()?, self.text()?))).collect()
    }

    fn time(&mut self) -> Option<DateTime<Utc>> {
        let z = self.number()?;
        let s = ((z >> 1) as i64) ^ -((z & 1) as i64);
        let nanos = u32::try_from(self.number()?).ok()?;
        DateTime::from_timestamp(s, nanos)
    }

    fn operation(&mut self) -> Option<Operation> {
        let name = self.text()?;
        Operation::ALL.into_iter().find(|op| op.as_str() == name)
    }

    fn option<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        match self.byte()? {
            0 => Some(None),
            1 => f(self).map(Some),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;

    use super::*;
    use crate::store::projection::encode_json;

    fn time() -> impl Strategy<Value = DateTime<Utc>> {
        // Years about 1900 to 2100, any nanosecond (leap-second nanos too).
        (-2_208_988_800i64..4_102_444_800, 0u32..2_000_000_000)
            .prop_filter_map("a valid time", |(s, n)| DateTime::from_timestamp(s, n))
    }

    fn uuid() -> impl Strategy<Value = Uuid> {
        any::<u128>().prop_map(Uuid::from_u128)
    }

    fn text() -> impl Strategy<Value = String> {
        ".{0,12}"
    }

    fn map() -> impl Strategy<Value = BTreeMap<String, String>> {
        prop::collection::btree_map(text(), text(), 0..4)
    }

    prop_compose! {
        fn spec()(
            (short_id, name, hostname, description) in
                (text(), text(), prop::option::of(text()), prop::option::of(text())),
            (project_id, customer_id, flavor_id, image_id) in (uuid(), uuid(), uuid(), uuid()),
            (vcpus, memory_mb, disk_gb) in (any::<u32>(), any::<u64>(), any::<u64>()),
            network_ids in prop::collection::vec(uuid(), 0..3),
            ssh_key_id in prop::option::of(uuid()),
            security_groups in prop::collection::vec(text(), 0..3),
            (availability_zone, user_data, ip_address, created_by) in (
                prop::option::of(text()), prop::option::of(text()),
                prop::option::of(text()), prop::option::of(text()),
            ),
            (tags, attributes) in (map(), map()),
        ) -> Spec {
            Spec {
                short_id, name, hostname, description, project_id, customer_id,
                sizing: Sizing { flavor_id, vcpus, memory_mb, disk_gb },
                image_id, network_ids, ssh_key_id, security_groups, availability_zone,
                user_data, tags, ip_address, attributes, created_by,
            }
        }
    }

    fn operation() -> impl Strategy<Value = Operation> {
        prop::sample::select(Operation::ALL.to_vec())
    }

    prop_compose! {
        fn view()(
            id in uuid(),
            spec in spec(),
            state in prop::sample::select(State::ALL.to_vec()),
            power_state in prop::sample::select(vec![PowerState::On, PowerState::Off]),
            target_power_state in prop::option::of(prop::sample::select(
                vec![TargetPower::On, TargetPower::Off, TargetPower::Reboot])),
            pending_operation in prop::option::of(operation()),
            version in any::<u64>(),
            (created_at, updated_at, launched_at) in (time(), time(), prop::option::of(time())),
            locked in prop::option::of(prop::sample::select(
                vec![LockHolder::Owner, LockHolder::Admin])),
            fault in prop::option::of((operation(), text(), time())),
            iso_id in prop::option::of(uuid()),
        ) -> Instance {
            Instance {
                id, spec, state, power_state, target_power_state, pending_operation, version,
                created_at, updated_at, locked, launched_at,
                fault: fault.map(|(operation, reason, at)| Fault { operation, reason, at }),
                iso_id,
            }
        }
    }

    proptest! {
        /// The stored form gives back the same view, so the same JSON: the state hash
        /// and every answer are unchanged by storing views compactly.
        #[test]
        fn a_view_decodes_to_itself(v in view()) {
            let raw = encode(&v);
            let back = decode("view", &raw).expect("decodes");
            prop_assert_eq!(&back, &v);
            prop_assert_eq!(encode_json(&back).expect("json"), encode_json(&v).expect("json"));
        }

        /// Cut short or padded, a stored view is refused as corrupt, never misread.
        #[test]
        fn a_damaged_view_is_refused(v in view(), cut in any::<prop::sample::Index>()) {
            let raw = encode(&v);
            let short = &raw[..cut.index(raw.len())];
            let refused = matches!(decode("view", short), Err(StoreError::Corrupt { .. }));
            prop_assert!(refused, "a view cut to {} bytes was read", short.len());
            let mut long = raw.clone();
            long.push(0);
            let refused = matches!(decode("view", &long), Err(StoreError::Corrupt { .. }));
            prop_assert!(refused, "a view with a trailing byte was read");
        }
    }

    #[test]
    fn a_view_takes_under_half_its_json() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let v = view().new_tree(&mut runner).expect("a view").current();
        let (compact, json) = (encode(&v).len(), encode_json(&v).expect("json").len());
        assert!(
            compact * 2 < json,
            "{compact} bytes compact, {json} as JSON"
        );
    }
}
