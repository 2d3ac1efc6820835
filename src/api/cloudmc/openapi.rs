//! The dialect's part of `/openapi.json`: its operations under the `cloudmc` tag (under
//! `/cloudmc/api/v2`, and again under `/cloudmc/api/v1`) and its key header.

use serde_json::{Value, json};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{MOUNT, V1_MOUNT, instances, repr, tasks};

struct Key;

impl Modify for Key {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "cloudmc_key",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    "MC-Api-Key",
                    "A ledger token, where CloudMC took an API key",
                ))),
            );
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(
        instances::list, instances::create, instances::retrieve, instances::update,
        instances::operate, instances::destroy, tasks::show,
    ),
    components(schemas(repr::InstanceRepr, repr::Nic, repr::PublicIp)),
    modifiers(&Key),
    tags((name = "cloudmc", description = "CloudMC CloudStack plugin instances (Cox Edge), seed 002, at /cloudmc/api/v2/ and /cloudmc/api/v1/")),
)]
pub struct Doc;

/// The same operations under CloudMC's own `v1` base.
pub fn adjust(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object().cloned() else {
        return;
    };
    for (path, item) in paths {
        if let Some(rest) = path.strip_prefix(MOUNT) {
            let mut item = item.clone();
            if let Some(ops) = item.as_object_mut() {
                for op in ops.values_mut() {
                    if let Some(id) = op.get("operationId").and_then(Value::as_str) {
                        op["operationId"] = json!(format!("{id}_v1"));
                    }
                }
            }
            doc["paths"][format!("{V1_MOUNT}{rest}")] = item;
        }
    }
}
