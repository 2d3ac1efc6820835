//! The dialect's part of `/openapi.json`: its operations under the `wakame` tag and its
//! token header.

use serde_json::{Value, json};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{MOUNT, instances, repr};
use crate::api::openapi::{add_response, constrain_parameter, each_operation};

struct Token;

impl Modify for Token {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "wakame_token",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    "X-VDC-Requester-Token",
                    "A ledger token (the original read this header and ignored it)",
                ))),
            );
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(
        instances::index, instances::create, instances::show, instances::destroy,
        instances::reboot, instances::stop, instances::start,
    ),
    components(schemas(repr::Document, repr::NetworkEntry, repr::Vif, repr::Ipv4, repr::Volume)),
    modifiers(&Token),
    tags((name = "wakame", description = "Wakame-VDC dcmgr v11 instances, seed 004, at /wakame/api/ (a .json suffix on any path is the same route)")),
)]
pub struct Doc;

/// What every operation shares: the account header is an account id (`a-` and a
/// customer's uuid), and a missing or unknown account, or a token that is not a valid
/// one, is dcmgr's `InvalidRequestCredentials` (400, code 103): dcmgr had no 401.
pub fn adjust(doc: &mut Value) {
    // The index answers one page object inside an array, as dcmgr's `R::InstanceCollection`
    // did, with the page under both `results` and the wiki's `result`.
    let page = json!({"type": "array", "minItems": 1, "maxItems": 1, "items": {
        "type": "object",
        "required": ["owner_total", "start", "limit", "results"],
        "properties": {
            "owner_total": {"type": "integer", "minimum": 0},
            "start": {"type": "integer", "minimum": 0},
            "limit": {"type": ["integer", "null"]},
            "results": {"type": "array", "items": {"$ref": "#/components/schemas/wakame.Instance"}},
            "result": {"type": "array", "items": {"$ref": "#/components/schemas/wakame.Instance"}},
        },
    }});
    let index = format!(
        "/paths/{}/get/responses/200/content/application~1json/schema",
        MOUNT.replace('/', "~1") + "~1instances"
    );
    if let Some(schema) = doc.pointer_mut(&index) {
        *schema = page;
    }
    each_operation(doc, MOUNT, |path, method, op| {
        if path == format!("{MOUNT}/instances") && method == "post" {
            // One value or several: on the wire a list of one is just the value.
            constrain_parameter(
                op,
                "security_groups",
                false,
                json!({
                "type": ["array", "string"], "items": {"type": "string"},
                "description": "`sg-` ids; unknown ones are skipped"}),
            );
        }
        if path == format!("{MOUNT}/instances") && method == "get" {
            // Sinatra's params and Ruby's `to_i`: any text is a number (its leading
            // digits, else 0), a repeated argument is its last value.
            for name in ["start", "limit"] {
                constrain_parameter(
                    op,
                    name,
                    false,
                    json!({
                    "description": "Read as Ruby's `to_i`: the leading digits of any text, else 0"}),
                );
            }
        }
        constrain_parameter(
            op,
            "X-VDC-Account-UUID",
            true,
            json!({"type": "string",
                "pattern": "^(a-)?[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}$",
                "description": "`a-` and the id of a customer the caller may see"}),
        );
        add_response(
            op,
            "400",
            json!({"description": "No account, one the caller may not see, or no valid token (code 103)",
                "content": {"application/json": {"schema": {"type": "object"}}}}),
        );
    });
}
