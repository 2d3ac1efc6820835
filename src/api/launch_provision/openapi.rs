//! The dialect's part of `/openapi.json`: its operations under the `launch-provision`
//! tag, with the content types it really sends, and its two ways of carrying a token.

use serde_json::{Value, json};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{MOUNT, ec2, instances};
use crate::api::openapi::{constrain_parameter, each_operation};

struct Token;

impl Modify for Token {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        // The pair the wrapper checked, both arguments (query or form field) together.
        components.add_security_scheme(
            "launch_provision_key",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "key",
                "Any value: the ledger checks the `token` beside it",
            ))),
        );
        components.add_security_scheme(
            "launch_provision_token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "token",
                "A ledger token, with the `key` argument beside it (a lone `token` is \
                 refused); `Authorization: Bearer <token>` is taken too when no `token` \
                 argument is given",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(
        instances::root, instances::launch, instances::start, instances::stop,
        instances::terminate, instances::reboot, instances::modify, instances::attributes,
        instances::attribute,
    ),
    components(schemas(ec2::Attributes)),
    modifiers(&Token),
    tags((name = "launch-provision", description = "Launch & Provision internal API (EC2 wrapper), seed 003, at /launch-provision/v1/; arguments as query or form fields")),
)]
pub struct Doc;

/// What the handlers require of arguments no macro attribute states: a present argument
/// is a non-empty one (Tornado's `get_argument` treated an empty value as missing), a
/// launch names its image as `ami` (`image_id` is the same argument under its EC2 name,
/// left out of the document so that no parameter depends on another) and counts from 1.
pub fn adjust(doc: &mut Value) {
    let text = || json!({"type": "string", "minLength": 1});
    each_operation(doc, MOUNT, |path, _, op| {
        if path.ends_with("/launch") {
            if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
                params.retain(|p| p["name"] != "image_id");
            }
            constrain_parameter(
                op,
                "ami",
                true,
                json!({"type": "string", "minLength": 1,
                "description": "The image (its name or id); `image_id` is the same argument"}),
            );
            constrain_parameter(op, "instance_type", true, text());
            constrain_parameter(
                op,
                "ebs_optimized",
                false,
                json!({"type": "string",
                "pattern": "^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|[01])?$",
                "description": "Default false (also when empty)"}),
            );
            for count in ["min_count", "max_count"] {
                constrain_parameter(
                    op,
                    count,
                    false,
                    json!({"type": "integer", "minimum": 1,
                    "description": "Default 1"}),
                );
            }
        }
        if path.ends_with("/modify") {
            constrain_parameter(op, "attribute", true, text());
            constrain_parameter(op, "value", true, text());
        }
    });
}
