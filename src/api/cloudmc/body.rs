//! Request bodies as CloudMC's clients send them: JSON objects whose unknown fields are
//! ignored (the Go client adds its own), empty bodies meaning `{}`, and integers as
//! numbers or numeric strings (the Go client sends its disk sizes as strings).

use serde_json::{Map, Value};
use uuid::Uuid;

use super::CmError;

#[derive(Debug, Clone, Default)]
pub struct Fields(pub Map<String, Value>);

impl Fields {
    pub fn parse(bytes: &[u8]) -> Result<Fields, CmError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Fields::default());
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(m)) => Ok(Fields(m)),
            Ok(_) => Err(CmError::invalid(
                "body",
                "The request body must be a JSON object",
            )),
            Err(e) => Err(CmError::invalid(
                "body",
                format!("The request body is not valid JSON: {e}"),
            )),
        }
    }

    /// Adds query arguments for fields the body does not have (DELETE's flags).
    pub fn with_query(mut self, pairs: &[(String, String)]) -> Fields {
        for (k, v) in pairs {
            self.0
                .entry(k.clone())
                .or_insert_with(|| Value::String(v.clone()));
        }
        self
    }

    fn present(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    pub fn text(&self, name: &str) -> Result<Option<String>, CmError> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(CmError::invalid(name, format!("{name} must be a string"))),
        }
    }

    pub fn required_text(&self, name: &str) -> Result<String, CmError> {
        self.text(name)?
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| CmError::missing(name))
    }

    pub fn uuid(&self, name: &str) -> Result<Option<Uuid>, CmError> {
        match self.text(name)? {
            None => Ok(None),
            Some(s) => Uuid::try_parse(s.trim())
                .map(Some)
                .map_err(|_| CmError::invalid(name, format!("{name} must be a UUID, got {s:?}"))),
        }
    }

    pub fn required_uuid(&self, name: &str) -> Result<Uuid, CmError> {
        self.uuid(name)?.ok_or_else(|| CmError::missing(name))
    }

    pub fn int(&self, name: &str) -> Result<Option<u64>, CmError> {
        let bad = || CmError::invalid(name, format!("{name} must be a non-negative integer"));
        match self.present(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(bad),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad()),
            Some(_) => Err(bad()),
        }
    }

    pub fn flag(&self, name: &str) -> Result<bool, CmError> {
        match self.present(name) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
            Some(_) => Err(CmError::invalid(name, format!("{name} must be a boolean"))),
        }
    }

    pub fn list(&self, name: &str) -> Result<Vec<String>, CmError> {
        match self.present(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(CmError::invalid(name, format!("{name} must list strings"))),
                })
                .collect(),
            Some(_) => Err(CmError::invalid(name, format!("{name} must be an array"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_means_nothing_numbers_may_be_strings_and_query_fills_gaps() {
        let f = Fields::parse(b"").expect("empty");
        assert_eq!(f.flag("forceStop").ok(), Some(false));
        let f = Fields::parse(br#"{"additionalDiskSizeInGb": "20", "cpuCount": 2, "extra": 1}"#)
            .expect("json");
        assert_eq!(f.int("additionalDiskSizeInGb").ok(), Some(Some(20)));
        assert_eq!(f.int("cpuCount").ok(), Some(Some(2)));
        assert!(Fields::parse(b"[1]").is_err());
        assert!(Fields::parse(b"{nope").is_err());
        let f = Fields::parse(br#"{"purgeImmediately": false}"#)
            .expect("json")
            .with_query(&[
                ("purgeImmediately".into(), "true".into()),
                ("deleteSnapshots".into(), "true".into()),
            ]);
        assert_eq!(
            f.flag("purgeImmediately").ok(),
            Some(false),
            "the body wins"
        );
        assert_eq!(f.flag("deleteSnapshots").ok(), Some(true));
    }
}
