//! Walking a log in order and checking what every reader of a whole log must check: no
//! gap in positions, each envelope's bytes matching its hash, each link to the previous
//! hash, gap-free versions per stream, and every payload decoding under its schema
//! version. Replays (verify, rebuild) and imports use this one walker, so they name the
//! same damage the same way. It never writes.

use std::collections::HashMap;

use uuid::Uuid;

use super::envelope::{self, Envelope, Payload};
use super::{Head, StoreError};

/// One checked event: its envelope, its exact bytes and their hash, and its payload.
/// What an import appends as it is.
#[derive(Debug, Clone)]
pub struct Checked {
    pub env: Envelope,
    pub body: Vec<u8>,
    pub hash: [u8; 32],
    pub payload: Payload,
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
        let payload = env.payload().map_err(|e| {
            damage(
                position,
                format!(
                    "{} (schema version {}) does not decode: {e}",
                    env.event_type, env.schema_version
                ),
            )
        })?;
        self.versions.insert(env.stream_id, env.version);
        self.head = Head {
            position,
            hash: computed,
        };
        Ok(Checked {
            env,
            body: body.to_vec(),
            hash: computed,
            payload,
        })
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
