//! `PATCH instances/{uuid}` and `PATCH servers/{uuid}`: an RFC 6902 list of `add`,
//! `replace` and `remove` operations, checked as wsme and Mogan's `JsonPatchType` did
//! (the op enum, the path pattern, internal and mandatory attributes) and applied to the
//! patchable part of the object: `/name`, `/description` and the free-form attributes
//! (`/extra` or `/metadata`, whole or one key). The result is one core update.

use std::collections::BTreeMap;

use regex_lite::Regex;
use serde_json::Value;

use super::{MoganError, Spelling};
use crate::api::body_schema::repr;
use crate::domain::instance::{Instance, Patch};

/// What the patch may change, as it stands before the patch.
#[derive(Debug, Clone, PartialEq)]
struct Doc {
    name: String,
    description: Option<String>,
    attributes: BTreeMap<String, String>,
}

/// The fields of an object no patch may touch: every shown field but the patchable ones.
fn internal(spelling: Spelling) -> &'static [&'static str] {
    match spelling {
        Spelling::Instances => &[
            "created_at",
            "id",
            "links",
            "updated_at",
            "uuid",
            "project_id",
            "user_id",
            "status",
            "power_state",
            "task_state",
            "target_power_state",
            "availability_zone",
            "instance_type_uuid",
            "image_uuid",
            "network_info",
            "launched_at",
            "locked",
        ],
        Spelling::Servers => &[
            "created_at",
            "id",
            "links",
            "updated_at",
            "uuid",
            "project_id",
            "user_id",
            "status",
            "power_state",
            "availability_zone",
            "flavor_uuid",
            "image_uuid",
            "addresses",
            "launched_at",
            "affinity_zone",
            "key_name",
            "partitions",
            "fault",
            "node",
            "locked",
        ],
    }
}

fn bad(text: impl Into<String>) -> MoganError {
    MoganError::bad_request(text)
}

fn invalid_input(field: &str, value: &Value, why: &str) -> MoganError {
    bad(format!(
        "Invalid input for field/attribute {field}. Value: {}. {why}",
        repr(value)
    ))
}

/// The core update a patch body asks for on `inst` (an empty patch when it changes nothing).
pub fn update(spelling: Spelling, inst: &Instance, body: &Value) -> Result<Patch, MoganError> {
    let Value::Array(ops) = body else {
        return Err(invalid_input(
            "patch",
            body,
            "Value should be a list of JSON patch operations",
        ));
    };
    let before = Doc {
        name: inst.spec.name.clone(),
        description: inst.spec.description.clone(),
        attributes: inst.spec.attributes.clone(),
    };
    let mut doc = before.clone();
    let path_pattern = Regex::new(r"^(/[\w-]+)+$").map_err(|e| bad(e.to_string()))?;
    for op in ops {
        apply(spelling, &mut doc, op, body, &path_pattern)?;
    }
    Ok(Patch {
        name: (doc.name != before.name).then(|| doc.name.clone()),
        description: (doc.description != before.description).then(|| doc.description.clone()),
        attributes: (doc.attributes != before.attributes).then(|| doc.attributes.clone()),
        ..Patch::default()
    })
}

