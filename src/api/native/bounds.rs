//! The bounds the native parsers and `api::validate` enforce, written into the published
//! document: string patterns and lengths, number ranges and enums for every `/v1`
//! parameter and body field that has them. A client (or a fuzzer) that stays inside the
//! document is never refused for the shape of its request; `tests/it/api_fuzz.rs` holds the
//! two to each other. What no schema can state (an id that does not exist, an operation
//! illegal in the current state, a stale `If-Match`) is answered 404, 409, 412 or 422,
//! never 400.
//!
//! Owns only the document's wording of bounds; the checks themselves stay in the parsers.

use serde_json::{Value, json};

use crate::limits;

/// Characters `char::is_control` refuses (Unicode category Cc), as a regex class body.
const CONTROL: &str = r"\u0000-\u001f\u007f-\u009f";

fn name_pattern() -> String {
    format!(r"^[^{CONTROL}]*[^\s{CONTROL}][^{CONTROL}]*$")
}

fn name() -> Value {
    json!({"type": "string", "maxLength": limits::NAME_CHARS, "pattern": name_pattern()})
}

fn nullable(mut schema: Value) -> Value {
    schema["type"] = json!([schema["type"].clone(), "null"]);
    schema
}

fn text(max: usize) -> Value {
    json!({"type": ["string", "null"], "maxLength": max})
}

fn hostname() -> Value {
    let label = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
    json!({
        "type": "string",
        "maxLength": limits::HOSTNAME_BYTES,
        "pattern": format!(r"^{label}(\.{label})*$"),
    })
}

fn cidr() -> Value {
    let octet = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
    json!({
        "type": "string",
        "description": "An IPv4 block like 10.0.0.0/24 (IPv6 blocks are accepted too)",
        "pattern": format!(r"^{octet}(\.{octet}){{3}}/(3[0-2]|[12]?[0-9])$"),
    })
}

fn string_map(max: usize, values: Value) -> Value {
    json!({
        "type": "object",
        "maxProperties": max,
        "propertyNames": {
            "minLength": 1,
            "maxLength": limits::TAG_KEY_CHARS,
            "pattern": format!("^[^{CONTROL}]*$"),
        },
        "additionalProperties": values,
    })
}

fn tags() -> Value {
    string_map(
        limits::TAGS,
        json!({
            "type": "string",
            "maxLength": limits::TAG_VALUE_CHARS,
            "pattern": format!("^[^{CONTROL}]*$"),
        }),
    )
}

fn attributes() -> Value {
    string_map(
        limits::ATTRIBUTES,
        json!({"type": "string", "maxLength": limits::TAG_VALUE_CHARS}),
    )
}

fn range(lo: u64, hi: u64) -> Value {
    json!({"type": "integer", "minimum": lo, "maximum": hi})
}

/// A log position or a count: any unsigned 64-bit integer.
fn position() -> Value {
    json!({"type": "integer", "minimum": 0, "maximum": u64::MAX})
}

fn time() -> Value {
    json!({"type": "string", "format": "date-time"})
}

/// `Point::either`: all digits is a position, anything else must be an RFC 3339 time.
fn time_or_position() -> Value {
    json!({"anyOf": [position(), time()]})
}

/// The schema of each `/v1` parameter that has bounds, by name and location.
fn parameter(path: &str, name: &str, location: &str) -> Option<Value> {
    Some(match (name, location) {
        // The feed's window is in times only; the others take a time or a position.
        ("since" | "until", "query") if path.starts_with("/v1/events") => time(),
        ("limit", "query") => range(1, limits::PAGE_MAX as u64),
        ("after" | "at_position", "query") => position(),
        ("as_of", "query") => time(),
        ("since" | "until" | "from" | "to", "query") => time_or_position(),
        ("cursor", "query") => json!({"type": "string", "format": "uuid"}),
        ("state", "query") => json!({"$ref": "#/components/schemas/State"}),
        ("tag", "query") => json!({"type": "array", "items": {"type": "string", "pattern": ":"}}),
        ("If-Match", "header") => json!({
            "type": "string",
            "pattern": r#"^(\*|(W/)?"[0-9]{1,19}")$"#,
        }),
        ("Idempotency-Key", "header") => json!({
            "type": "string",
            "pattern": format!("^[!-~]{{1,{}}}$", limits::IDEMPOTENCY_KEY_BYTES),
        }),
        ("Last-Event-ID", "header") => position(),
        _ => return None,
    })
}

