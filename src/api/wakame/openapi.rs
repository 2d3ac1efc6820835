//! The dialect's part of `/openapi.json`: its operations under the `wakame` tag and its
//! token header.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{instances, repr};

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
