//! Walking a log in order and checking what every reader of a whole log must check: no
//! gap in positions, each envelope's bytes matching its hash, each link to the previous
//! hash, gap-free versions per stream, and every payload decoding under its schema
//! version. Replays (verify, rebuild) and imports use this one walker, so they name the
//! same damage the same way. It never writes.

use std::collections::HashMap;

use uuid::Uuid;

use super::envelope::{self, Envelope, Payload};
use super::{Head, StoreError};

/// One checked event: its envelope, the hash of its exact bytes, and its payload. An
/// import appends it with those bytes; a replay only projects it.
#[derive(Debug, Clone)]
pub struct Checked {
    pub env: Envelope,
    pub hash: [u8; 32],
    pub payload: Payload,
}

impl Checked {
    /// Decodes the event stored at `position`, checking its bytes against the recorded
    /// `hash` when there is one; where it stands in the chain is the caller's to check
    /// ([`Chain::next`], or [`follows`] for an event appended elsewhere first).
    pub(crate) fn decode(
        position: u64,
        hash: Option<&[u8]>,
        body: &[u8],
    ) -> Result<Checked, StoreError> {
        let computed = envelope::hash(body);
        if hash.is_some_and(|h| h != computed) {
            return Err(damage(position, "hash does not match the stored bytes"));
        }
        let env: Envelope = serde_json::from_slice(body)
            .map_err(|e| damage(position, format!("envelope does not decode: {e}")))?;
        if env.position != position {
            return Err(damage(
                position,
                format!("envelope says position {}", env.position),
            ));
        }
        let payload = env.payload().map_err(|e| {
            damage(
                position,
                format!(
                    "{} (schema version {}) does not decode: {e}",
                    env.event_type, env.schema_version
                ),
            )
        })?;
        Ok(Checked {
            env,
            hash: computed,
            payload,
        })
    }
}

/// The running state of a walk: the head so far and each stream's last version.
#[derive(Debug, Default)]
pub struct Chain {
    head: Head,
    versions: HashMap<Uuid, u64>,
}

fn damage(position: u64, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        at: format!("position {position}"),
        detail: detail.into(),
    }
}

impl Chain {
    pub fn new() -> Chain {
        Chain::default()
    }

    /// The last event checked (position 0 and zeros before the first).
    pub fn head(&self) -> Head {
        self.head
    }

    /// Checks the event stored at `position` with its recorded `hash` (when the backend
    /// stores one beside the bytes) and returns it decoded. `position` is where the
    /// backend found it: anything but the next position is a gap.
    pub fn next(
        &mut self,
        position: u64,
        hash: Option<&[u8]>,
        body: &[u8],
    ) -> Result<Checked, StoreError> {
        let expected = self.head.position + 1;
        if position != expected {
            return Err(damage(
                expected,
                format!("missing event (the next one stored is at {position})"),
            ));
        }
        let checked = Checked::decode(position, hash, body)?;
        let env = &checked.env;
        if env.prev_hash != envelope::hex(&self.head.hash) {
            return Err(damage(position, "previous-hash link is broken"));
        }
        let last = self.versions.get(&env.stream_id).copied().unwrap_or(0);
        if env.version != last + 1 {
            return Err(damage(
                position,
                format!(
                    "stream {} jumps from version {last} to {}",
                    env.stream_id, env.version
                ),
            ));
        }
        self.versions.insert(env.stream_id, env.version);
        self.head = Head {
            position,
            hash: checked.hash,
        };
        Ok(checked)
    }

    /// Checks that the walk ended where the store says its head is.
    pub fn ends_at(&self, recorded: Head) -> Result<(), StoreError> {
        if recorded != self.head {
            return Err(StoreError::Corrupt {
                at: "head".into(),
                detail: format!(
                    "the recorded head (position {}) does not match the last event (position {})",
                    recorded.position, self.head.position
                ),
            });
        }
        Ok(())
    }
}

/// Whether an event checked elsewhere may be appended after `head` to a stream at
/// version `current`: the backends' guard when importing.
pub(crate) fn follows(head: &Head, current: u64, event: &Checked) -> Result<(), StoreError> {
    let env = &event.env;
    if env.position != head.position + 1 || env.prev_hash != envelope::hex(&head.hash) {
        return Err(damage(
            env.position,
            format!(
                "does not follow the target's head (position {})",
                head.position
            ),
        ));
    }
    if env.version != current + 1 {
        return Err(StoreError::VersionConflict {
            stream: env.stream_id,
            expected: env.version.saturating_sub(1),
            actual: current,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Decoding never panics: whatever bytes a damaged file or a hostile import holds,
    //! the walk answers with damage named at a position.
    use super::*;
    use crate::domain::catalog::{CatalogEvent, Spec};
    use crate::store::envelope::{NewEvent, Provenance};
    use crate::store::{StoreError, StreamKind};
    use proptest::prelude::*;

    /// A real first event of a log, as stored.
    fn first_event() -> Vec<u8> {
        let event = NewEvent {
            stream_id: Uuid::from_u128(7),
            version: 1,
            kind: StreamKind::Image,
            payload: Payload::Catalog(CatalogEvent::ImageCreated(Spec::Named {
                name: "debian".into(),
            })),
            at: chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("time"),
            provenance: Provenance {
                actor: "t".into(),
                token_id: None,
                request_id: "r".into(),
                origin: "native".into(),
                idempotency_key: None,
            },
        };
        event.seal(0, &Head::default()).expect("seal").body
    }

    #[test]
    fn a_real_event_passes_and_the_same_one_again_is_a_gap() {
        let body = first_event();
        let mut chain = Chain::new();
        chain.next(1, None, &body).expect("the first event");
        assert_eq!(chain.head().position, 1);
        assert!(matches!(
            chain.next(2, None, &body),
            Err(StoreError::Corrupt { ref at, .. }) if at == "position 2"
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes_are_damage_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let result = Chain::new().next(1, None, &bytes);
            prop_assert!(matches!(result, Err(StoreError::Corrupt { .. })), "{result:?}");
        }

        #[test]
        fn a_mutated_event_never_panics(at in 0usize..400, byte in any::<u8>(), cut in 0usize..400) {
            let mut body = first_event();
            let i = at % body.len();
            body[i] = byte;
            body.truncate(body.len() - cut % body.len());
            // Damage, or (a byte replaced by itself, a harmless change of a string) a
            // decoded event; never a panic.
            let _ = Chain::new().next(1, None, &body);
        }

        #[test]
        fn arbitrary_json_payloads_never_panic(ty in "[A-Za-z]{0,16}", version in 0u32..4, data in any_json()) {
            let _ = crate::store::upcast::upcast(&ty, version, data.clone());
            for kind in [StreamKind::Instance, StreamKind::User, StreamKind::Image] {
                let _ = Payload::from_parts(kind, &ty, &data);
            }
        }
    }

    fn any_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[a-z]{0,8}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("[a-z_]{1,10}", inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