fn apply(
    spelling: Spelling,
    doc: &mut Doc,
    op: &Value,
    body: &Value,
    path_pattern: &Regex,
) -> Result<(), MoganError> {
    let Value::Object(fields) = op else {
        return Err(invalid_input("patch", op, "Value should be an object"));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|k| !["op", "path", "value"].contains(&k.as_str()))
    {
        return Err(bad(format!(
            "Unknown attribute for argument patch: {unknown}"
        )));
    }
    let kind = match fields.get("op") {
        Some(Value::String(s)) if ["add", "replace", "remove"].contains(&s.as_str()) => s.as_str(),
        Some(v) => {
            return Err(invalid_input(
                "op",
                v,
                "Value should be one of: add, remove, replace",
            ));
        }
        None => return Err(bad("Mandatory field missing: 'op'")),
    };
    let path = match fields.get("path") {
        Some(Value::String(p)) if path_pattern.is_match(p) => p.as_str(),
        Some(v) => {
            return Err(invalid_input(
                "path",
                v,
                "Value should match the pattern ^(/[\\w-]+)+$",
            ));
        }
        None => return Err(bad("Mandatory field missing: 'path'")),
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let root = segments[0];
    if internal(spelling).contains(&root) {
        return Err(bad(format!(
            "'/{root}' is an internal attribute and can not be updated"
        )));
    }
    if kind == "remove" && path == "/name" {
        return Err(bad(
            "'/name' is a mandatory attribute and can not be removed",
        ));
    }
    let value = fields.get("value");
    if kind != "remove" && value.is_none() {
        return Err(bad("'add' and 'replace' operations need a value"));
    }
    let failed = |reason: String| {
        bad(format!(
            "Couldn't apply patch '{}'. Reason: {reason}",
            serde_json::to_string(body).unwrap_or_default()
        ))
    };
    let attributes = spelling.attributes();
    match (root, &segments[1..]) {
        ("name", []) => {
            let v = value.cloned().unwrap_or(Value::Null);
            match &v {
                Value::String(s) if !s.is_empty() && s.chars().count() <= 255 => {
                    doc.name = s.clone()
                }
                _ => {
                    return Err(invalid_input(
                        "name",
                        &v,
                        "Expected a string of 1 to 255 characters",
                    ));
                }
            }
        }
        ("description", []) => {
            let v = if kind == "remove" {
                Value::Null
            } else {
                value.cloned().unwrap_or(Value::Null)
            };
            match &v {
                Value::Null => doc.description = None,
                Value::String(s) if s.chars().count() <= 255 => doc.description = Some(s.clone()),
                _ => {
                    return Err(invalid_input(
                        "description",
                        &v,
                        "Expected a string of at most 255 characters",
                    ));
                }
            }
        }
        (r, []) if r == attributes => {
            doc.attributes = match (kind, value) {
                ("remove", _) => BTreeMap::new(),
                (_, Some(Value::Object(map))) => {
                    let mut out = BTreeMap::new();
                    for (k, v) in map {
                        out.insert(k.clone(), attribute_value(attributes, k, v)?);
                    }
                    out
                }
                (_, Some(v)) => return Err(invalid_input(attributes, v, "Expected an object")),
                (_, None) => BTreeMap::new(),
            };
        }
        (r, [key]) if r == attributes => match kind {
            "add" => {
                let v = value.cloned().unwrap_or(Value::Null);
                let text = attribute_value(attributes, key, &v)?;
                doc.attributes.insert((*key).to_string(), text);
            }
            "replace" => {
                if !doc.attributes.contains_key(*key) {
                    return Err(failed(format!("can't replace non-existent object '{key}'")));
                }
                let v = value.cloned().unwrap_or(Value::Null);
                let text = attribute_value(attributes, key, &v)?;
                doc.attributes.insert((*key).to_string(), text);
            }
            _ => {
                if doc.attributes.remove(*key).is_none() {
                    return Err(failed(format!("can't remove non-existent object '{key}'")));
                }
            }
        },
        (r, []) if kind == "add" => {
            return Err(bad(format!(
                "Adding a new attribute (/{r}) to the root of  the resource is not allowed"
            )));
        }
        (r, []) => {
            let verb = if kind == "remove" {
                "remove"
            } else {
                "replace"
            };
            return Err(failed(format!("can't {verb} non-existent object '{r}'")));
        }
        (r, _) => return Err(failed(format!("member '{r}' not found"))),
    }
    Ok(())
}

fn attribute_value(field: &str, key: &str, v: &Value) -> Result<String, MoganError> {
    let key_ok = !key.is_empty()
        && key.chars().count() <= 255
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_:. ".contains(c));
    if !key_ok {
        return Err(invalid_input(
            field,
            &Value::String(key.to_string()),
            "Keys are 1 to 255 of letters, digits, '-', '_', ':', '.' and spaces",
        ));
    }
    match v {
        Value::String(s) if s.chars().count() <= 255 => Ok(s.clone()),
        _ => Err(invalid_input(
            field,
            v,
            "Values are strings of at most 255 characters",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inst() -> Instance {
        let spec = crate::domain::instance::Spec {
            short_id: "i-00000001".into(),
            name: "n".into(),
            hostname: None,
            description: Some("d".into()),
            project_id: uuid::Uuid::nil(),
            customer_id: uuid::Uuid::nil(),
            sizing: crate::domain::instance::Sizing {
                flavor_id: uuid::Uuid::nil(),
                vcpus: 1,
                memory_mb: 1,
                disk_gb: 1,
            },
            image_id: uuid::Uuid::nil(),
            network_ids: vec![],
            ssh_key_id: None,
            security_groups: vec![],
            availability_zone: None,
            user_data: None,
            tags: BTreeMap::new(),
            ip_address: None,
            attributes: BTreeMap::from([("a".into(), "1".into())]),
            created_by: None,
        };
        crate::domain::instance::evolve(
            None,
            uuid::Uuid::nil(),
            &crate::domain::instance::Event::Created(Box::new(spec)),
            1,
            chrono::DateTime::UNIX_EPOCH,
        )
    }

    fn refused(spelling: Spelling, body: Value) -> String {
        match update(spelling, &inst(), &body) {
            Err(MoganError::Fault(_, text)) => text,
            other => panic!("{body}: expected a fault, got {other:?}"),
        }
    }

    #[test]
    fn what_the_client_sends_becomes_one_update() {
        let body = json!([
            {"op": "replace", "path": "/name", "value": "n2"},
            {"op": "remove", "path": "/description"},
            {"op": "add", "path": "/metadata/b", "value": "2"},
            {"op": "remove", "path": "/metadata/a"}
        ]);
        let patch = update(Spelling::Servers, &inst(), &body).expect("valid");
        assert_eq!(patch.name.as_deref(), Some("n2"));
        assert_eq!(patch.description, Some(None));
        assert_eq!(
            patch.attributes,
            Some(BTreeMap::from([("b".into(), "2".into())]))
        );
        let same = json!([{"op": "replace", "path": "/extra", "value": {"a": "1"}}]);
        assert_eq!(
            update(Spelling::Instances, &inst(), &same).expect("valid"),
            Patch::default()
        );
    }

    #[test]
    fn the_originals_refusals_are_worded_as_it_worded_them() {
        let s = Spelling::Servers;
        assert_eq!(
            refused(
                s,
                json!([{"op": "replace", "path": "/status", "value": "x"}])
            ),
            "'/status' is an internal attribute and can not be updated"
        );
        assert_eq!(
            refused(s, json!([{"op": "remove", "path": "/name"}])),
            "'/name' is a mandatory attribute and can not be removed"
        );
        assert_eq!(
            refused(s, json!([{"op": "add", "path": "/name"}])),
            "'add' and 'replace' operations need a value"
        );
        assert_eq!(
            refused(s, json!([{"op": "add", "path": "/foo", "value": 1}])),
            "Adding a new attribute (/foo) to the root of  the resource is not allowed"
        );
        assert!(
            refused(s, json!([{"op": "move", "path": "/name"}])).contains("add, remove, replace")
        );
        assert!(
            refused(s, json!([{"op": "remove", "path": "/metadata/zz"}]))
                .ends_with("Reason: can't remove non-existent object 'zz'")
        );
        assert!(
            refused(s, json!({"op": "add"})).starts_with("Invalid input for field/attribute patch")
        );
        assert!(
            refused(s, json!([{"op": "add", "path": "bad path", "value": 1}])).contains("pattern")
        );
        // `extra` is the instances' spelling only.
        assert!(
            refused(s, json!([{"op": "add", "path": "/extra/k", "value": "v"}]))
                .ends_with("member 'extra' not found")
        );
    }
}
