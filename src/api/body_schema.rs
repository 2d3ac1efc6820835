//! Checks a request body against the JSON Schema a vendor published for it, and words the
//! first violation as Python's `jsonschema` did (`'name' is a required property`), because
//! the OpenStack-era servers validated with it and their clients show that text. The same
//! schema value goes into the OpenAPI document, so what is checked is what is published.
//!
//! Only the keywords those schemas use are understood: `type` (one or a list), `properties`,
//! `required`, `additionalProperties: false`, `patternProperties`, `items`, `minItems`,
//! `minLength`, `maxLength`, `minimum`, `pattern`, `enum` and `oneOf`. A schema using any
//! other keyword is a programming error, caught by the tests of each schema.

use regex_lite::Regex;
use serde_json::{Map, Value};

/// The first violation of `schema` by `value`, in `jsonschema`'s words.
pub fn violation(schema: &Value, value: &Value) -> Option<String> {
    check(schema, value).err()
}

fn check(schema: &Value, value: &Value) -> Result<(), String> {
    let Some(s) = schema.as_object() else {
        return Ok(());
    };
    if let Some(types) = s.get("type") {
        let names: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !names.iter().any(|t| is_type(value, t)) {
            let quoted: Vec<String> = names.iter().map(|t| format!("'{t}'")).collect();
            return Err(format!(
                "{} is not of type {}",
                repr(value),
                quoted.join(", ")
            ));
        }
    }
    if let Some(Value::Array(options)) = s.get("enum")
        && !options.contains(value)
    {
        return Err(format!(
            "{} is not one of {}",
            repr(value),
            repr(&Value::Array(options.clone()))
        ));
    }
    if let Some(Value::Array(options)) = s.get("oneOf") {
        let valid = options.iter().filter(|o| check(o, value).is_ok()).count();
        match valid {
            1 => {}
            0 => {
                return Err(format!(
                    "{} is not valid under any of the given schemas",
                    repr(value)
                ));
            }
            _ => {
                return Err(format!(
                    "{} is valid under each of the given schemas",
                    repr(value)
                ));
            }
        }
    }
    match value {
        Value::Object(o) => object(s, o),
        Value::Array(items) => {
            if let Some(min) = s.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                return Err(format!("{} is too short", repr(value)));
            }
            if let Some(item) = s.get("items") {
                for v in items {
                    check(item, v)?;
                }
            }
            Ok(())
        }
        Value::String(text) => {
            let chars = text.chars().count() as u64;
            if let Some(min) = s.get("minLength").and_then(Value::as_u64)
                && chars < min
            {
                return Err(format!("{} is too short", repr(value)));
            }
            if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
                && chars > max
            {
                return Err(format!("{} is too long", repr(value)));
            }
            if let Some(pattern) = s.get("pattern").and_then(Value::as_str)
                && !matches(pattern, text)
            {
                return Err(format!("{} does not match '{pattern}'", repr(value)));
            }
            Ok(())
        }
        Value::Number(n) => {
            if let (Some(min), Some(v)) = (s.get("minimum").and_then(Value::as_f64), n.as_f64())
                && v < min
            {
                return Err(format!(
                    "{} is less than the minimum of {}",
                    repr(value),
                    repr(&s["minimum"])
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn object(s: &Map<String, Value>, o: &Map<String, Value>) -> Result<(), String> {
    if let Some(Value::Array(required)) = s.get("required") {
        for name in required.iter().filter_map(Value::as_str) {
            if !o.contains_key(name) {
                return Err(format!("'{name}' is a required property"));
            }
        }
    }
    let properties = s.get("properties").and_then(Value::as_object);
    let patterns: Vec<(&str, &Value)> = s
        .get("patternProperties")
        .and_then(Value::as_object)
        .map(|p| p.iter().map(|(k, v)| (k.as_str(), v)).collect())
        .unwrap_or_default();
    if s.get("additionalProperties") == Some(&Value::Bool(false)) {
        let extra: Vec<&String> = o
            .keys()
            .filter(|k| {
                !properties.is_some_and(|p| p.contains_key(*k))
                    && !patterns.iter().any(|(re, _)| matches(re, k))
            })
            .collect();
        if !extra.is_empty() {
            let names: Vec<String> = extra.iter().map(|k| format!("'{k}'")).collect();
            let verb = if extra.len() == 1 { "was" } else { "were" };
            return Err(format!(
                "Additional properties are not allowed ({} {verb} unexpected)",
                names.join(", ")
            ));
        }
    }
    for (k, v) in o {
        if let Some(sub) = properties.and_then(|p| p.get(k)) {
            check(sub, v)?;
        }
        for (re, sub) in &patterns {
            if matches(re, k) {
                check(sub, v)?;
            }
        }
    }
    Ok(())
}

fn is_type(value: &Value, t: &str) -> bool {
    match t {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        _ => false,
    }
}

/// A schema's pattern; one that does not compile matches nothing (the schema tests catch it).
fn matches(pattern: &str, text: &str) -> bool {
    Regex::new(pattern).is_ok_and(|re| re.is_match(text))
}

/// A value as Python's `repr` shows it (`'text'`, `True`, `None`, `{'a': 1}`).
pub fn repr(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(o) => {
            let inner: Vec<String> = o
                .iter()
                .map(|(k, v)| format!("'{k}': {}", repr(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 5},
                "note": {"type": ["string", "null"]},
                "count": {"type": "integer", "minimum": 1},
                "nets": {"type": "array", "minItems": 1, "items": {
                    "type": "object",
                    "properties": {"uuid": {"type": "string"}},
                    "required": ["uuid"],
                    "additionalProperties": false
                }},
                "meta": {"type": "object",
                    "patternProperties": {"^[a-z]{1,3}$": {"type": "string"}},
                    "additionalProperties": false},
                "kind": {"enum": ["a", "b"]}
            },
            "required": ["name", "nets"],
            "additionalProperties": false
        })
    }

    #[test]
    fn each_keyword_is_worded_as_python_jsonschema_words_it() {
        let cases = [
            (
                json!({"nets": [{"uuid": "x"}]}),
                "'name' is a required property",
            ),
            (
                json!({"name": "a", "nets": [{"uuid": "x"}], "zz": 1}),
                "Additional properties are not allowed ('zz' was unexpected)",
            ),
            (
                json!({"name": 5, "nets": [{"uuid": "x"}]}),
                "5 is not of type 'string'",
            ),
            (
                json!({"name": "a", "note": 1, "nets": [{"uuid": "x"}]}),
                "1 is not of type 'string', 'null'",
            ),
            (
                json!({"name": "", "nets": [{"uuid": "x"}]}),
                "'' is too short",
            ),
            (
                json!({"name": "abcdef", "nets": [{"uuid": "x"}]}),
                "'abcdef' is too long",
            ),
            (json!({"name": "a", "nets": []}), "[] is too short"),
            (
                json!({"name": "a", "nets": [{"port": true}]}),
                "'uuid' is a required property",
            ),
            (
                json!({"name": "a", "nets": [{"uuid": "x"}], "count": 0}),
                "0 is less than the minimum of 1",
            ),
            (
                json!({"name": "a", "nets": [{"uuid": "x"}], "meta": {"toolong": "v"}}),
                "Additional properties are not allowed ('toolong' was unexpected)",
            ),
            (
                json!({"name": "a", "nets": [{"uuid": "x"}], "meta": {"ab": false}}),
                "False is not of type 'string'",
            ),
            (
                json!({"name": "a", "nets": [{"uuid": "x"}], "kind": "c"}),
                "'c' is not one of ['a', 'b']",
            ),
            (json!([1]), "[1] is not of type 'object'"),
        ];
        for (body, want) in cases {
            assert_eq!(violation(&schema(), &body).as_deref(), Some(want), "{body}");
        }
        let ok = json!({"name": "a", "note": null, "nets": [{"uuid": "x"}], "meta": {"ab": "v"}, "kind": "b"});
        assert_eq!(violation(&schema(), &ok), None);
    }

    #[test]
    fn one_of_needs_exactly_one_match() {
        let s = json!({"oneOf": [{"required": ["a"]}, {"required": ["b"]}], "type": "object"});
        assert_eq!(violation(&s, &json!({"a": 1})), None);
        assert!(violation(&s, &json!({})).is_some());
        assert!(violation(&s, &json!({"a": 1, "b": 2})).is_some());
    }
}