/// The bounds of each body field that has them, by component schema and property.
fn property(schema: &str, field: &str) -> Option<Value> {
    let bounded = match (schema, field) {
        (_, "name")
            if matches!(
                schema,
                "PatchBody" | "TokenBody" | "TokenView" | "IssuedToken"
            ) =>
        {
            nullable(name())
        }
        (_, "name") => name(),
        ("FailBody", "reason") => name(),
        ("CreateBody", "availability_zone") => nullable(name()),
        ("CreateBody" | "PatchBody", "hostname") => nullable(hostname()),
        ("CreateBody" | "PatchBody" | "SecurityGroupBody", "description") => {
            text(limits::DESCRIPTION_CHARS)
        }
        ("CreateBody", "user_data") => text(limits::USER_DATA_CHARS),
        ("CreateBody", "tags") => tags(),
        ("PatchBody", "tags") => nullable(tags()),
        ("CreateBody", "attributes") => attributes(),
        ("PatchBody", "attributes") => nullable(attributes()),
        ("CreateBody", "security_groups") => json!({
            "type": "array", "uniqueItems": true, "items": name(),
        }),
        ("CreateBody" | "ResizeBody", "vcpus") => nullable(range(0, u32::MAX.into())),
        ("CreateBody" | "ResizeBody", "memory_mb") => nullable(range(0, u64::MAX)),
        ("FlavorBody", "vcpus") => range(limits::FLAVOR_VCPUS.0, limits::FLAVOR_VCPUS.1),
        ("FlavorBody", "memory_mb") => {
            range(limits::FLAVOR_MEMORY_MB.0, limits::FLAVOR_MEMORY_MB.1)
        }
        ("FlavorBody", "disk_gb") => range(limits::FLAVOR_DISK_GB.0, limits::FLAVOR_DISK_GB.1),
        ("NetworkBody", "cidr") | ("SecurityGroupBody", "ip_range") => cidr(),
        ("SecurityGroupBody", "protocol") => {
            json!({"type": "string", "enum": ["tcp", "udp", "icmp"]})
        }
        ("SecurityGroupBody", "from_port" | "to_port") => json!({
            "type": "integer", "minimum": 0, "maximum": u16::MAX,
            "description": "One end of the port range; the two ends in either order",
        }),
        ("SshKeyBody", "public_key") => json!({
            "type": "string",
            "maxLength": limits::PUBLIC_KEY_BYTES,
            "pattern": r"^(ssh-|ecdsa-|sk-)[A-Za-z0-9@.-]+ [A-Za-z0-9+/=]+( [!-~]+)?$",
        }),
        ("CreateUserBody", "username") => json!({
            "type": "string",
            "pattern": format!("^[a-z0-9._-]{{1,{}}}$", limits::USERNAME_BYTES),
        }),
        ("CreateUserBody", "email") => {
            let c = format!(r"\s{CONTROL}");
            json!({
                "type": "string",
                "maxLength": limits::EMAIL_BYTES,
                "pattern": format!(r"^[^@{c}]+@[^.{c}][^{c}]*\.[^{c}]*$"),
            })
        }
        _ => return None,
    };
    Some(bounded)
}

/// Writes the bounds into the native part of `doc`.
pub fn apply(doc: &mut Value) {
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for (schema_name, schema) in schemas.iter_mut() {
            let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
                continue;
            };
            for (field, value) in props.iter_mut() {
                if let Some(bounded) = property(schema_name, field) {
                    keep_description(value, bounded);
                }
            }
        }
    }
    whole_bodies(doc);
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        if !path.starts_with("/v1/") {
            continue;
        }
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
                for p in params.iter_mut() {
                    let (Some(n), Some(at)) = (p["name"].as_str(), p["in"].as_str()) else {
                        continue;
                    };
                    if let Some(schema) = parameter(path, n, at) {
                        p["schema"] = schema;
                    }
                }
            }
            adjust_body(path, method, op);
        }
    }
}

/// Rules across a body's fields, which per-field bounds cannot state.
fn whole_bodies(doc: &mut Value) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    // A resource's spec is told apart by its fields, and a customer's or an image's (a
    // name only) fits inside every other kind's: `anyOf`, not `oneOf`.
    if let Some(spec) = schemas.get_mut("Spec")
        && let Some(kinds) = spec.as_object_mut().and_then(|o| o.remove("oneOf"))
    {
        spec["anyOf"] = kinds;
    }
    // A custom size names both vCPUs and memory, or neither.
    let custom_size = json!([
        {"required": ["vcpus", "memory_mb"],
         "properties": {"vcpus": {"type": "integer"}, "memory_mb": {"type": "integer"}}},
        {"properties": {"vcpus": {"type": "null"}, "memory_mb": {"type": "null"}}},
    ]);
    for body in ["CreateBody", "ResizeBody"] {
        if let Some(b) = schemas.get_mut(body) {
            b["anyOf"] = custom_size.clone();
        }
    }
    // A patch changes at least one field.
    if let Some(b) = schemas.get_mut("PatchBody") {
        let fields = ["name", "hostname", "description", "tags", "attributes"];
        b["anyOf"] = fields
            .iter()
            .map(|f| json!({"required": [f], "properties": {*f: {"not": {"type": "null"}}}}))
            .collect();
    }
}

/// Bodies whose rules differ by operation.
fn adjust_body(path: &str, method: &str, op: &mut Value) {
    let Some(body) = op.pointer_mut("/requestBody/content/application~1json/schema") else {
        return;
    };
    match (path, method) {
        // Adding a member names the role; removing one ignores it.
        ("/v1/projects/{id}/members", "post") => {
            *body = json!({"allOf": [
                {"$ref": "#/components/schemas/MemberBody"},
                {"required": ["user_id", "role"],
                 "properties": {"role": {"$ref": "#/components/schemas/Role"}}},
            ]});
        }
        // An absent body is accepted; a JSON `null` is not an object.
        _ => {
            if let Some(one) = body.get("oneOf").and_then(Value::as_array)
                && one.len() == 2
                && one[1] == json!({"type": "null"})
            {
                *body = one[0].clone();
            }
        }
    }
}

fn keep_description(value: &mut Value, mut bounded: Value) {
    if let Some(d) = value.get("description").cloned() {
        bounded["description"] = d;
    }
    *value = bounded;
}
