//! JSON Schemas (draft 2020-12) of what the ledger stores and serves, generated from the
//! Rust types: one per event type and schema version, the envelope, and the instance view.
//! The files under `schema/` are these, checked in; `tests/it/schemas.rs` fails when they
//! drift and rewrites them with `UPDATE_SCHEMAS=1 cargo test --test it schemas`.

use schemars::{JsonSchema, schema_for};
use serde_json::{Map, Value, json};

use super::envelope::Envelope;
use super::upcast::current_version;
use crate::domain::catalog::CatalogEvent;
use crate::domain::identity::UserEvent;
use crate::domain::instance;
use crate::projection::InstanceView;

/// Payload shapes of older schema versions, frozen so their schemas stay published and
/// their examples keep decoding through the upcasters.
pub mod legacy {
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    /// `StopRequested` version 1.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct StopRequestedV1 {
        pub force: bool,
    }
}

fn to_value<T: JsonSchema>() -> Value {
    serde_json::to_value(schema_for!(T)).unwrap_or(Value::Null)
}

/// Splits the `oneOf` of an adjacently tagged event enum into one schema per variant,
/// keyed by the variant's `type`.
fn per_variant(root: Value) -> Vec<(String, Value)> {
    let defs = root.get("$defs").cloned();
    let variants = root
        .get("oneOf")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    variants
        .into_iter()
        .filter_map(|v| {
            let ty = v["properties"]["type"]["const"]
                .as_str()
                .or_else(|| v["properties"]["type"]["enum"][0].as_str())?
                .to_string();
            Some((ty, with_defs(v, defs.clone())))
        })
        .collect()
}

fn with_defs(mut schema: Value, defs: Option<Value>) -> Value {
    if let (Some(obj), Some(defs)) = (schema.as_object_mut(), defs) {
        obj.insert("$defs".into(), defs);
    }
    schema
}

fn document(id: &str, title: &str, description: &str, body: Value) -> Value {
    let mut out = Map::new();
    out.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    out.insert("$id".into(), json!(id));
    out.insert("title".into(), json!(title));
    out.insert("description".into(), json!(description));
    if let Value::Object(body) = body {
        for (k, v) in body {
            if k != "$schema" && k != "title" && k != "description" {
                out.insert(k, v);
            }
        }
    }
    Value::Object(out)
}

fn event_file(ty: &str, version: u32, body: Value) -> (String, Value) {
    let id = format!("urn:instance-ledger:schema:event:{ty}:v{version}");
    let description =
        format!("The `type` and `data` of a `{ty}` event, payload schema version {version}.");
    (
        format!("events/{ty}.v{version}.schema.json"),
        document(&id, ty, &description, body),
    )
}

/// Every generated schema file: (path under `schema/`, pretty JSON with a final newline).
pub fn files() -> Vec<(String, String)> {
    let mut out: Vec<(String, Value)> = Vec::new();
    for (ty, schema) in per_variant(to_value::<instance::Event>())
        .into_iter()
        .chain(per_variant(to_value::<CatalogEvent>()))
        .chain(per_variant(to_value::<UserEvent>()))
    {
        out.push(event_file(&ty, current_version(&ty), schema));
    }
    let stop_v1 = json!({
        "type": "object",
        "properties": {
            "type": { "type": "string", "const": "StopRequested" },
            "data": to_value::<legacy::StopRequestedV1>(),
        },
        "required": ["type", "data"],
    });
    out.push(event_file("StopRequested", 1, stop_v1));
    out.push((
        "envelope.v1.schema.json".into(),
        document(
            "urn:instance-ledger:schema:envelope:v1",
            "Envelope",
            "A stored event: its place in the log and its stream, its payload and provenance, and the previous event's hash.",
            to_value::<Envelope>(),
        ),
    ));
    out.push((
        "instance-view.v1.schema.json".into(),
        document(
            "urn:instance-ledger:schema:instance-view:v1",
            "InstanceView",
            "The current view of one instance, as served by GET /v1/instances/{id}.",
            to_value::<InstanceView>(),
        ),
    ));
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter()
        .map(|(path, v)| {
            let mut text = serde_json::to_string_pretty(&v).unwrap_or_default();
            text.push('\n');
            (path, text)
        })
        .collect()
}
