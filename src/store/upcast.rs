//! Schema evolution of stored payloads. Stored bytes are never rewritten (they are hashed
//! into the chain); old versions are brought to the current shape when read.

use serde_json::{Value, json};

/// The payload schema version this build writes for an event type.
pub fn current_version(event_type: &str) -> u32 {
    match event_type {
        // v1: {"force": bool}; v2: {"mode": "graceful" | "forced"}.
        "StopRequested" => 2,
        _ => 1,
    }
}

/// Brings `data`, stored at `version`, to the current version of `event_type`.
pub fn upcast(event_type: &str, version: u32, mut data: Value) -> Result<Value, String> {
    let current = current_version(event_type);
    if version > current {
        return Err(format!(
            "{event_type} schema version {version} is newer than this build understands ({current})"
        ));
    }
    for from in version..current {
        data = match (event_type, from) {
            ("StopRequested", 1) => {
                let force = data
                    .get("force")
                    .and_then(Value::as_bool)
                    .ok_or("StopRequested v1 without a boolean force")?;
                json!({ "mode": if force { "forced" } else { "graceful" } })
            }
            _ => return Err(format!("no upcaster for {event_type} version {from}")),
        };
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_requested_v1_becomes_a_mode() {
        assert_eq!(
            upcast("StopRequested", 1, json!({"force": true})),
            Ok(json!({"mode": "forced"}))
        );
        assert_eq!(
            upcast("StopRequested", 1, json!({"force": false})),
            Ok(json!({"mode": "graceful"}))
        );
        assert!(upcast("StopRequested", 1, json!({})).is_err());
    }

    #[test]
    fn current_versions_pass_through_and_future_ones_are_refused() {
        let data = json!({"mode": "forced"});
        assert_eq!(upcast("StopRequested", 2, data.clone()), Ok(data));
        assert_eq!(upcast("Started", 1, json!({})), Ok(json!({})));
        assert!(upcast("Started", 2, json!({})).is_err());
    }
}
