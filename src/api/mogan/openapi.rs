//! The dialect's part of `/openapi.json`: its operations under the `mogan` tag, the
//! create, patch and states bodies as the very schemas the handlers check, its token
//! header, and the same operations again under the bare `/mogan/` mount.

use serde_json::{Value, json};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{BARE_MOUNT, MOUNT, catalog, instances, repr, schemas, states};
use crate::api::openapi::{constrain_parameter, each_operation};

struct Token;

impl Modify for Token {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "mogan_token",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    "X-Auth-Token",
                    "A ledger token, where keystonemiddleware read a Keystone token",
                ))),
            );
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(
        instances::list_instances, instances::create_instance, instances::detail_instances,
        instances::show_instance, instances::patch_instance, instances::delete_instance,
        states::show_instance, states::power_instance, states::lock_instance,
        instances::list_servers, instances::create_server, instances::detail_servers,
        instances::show_server, instances::patch_server, instances::delete_server,
        states::show_server, states::power_server, states::lock_server,
        catalog::flavors, catalog::flavor, catalog::availability_zones,
        catalog::root, catalog::version,
    ),
    components(schemas(
        repr::InstanceRepr, repr::ServerRepr, repr::StatesRepr, repr::FlavorRepr, repr::Link,
        repr::Port, repr::FixedIp, repr::Address, repr::FaultRepr,
    )),
    modifiers(&Token),
    tags((name = "mogan", description = "OpenStack Nimble/Mogan bare-metal compute, seed 001, at /mogan/v1/ and /mogan/ (instances and servers spellings)")),
)]
pub struct Doc;

/// The bodies the handlers check against a vendor schema: (method, path, schema name,
/// schema).
fn bodies() -> Vec<(&'static str, String, &'static str, Value)> {
    let mut out = vec![
        (
            "post",
            format!("{MOUNT}/instances"),
            "mogan.InstanceCreate",
            schemas::instance_create(),
        ),
        (
            "post",
            format!("{MOUNT}/servers"),
            "mogan.ServerCreate",
            schemas::server_create(),
        ),
    ];
    for collection in ["instances", "servers"] {
        let item = format!("{MOUNT}/{collection}/{{uuid}}");
        out.push((
            "patch",
            item.clone(),
            "mogan.JsonPatch",
            schemas::json_patch(),
        ));
        out.push((
            "put",
            format!("{item}/states/power"),
            "mogan.PowerTarget",
            schemas::power_body(),
        ));
        out.push((
            "put",
            format!("{item}/states/lock"),
            "mogan.LockTarget",
            schemas::lock_body(),
        ));
    }
    out
}

/// Lists that answer `{"<key>": [<item>, ...]}`: (path, key, item schema).
fn wrapped_lists() -> [(String, &'static str, &'static str); 3] {
    [
        (format!("{MOUNT}/flavors"), "flavors", "mogan.Flavor"),
        (
            format!("{MOUNT}/instances/detail"),
            "instances",
            "mogan.Instance",
        ),
        (format!("{MOUNT}/servers/detail"), "servers", "mogan.Server"),
    ]
}

/// Adds the checked body schemas, the lists' wrapping objects and the bare mount's
/// copies to the merged document.
pub fn adjust(doc: &mut Value) {
    // oslo's `bool_from_string`, as `instances::boolean` reads it.
    let flag = json!({"type": "string",
        "pattern": r"^\s*([01]|[Tt]([Rr][Uu][Ee])?|[Ff]([Aa][Ll][Ss][Ee])?|[Oo][Nn]|[Oo][Ff][Ff]|[Yy]([Ee][Ss])?|[Nn][Oo]?)\s*$"});
    each_operation(doc, MOUNT, |_, _, op| {
        constrain_parameter(op, "all_tenants", false, flag.clone());
    });
    for (path, key, item) in wrapped_lists() {
        let pointer = format!("/paths/{}/get/responses/200", path.replace('/', "~1"));
        if let Some(ok) = doc.pointer_mut(&pointer) {
            ok["content"]["application/json"]["schema"] = json!({
                "type": "object",
                "required": [key],
                "properties": {key: {"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}}},
            });
        }
    }
    for (method, path, name, schema) in bodies() {
        doc["components"]["schemas"][name] = schema;
        if let Some(op) = doc["paths"][&path].get_mut(method) {
            op["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}}
            });
        }
    }
    let Some(paths) = doc["paths"].as_object().cloned() else {
        return;
    };
    let mut copy = |from: &str, to: String| {
        let Some(mut item) = paths.get(from).cloned() else {
            return;
        };
        if let Some(ops) = item.as_object_mut() {
            for op in ops.values_mut() {
                if let Some(id) = op.get("operationId").and_then(Value::as_str) {
                    op["operationId"] = json!(format!("{id}_via_{}", to.replace('/', "_")));
                }
            }
        }
        doc["paths"][to] = item;
    };
    for path in paths.keys() {
        if let Some(rest) = path.strip_prefix(&format!("{MOUNT}/")) {
            copy(path, format!("{BARE_MOUNT}/{rest}"));
        }
    }
    copy(&format!("{BARE_MOUNT}/"), BARE_MOUNT.to_string());
    copy(MOUNT, format!("{MOUNT}/"));
}
