//! The dialect's part of `/openapi.json`: its operations under the `nodeconductor` tag,
//! with the bodies it really takes and gives, and its token scheme.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{catalog, instances, repr};

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
