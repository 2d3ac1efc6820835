//! Idempotency keys: a retry with the same key and the same request gets the original
//! outcome; the same key with another request is refused. Records are written in the
//! same transaction as the events they answer for.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Outcome;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub key: String,
    /// SHA-256 over the method, path and body of the request.
    pub fingerprint: String,
}

impl IdempotencyKey {
    pub fn new(key: String, method: &str, path: &str, body: &[u8]) -> IdempotencyKey {
        let mut h = Sha256::new();
        h.update(method.as_bytes());
        h.update(b"\n");
        h.update(path.as_bytes());
        h.update(b"\n");
        h.update(body);
        IdempotencyKey {
            key,
            fingerprint: crate::store::envelope::hex(&h.finalize()),
        }
    }

    /// Keys are scoped to the principal that used them.
    pub fn storage_key(&self, actor: &str) -> String {
        format!("{actor}\n{}", self.key)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub fingerprint: String,
    pub outcome: Outcome,
    pub position: u64,
}
