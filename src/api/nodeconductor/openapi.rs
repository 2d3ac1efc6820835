//! The dialect's part of `/openapi.json`: its operations under the `nodeconductor` tag,
//! with the bodies it really takes and gives, and its token scheme.

use serde_json::{Value, json};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{MOUNT, catalog, instances, repr};
use crate::api::openapi::{add_response, constrain_parameter, each_operation};

struct Token;

impl Modify for Token {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "nodeconductor_token",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    "Authorization",
                    "`Token <token>`: a ledger token, as DRF's TokenAuthentication read it",
                ))),
            );
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(
        instances::list, instances::create, instances::show, instances::update,
        instances::destroy, instances::start, instances::stop, instances::resize,
        catalog::templates, catalog::template, catalog::flavors, catalog::flavor,
        catalog::projects, catalog::project, catalog::customers, catalog::customer,
        catalog::keys, catalog::key, catalog::security_groups,
    ),
    components(schemas(
        repr::InstanceRepr, repr::CreatedRepr, repr::GroupRepr, repr::CreateBody,
        repr::UpdateBody, repr::ResizeBody, repr::StatusBody, repr::DetailBody, repr::GroupName,
    )),
    modifiers(&Token),
    tags((name = "nodeconductor", description = "NodeConductor (Waldur) IaaS instances, seed 000, at /nodeconductor/api/")),
)]
pub struct Doc;

/// What every list shares, as `links::Paging` reads it: `page` is a number from 1 or
/// `last` (anything else, or a page past the end, is Django's 404), and `page_size`
/// any text (what is not a positive number means the default, as DRF's paginator took
/// it).
pub fn adjust(doc: &mut Value) {
    each_operation(doc, MOUNT, |_, method, op| {
        if method != "get" {
            return;
        }
        let lists = op["parameters"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["name"] == "page"));
        if !lists {
            return;
        }
        constrain_parameter(
            op,
            "page",
            false,
            json!({"type": "string", "pattern": "^([1-9][0-9]*|last)$",
                "description": "A page number (from 1) or `last`"}),
        );
        constrain_parameter(
            op,
            "page_size",
            false,
            json!({"type": "string",
                "description": "1 to 100; anything else means the default, 10"}),
        );
        add_response(
            op,
            "404",
            json!({"description": "No such page",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/nodeconductor.Detail"}}}}),
        );
    });
}
