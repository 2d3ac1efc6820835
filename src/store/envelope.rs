//! The stored envelope of an event and the hash chain over envelopes.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::catalog::{CatalogEvent, Kind};
use crate::domain::identity::UserEvent;
use crate::domain::instance;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    Instance,
    Customer,
    Project,
    Flavor,
    Image,
    Network,
    SshKey,
    User,
    SecurityGroup,
    Iso,
}

impl From<Kind> for StreamKind {
    fn from(kind: Kind) -> StreamKind {
        match kind {
            Kind::Customer => StreamKind::Customer,
            Kind::Project => StreamKind::Project,
            Kind::Flavor => StreamKind::Flavor,
            Kind::Image => StreamKind::Image,
            Kind::Network => StreamKind::Network,
            Kind::SshKey => StreamKind::SshKey,
            Kind::SecurityGroup => StreamKind::SecurityGroup,
            Kind::Iso => StreamKind::Iso,
        }
    }
}

/// Who asked, through which request and surface: recorded with every event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    pub actor: String,
    /// The token the actor authenticated with (absent for the bootstrap token and drivers).
    pub token_id: Option<String>,
    pub request_id: String,
    pub origin: String,
    pub idempotency_key: Option<String>,
}

/// A decided event before the store gives it a position.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub stream_id: Uuid,
    /// The version this event must get: the stream's current version + 1. The store
    /// refuses the append if the stream moved (optimistic concurrency).
    pub version: u64,
    pub kind: StreamKind,
    pub payload: Payload,
    pub at: DateTime<Utc>,
    pub provenance: Provenance,
}

/// An event with its position, its envelope bytes (what is stored and hashed) and their
/// hash: what every backend writes for one append.
pub(crate) struct Sealed {
    pub env: Envelope,
    pub body: Vec<u8>,
    pub hash: [u8; 32],
    pub payload: Payload,
}

impl NewEvent {
    /// Seals the event as the next one after `head`, given its stream's current version.
    /// Refuses it if the stream moved past the version the event was decided against.
    /// Both backends seal here, so they store identical bytes for the same log.
    pub(crate) fn seal(
        self,
        current_version: u64,
        head: &super::Head,
    ) -> Result<Sealed, super::StoreError> {
        let version = current_version + 1;
        if version != self.version {
            return Err(super::StoreError::VersionConflict {
                stream: self.stream_id,
                expected: self.version - 1,
                actual: current_version,
            });
        }
        let (event_type, data) = self
            .payload
            .to_parts()
            .map_err(|e| super::StoreError::Io(e.to_string()))?;
        let schema_version = super::upcast::current_version(&event_type);
        let env = Envelope {
            position: head.position + 1,
            stream_id: self.stream_id,
            stream_kind: self.kind,
            version,
            event_type,
            schema_version,
            data,
            at: self.at,
            actor: self.provenance.actor,
            token_id: self.provenance.token_id,
            request_id: self.provenance.request_id,
            origin: self.provenance.origin,
            idempotency_key: self.provenance.idempotency_key,
            prev_hash: hex(&head.hash),
        };
        let body = serde_json::to_vec(&env).map_err(|e| super::StoreError::Io(e.to_string()))?;
        let hash = hash(&body);
        Ok(Sealed {
            env,
            body,
            hash,
            payload: self.payload,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Instance(instance::Event),
    Catalog(CatalogEvent),
    User(UserEvent),
}

impl Payload {
    /// Splits the payload into its stored `type` and `data`.
    pub fn to_parts(&self) -> Result<(String, serde_json::Value), serde_json::Error> {
        let value = match self {
            Payload::Instance(e) => serde_json::to_value(e)?,
            Payload::Catalog(e) => serde_json::to_value(e)?,
            Payload::User(e) => serde_json::to_value(e)?,
        };
        let mut obj = match value {
            serde_json::Value::Object(obj) => obj,
            other => return Ok((String::new(), other)),
        };
        let ty = match obj.remove("type") {
            Some(serde_json::Value::String(t)) => t,
            _ => String::new(),
        };
        let data = obj
            .remove("data")
            .unwrap_or(serde_json::Value::Object(Default::default()));
        Ok((ty, data))
    }

    pub fn from_parts(
        kind: StreamKind,
        ty: &str,
        data: &serde_json::Value,
    ) -> Result<Payload, serde_json::Error> {
        let tagged = serde_json::json!({ "type": ty, "data": data });
        Ok(match kind {
            StreamKind::Instance => Payload::Instance(serde_json::from_value(tagged)?),
            StreamKind::User => Payload::User(serde_json::from_value(tagged)?),
            _ => Payload::Catalog(serde_json::from_value(tagged)?),
        })
    }
}

/// An event as stored: its place in the log and in its stream, payload and provenance,
/// and the hash of the previous envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Envelope {
    pub position: u64,
    pub stream_id: Uuid,
    pub stream_kind: StreamKind,
    pub version: u64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub schema_version: u32,
    pub data: serde_json::Value,
    pub at: DateTime<Utc>,
    pub actor: String,
    /// The token the actor used, when it used one of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    pub request_id: String,
    pub origin: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    pub prev_hash: String,
}

impl Envelope {
    /// The payload in the shape this build uses, upcast from an older schema version.
    pub fn current_data(&self) -> Result<serde_json::Value, String> {
        super::upcast::upcast(&self.event_type, self.schema_version, self.data.clone())
    }

    pub fn payload(&self) -> Result<Payload, String> {
        let data = self.current_data()?;
        Payload::from_parts(self.stream_kind, &self.event_type, &data).map_err(|e| e.to_string())
    }
}

/// The hash of an envelope is the SHA-256 of its exact stored bytes, which include the
/// previous hash: changing any byte of any event breaks every later link.
pub fn hash(stored: &[u8]) -> [u8; 32] {
    Sha256::digest(stored).into()
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
