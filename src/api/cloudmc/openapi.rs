//! The dialect's part of `/openapi.json`: its operations under the `cloudmc` tag (under
//! `/cloudmc/api/v2`, and again under `/cloudmc/api/v1`) and its key header.

use serde_json::{Value, json};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{MOUNT, V1_MOUNT, instances, repr, tasks};
use crate::api::openapi::{add_response, constrain_parameter, each_operation};

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

/// The create body as `instances::create` reads it (`body::Fields`): null is absence,
/// numbers may come as numeric text, and fields it does not know are kept out of the way
/// rather than refused, as CloudMC's plugin did.
fn create_body() -> Value {
    let text = || json!({"type": ["string", "null"]});
    let uuid = || json!({"type": "string", "format": "uuid"});
    let count = || {
        json!({"type": ["integer", "string", "null"], "minimum": 0,
        "maximum": u64::MAX, "pattern": r"^\s*[0-9]{1,19}\s*$"})
    };
    json!({
        "type": "object",
        "required": ["name", "computeOfferingId", "networkId", "templateId"],
        "properties": {
            "name": {"type": "string", "maxLength": crate::limits::HOSTNAME_LABEL_BYTES,
                "pattern": "^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$",
                "description": "Also the host name"},
            "computeOfferingId": uuid(), "networkId": uuid(), "templateId": uuid(),
            "cpuCount": count(), "memoryInMB": count(), "ipAddress": text(),
            "sshKeyName": text(), "publicKey": text(), "userData": text(),
            "rootVolumeSizeInGb": count(), "additionalDiskSizeInGb": count(),
            "additionalDiskIops": count(), "affinityGroupId": text(), "diskOfferingId": text(),
            "volumeIdToAttach": text(),
            "portsToForward": {"type": ["array", "null"], "items": {"type": ["string", "integer"]}},
        },
    })
}

/// The create body's schema, paging's bounds and its refusal, then the same operations
/// under CloudMC's own `v1` base.
pub fn adjust(doc: &mut Value) {
    each_operation(doc, MOUNT, |path, method, op| {
        if !path.ends_with("/instances") {
            return;
        }
        if method == "post" {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": create_body()}}});
        }
        if method == "get" {
            for name in ["page_number", "page_size"] {
                constrain_parameter(op, name, false, json!({"type": "integer", "minimum": 1}));
            }
            constrain_parameter(
                op,
                "sort_by",
                false,
                json!({"enum": ["name", "state", "created"]}),
            );
            constrain_parameter(
                op,
                "sort_order",
                false,
                json!({"type": "string",
                "pattern": "^([Aa][Ss][Cc]|[Dd][Ee][Ss][Cc])$"}),
            );
            add_response(
                op,
                "400",
                json!({"description": "A bad paging or sorting argument (code 2001)",
                "content": {"application/json": {"schema": {"type": "object"}}}}),
            );
        }
    });
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
