//! The published schemas in `schema/` match the code, and the golden example of every
//! event type and schema version still decodes: old formats through the upcasters.
//! Regenerate the schemas after an intended change with:
//! `UPDATE_SCHEMAS=1 cargo test --test it schemas`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use instance_ledger::domain::instance::{Event, StopMode};
use instance_ledger::store::Envelope;
use instance_ledger::store::envelope::Payload;
use instance_ledger::store::schema;
use instance_ledger::store::upcast::current_version;
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schema")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (type, version) of every published event schema.
fn event_versions() -> BTreeSet<(String, u32)> {
    schema::files()
        .into_iter()
        .filter_map(|(path, _)| {
            let name = path.strip_prefix("events/")?.strip_suffix(".schema.json")?;
            let (ty, v) = name.rsplit_once(".v")?;
            Some((ty.to_string(), v.parse().ok()?))
        })
        .collect()
}

#[test]
fn checked_in_schemas_match_the_code() {
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
    let generated = schema::files();
    let mut drift = Vec::new();
    for (path, text) in &generated {
        let file = root().join(path);
        if update {
            std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
            std::fs::write(&file, text).expect("write schema");
        } else if std::fs::read_to_string(&file).ok().as_deref() != Some(text.as_str()) {
            drift.push(path.clone());
        }
    }
    // A schema file the code no longer produces is stale, except old versions, which the
    // code keeps producing from the frozen legacy types.
    let known: BTreeSet<_> = generated.iter().map(|(p, _)| p.clone()).collect();
    let mut on_disk = Vec::new();
    for dir in [root(), root().join("events")] {
        for entry in std::fs::read_dir(&dir).expect("schema dir").flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.ends_with(".schema.json") {
                let rel = entry
                    .path()
                    .strip_prefix(root())
                    .expect("rel")
                    .to_string_lossy()
                    .to_string();
                on_disk.push(rel);
            }
        }
    }
    let stale: Vec<_> = on_disk.iter().filter(|p| !known.contains(*p)).collect();
    assert!(
        drift.is_empty() && stale.is_empty(),
        "schema/ differs from the code (drifted: {drift:?}, stale: {stale:?}); if the change is \
         intended, run `UPDATE_SCHEMAS=1 cargo test --test it schemas` and commit the result"
    );
}

#[test]
fn every_event_type_and_version_has_a_golden_example_that_decodes_and_validates() {
    let versions = event_versions();
    assert!(versions.len() >= 22, "{versions:?}");
    for (ty, version) in &versions {
        let path = root().join(format!("examples/{ty}.v{version}.json"));
        let stored = read_json(&path);
        let env: Envelope = serde_json::from_value(stored.clone())
            .unwrap_or_else(|e| panic!("{ty} v{version}: {e}"));
        assert_eq!(
            (&env.event_type, env.schema_version),
            (ty, *version),
            "{}",
            path.display()
        );

        // The stored shape validates against the schema published for its version.
        let schema = read_json(&root().join(format!("events/{ty}.v{version}.schema.json")));
        let validator = jsonschema::validator_for(&schema)
            .unwrap_or_else(|e| panic!("{ty} v{version} schema: {e}"));
        let instance = json!({ "type": env.event_type, "data": env.data });
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{ty} v{version} example fails its schema: {errors:?}"
        );

        // Today's types read it (upcasting old versions) and write the current shape back
        // unchanged: a format change that breaks old events fails here.
        let payload = env
            .payload()
            .unwrap_or_else(|e| panic!("{ty} v{version} no longer decodes: {e}"));
        let (written_type, written) = payload.to_parts().expect("encode");
        assert_eq!(&written_type, ty);
        assert_eq!(
            written,
            env.current_data().expect("upcast"),
            "{ty} v{version}"
        );
        if *version == current_version(ty) {
            assert_eq!(
                written, env.data,
                "{ty}: the current version must round-trip byte-identically in shape"
            );
        }

        // The envelope as a whole validates too.
        let envelope_schema = read_json(&root().join("envelope.v1.schema.json"));
        let validator = jsonschema::validator_for(&envelope_schema).expect("envelope schema");
        assert!(
            validator.is_valid(&stored),
            "{ty} v{version}: envelope fails its schema"
        );
    }
}

#[test]
fn stop_requested_v1_upcasts_to_the_current_mode() {
    let env: Envelope =
        serde_json::from_value(read_json(&root().join("examples/StopRequested.v1.json")))
            .expect("envelope");
    assert_eq!(env.data, json!({"force": false}));
    assert_eq!(
        env.payload().expect("decodes"),
        Payload::Instance(Event::StopRequested {
            mode: StopMode::Graceful
        })
    );
    let mut forced = env.clone();
    forced.data = json!({"force": true});
    assert_eq!(
        forced.payload().expect("decodes"),
        Payload::Instance(Event::StopRequested {
            mode: StopMode::Forced
        })
    );
}

#[test]
fn the_instance_view_schema_accepts_a_real_view() {
    let schema = read_json(&root().join("instance-view.v1.schema.json"));
    let validator = jsonschema::validator_for(&schema).expect("view schema");
    let created = read_json(&root().join("examples/Created.v1.json"));
    let d = &created["data"];
    let view = json!({
        "id": created["stream_id"], "short_id": d["short_id"], "name": d["name"], "hostname": d["hostname"],
        "description": d["description"], "project_id": d["project_id"], "customer_id": d["customer_id"],
        "flavor_id": d["flavor_id"], "vcpus": d["vcpus"], "memory_mb": d["memory_mb"], "disk_gb": d["disk_gb"],
        "image_id": d["image_id"], "network_ids": d["network_ids"], "ssh_key_id": d["ssh_key_id"],
        "security_groups": d["security_groups"], "availability_zone": d["availability_zone"], "tags": d["tags"],
        "attributes": {}, "locked": false, "launched_at": null, "fault": null, "iso_id": null,
        "state": "provisioning", "power_state": "off", "target_power_state": "on", "version": 1,
        "created_at": created["at"], "updated_at": created["at"],
    });
    let errors: Vec<String> = validator
        .iter_errors(&view)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let mut bad = view.clone();
    bad["state"] = json!("flying");
    assert!(
        !validator.is_valid(&bad),
        "the schema must reject an unknown state"
    );
}
