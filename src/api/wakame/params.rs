//! Create parameters as dcmgr read them: a JSON body (on a `.json` path, or sent as
//! JSON), wrapped in one key as ActiveResource sends it (`{"instance": {...}}`) or flat;
//! otherwise Sinatra's params, the query string and a form body, where `name[]`
//! collects a list and a repeated plain name keeps the last value.

use actix_web::web;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Default)]
pub struct Params(Map<String, Value>);

fn pairs(raw: &str) -> Vec<(String, String)> {
    web::Query::<Vec<(String, String)>>::from_query(raw)
        .map(|q| q.into_inner())
        .unwrap_or_default()
}

impl Params {
    /// The parameters of a request; `Err` for a JSON body that does not parse.
    pub fn parse(
        query: &str,
        content_type: Option<&str>,
        json_suffix: bool,
        body: &[u8],
    ) -> Result<Params, String> {
        let media = content_type
            .map(|c| {
                c.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let json = json_suffix || media == "application/json" || media.ends_with("+json");
        let mut map = Map::new();
        let add = |pairs: Vec<(String, String)>, map: &mut Map<String, Value>| {
            for (k, v) in pairs {
                match k.strip_suffix("[]") {
                    Some(list) => {
                        let entry = map
                            .entry(list.to_string())
                            .or_insert_with(|| Value::Array(Vec::new()));
                        if let Value::Array(items) = entry {
                            items.push(Value::String(v));
                        } else {
                            *entry = Value::Array(vec![Value::String(v)]);
                        }
                    }
                    None => {
                        map.insert(k, Value::String(v));
                    }
                }
            }
        };
        add(pairs(query), &mut map);
        if json && !body.iter().all(u8::is_ascii_whitespace) {
            let value: Value = serde_json::from_slice(body)
                .map_err(|e| format!("the request body is not valid JSON: {e}"))?;
            let Value::Object(top) = value else {
                return Err("the request body must be a JSON object".into());
            };
            let inner = match top.iter().next() {
                Some((_, Value::Object(wrapped))) if top.len() == 1 => wrapped.clone(),
                _ => top,
            };
            map.extend(inner);
        } else if media == "application/x-www-form-urlencoded" {
            add(pairs(&String::from_utf8_lossy(body)), &mut map);
        }
        Ok(Params(map))
    }

    /// A text parameter (numbers as their text); blank is absent.
    pub fn text(&self, name: &str) -> Option<String> {
        match self.0.get(name)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// A list parameter: an array, or one value.
    pub fn list(&self, name: &str) -> Vec<String> {
        match self.0.get(name) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
            _ => Vec::new(),
        }
    }

    /// `ha_enabled`: the string `true` (and JSON `true`) enables it.
    pub fn flag(&self, name: &str) -> bool {
        matches!(self.0.get(name), Some(Value::Bool(true)))
            || matches!(self.0.get(name), Some(Value::String(s)) if s == "true")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_and_flat_json_forms_and_query_all_read_alike() {
        let wrapped = Params::parse(
            "",
            None,
            true,
            br#"{"instance": {"image_id": "wmi-1", "security_groups": ["sg-a"], "ha_enabled": "true"}}"#,
        )
        .expect("json");
        let flat = Params::parse(
            "",
            Some("application/json"),
            false,
            br#"{"image_id": "wmi-1", "security_groups": "sg-a", "ha_enabled": "true"}"#,
        )
        .expect("json");
        let form = Params::parse(
            "image_id=wmi-1",
            Some("application/x-www-form-urlencoded"),
            false,
            b"security_groups[]=sg-a&ha_enabled=true",
        )
        .expect("form");
        for p in [wrapped, flat, form] {
            assert_eq!(p.text("image_id").as_deref(), Some("wmi-1"));
            assert_eq!(p.list("security_groups"), ["sg-a"]);
            assert!(p.flag("ha_enabled"));
        }
        assert!(Params::parse("", None, true, b"{nope").is_err());
        let ignored = Params::parse("", Some("text/plain"), false, b"image_id=x").expect("ok");
        assert_eq!(ignored.text("image_id"), None);
    }
}
