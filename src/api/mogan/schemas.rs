//! The JSON Schemas of the create bodies, as the original validated them (seed
//! `instances.py`, the mature `schemas/instances.py` and September 2017's
//! `schemas/servers.py`), widened only to take both spellings of a network (`uuid` and
//! `net_id`). The same values are checked by [`crate::api::body_schema`] and published
//! in `/openapi.json`.

use serde_json::{Value, json};

/// Keys of `extra`/`metadata` (the original's pattern, its hyphen moved last so that it
/// is literal in every regex dialect).
const ATTRIBUTE_KEY: &str = "^[a-zA-Z0-9_:. -]{1,255}$";

fn text(min: u64) -> Value {
    json!({"type": "string", "minLength": min, "maxLength": 255})
}

fn uuid() -> Value {
    json!({"type": "string", "format": "uuid"})
}

fn attributes() -> Value {
    json!({
        "type": "object",
        "patternProperties": {ATTRIBUTE_KEY: {"type": "string", "maxLength": 255}},
        "additionalProperties": false
    })
}

fn count() -> Value {
    json!({"type": "integer", "minimum": 1})
}

/// `POST instances`: the seed's fields and the mature ones.
pub fn instance_create() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": text(1),
            "description": {"type": ["string", "null"], "minLength": 0, "maxLength": 255},
            "availability_zone": text(1),
            "image_uuid": uuid(),
            "instance_type_uuid": uuid(),
            "networks": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {"uuid": uuid(), "net_id": uuid(), "port_type": text(1)},
                    "oneOf": [{"required": ["uuid"]}, {"required": ["net_id"]}],
                    "additionalProperties": false
                }
            },
            "user_data": {"type": "string", "format": "base64"},
            "key_name": text(1),
            "min_count": count(),
            "max_count": count(),
            "extra": attributes()
        },
        "required": ["name", "image_uuid", "instance_type_uuid", "networks"],
        "additionalProperties": false
    })
}

/// `POST servers`: `{"server": {...}, "scheduler_hints": {...}}`.
pub fn server_create() -> Value {
    json!({
        "type": "object",
        "properties": {
            "server": {
                "type": "object",
                "properties": {
                    "name": text(1),
                    "description": {"type": ["string", "null"], "minLength": 0, "maxLength": 255},
                    "availability_zone": text(1),
                    "image_uuid": uuid(),
                    "flavor_uuid": uuid(),
                    "networks": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "properties": {"net_id": uuid(), "uuid": uuid(), "port_id": uuid()},
                            "oneOf": [
                                {"required": ["net_id"]},
                                {"required": ["uuid"]},
                                {"required": ["port_id"]}
                            ]
                        }
                    },
                    "user_data": {"type": "string", "format": "base64"},
                    "key_name": text(1),
                    "min_count": count(),
                    "max_count": count(),
                    "metadata": attributes()
                },
                "required": ["name", "image_uuid", "flavor_uuid", "networks"],
                "additionalProperties": false
            },
            "scheduler_hints": {
                "type": "object",
                "properties": {"group": uuid()},
                "additionalProperties": false
            }
        },
        "required": ["server"],
        "additionalProperties": false
    })
}

/// The body of `PATCH`: an RFC 6902 list of operations.
pub fn json_patch() -> Value {
    json!({
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "op": {"enum": ["add", "replace", "remove"]},
                "path": {"type": "string", "pattern": "^(/[\\w-]+)+$"},
                "value": {}
            },
            "required": ["op", "path"]
        }
    })
}

/// `PUT states/power` and `PUT states/lock`.
pub fn power_body() -> Value {
    json!({
        "type": "object",
        "properties": {"target": {"enum": ["on", "off", "soft_off", "reboot", "soft_reboot", "power on", "power off"]}},
        "required": ["target"],
        "additionalProperties": false
    })
}

pub fn lock_body() -> Value {
    json!({
        "type": "object",
        "properties": {"target": {"type": ["boolean", "string"]}},
        "required": ["target"],
        "additionalProperties": false
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::body_schema::violation;

    #[test]
    fn the_seed_sample_and_the_clients_body_pass_and_strictness_holds() {
        // doc/api_samples/instances/instance-create-req.json, seed 214ad863.
        let seed = json!({"name": "test_instance", "description": "this is a test instance",
            "instance_type_uuid": "0607b5f3-6111-424d-ba46-f5de39a6fa69",
            "image_uuid": "efe0a06f-ca95-4808-b41e-9f55b9c5eb98",
            "networks": [{"uuid": "c1940655-8b8e-4370-b8f9-03ba1daeca31"},
                         {"uuid": "8e8ceb07-4641-4188-9b22-840755e92ee2", "port_type": "10GE"}]});
        assert_eq!(violation(&instance_create(), &seed), None);
        let mut extra = seed.clone();
        extra["flavor"] = json!("x");
        assert_eq!(
            violation(&instance_create(), &extra).as_deref(),
            Some("Additional properties are not allowed ('flavor' was unexpected)")
        );
        // What python-moganclient 0.1.0 sends for `server create`.
        let client = json!({"server": {"name": "s1", "image_uuid": "i", "flavor_uuid": "f",
            "networks": [{"net_id": "n"}], "metadata": {"k 1": "v"}}});
        assert_eq!(violation(&server_create(), &client), None);
        let mut both = client.clone();
        both["server"]["networks"] = json!([{"net_id": "n", "port_id": "p"}]);
        assert!(
            violation(&server_create(), &both).is_some(),
            "net_id xor port_id"
        );
        let mut key = client;
        key["server"]["metadata"] = json!({"bad/key": "v"});
        assert!(violation(&server_create(), &key).is_some());
    }
}
