//! The dialect's part of `/openapi.json`: its operations under the `launch-provision`
//! tag, with the content types it really sends, and its two ways of carrying a token.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{ec2, instances};

struct Token;

impl Modify for Token {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "launch_provision_token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "token",
                "A ledger token, with any `key` argument beside it (query or form field)",
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
