//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and
//! the request/response types. Served at `/openapi.json`; `/docs/` renders it with a
//! Swagger UI embedded in the binary.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Ref, RefOr, Response};
use utoipa::{IntoParams, Modify, OpenApi, ToResponse};

use super::problem::Problem;
use super::{actions, catalog, events, history, identity, instances, ops, routes};
use crate::authz::Action;

/// Malformed JSON, wrong types, unknown fields, invalid values or parameters (`code`:
/// `malformed_json`, `invalid_body`, `invalid_field`, `invalid_parameter`, `invalid_header`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)] // the field only carries the schema into the document
pub struct BadRequest(Problem);

/// Missing, unknown or revoked bearer token (`code`: `unauthorized`); carries
/// `WWW-Authenticate: Bearer`.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)] // the field only carries the schema into the document
pub struct Unauthorized(Problem);

/// The caller may see the object but its role does not allow this (`code`: `forbidden`).
/// Objects the caller has no relation with answer 404 instead.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)] // the field only carries the schema into the document
pub struct Forbidden(Problem);

/// No such resource, or none the caller may know of (`code`: `not_found`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)] // the field only carries the schema into the document
pub struct NotFound(Problem);

/// The operation is illegal in the instance's state (`code`: `invalid_transition`, with
/// `operation`, `current_state` and `allowed_states`), the instance is locked (`code`:
/// `locked`), or a uniqueness rule refused it (`code`: `conflict`, e.g. a username in use).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)] // the field only carries the schema into the document
pub struct Conflict(Problem);

/// The instance was purged (`code`: `gone`); its timeline stays readable.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)] // the field only carries the schema into the document
pub struct Gone(Problem);

/// `If-Match` names a stale version (`code`: `version_mismatch`, with `expected_version`
/// and `current_version`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)] // the field only carries the schema into the document
pub struct PreconditionFailed(Problem);

/// The body exceeds 1 MiB (`code`: `payload_too_large`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)] // the field only carries the schema into the document
pub struct PayloadTooLarge(Problem);

/// The body is not JSON (`code`: `unsupported_media_type`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)] // the field only carries the schema into the document
pub struct UnsupportedMediaType(Problem);

/// A referenced id does not exist (`code`: `unknown_reference`, with `field`), names a
/// flavor the project may not use (`code`: `unusable_reference`), or an
/// `Idempotency-Key` was reused with another request (`code`: `idempotency_key_reused`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)] // the field only carries the schema into the document
pub struct Unprocessable(Problem);

/// The write queue is full (`code`: `overloaded`) or the store cannot serve now
/// (`code`: `unavailable`); retry after `Retry-After` seconds.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)] // the field only carries the schema into the document
pub struct Unavailable(Problem);

/// An internal error (`code`: `internal`); details are in the server log.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)] // the field only carries the schema into the document
pub struct Internal(Problem);

/// The header every write takes: declared once, used by each write's documentation.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // the fields only carry the parameters into the document
pub struct IdempotencyHeader {
    /// Retries with the same key and request return the original answer and append nothing
    #[param(rename = "Idempotency-Key")]
    idempotency_key: Option<String>,
}

/// The headers of a write to an existing instance.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // the fields only carry the parameters into the document
pub struct InstanceWriteHeaders {
    /// Retries with the same key and request return the original answer and append nothing
    #[param(rename = "Idempotency-Key")]
    idempotency_key: Option<String>,
    /// The ETag (version) last seen; a stale one is refused with 412
    #[param(rename = "If-Match")]
    if_match: Option<String>,
}

/// The path of one instance.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // the field only carries the parameter into the document
pub struct InstancePath {
    /// Instance id (uuid) or short id (`i-xxxxxxxx`)
    id: String,
}

/// Adds the bearer scheme, and to every `/v1` operation the security requirement and the
/// responses every authenticated call can get.
struct Common;

impl Modify for Common {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") {
                continue;
            }
            let ops: [&mut Option<Operation>; 5] = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for op in ops.into_iter().flatten() {
                op.security = Some(vec![SecurityRequirement::new(
                    "bearer",
                    Vec::<String>::new(),
                )]);
                for (status, name) in [
                    ("401", "Unauthorized"),
                    ("500", "Internal"),
                    ("503", "Unavailable"),
                ] {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| RefOr::<Response>::Ref(Ref::from_response_name(name)));
                }
            }
        }
        // 403 wherever the route's action can be refused to a caller who sees the object.
        for route in routes::table() {
            if !forbiddable(route.action) {
                continue;
            }
            let Some(item) = openapi.paths.paths.get_mut(route.path) else {
                continue;
            };
            let op = match route.method.as_str() {
                "GET" => &mut item.get,
                "POST" => &mut item.post,
                "PUT" => &mut item.put,
                "PATCH" => &mut item.patch,
                "DELETE" => &mut item.delete,
                _ => continue,
            };
            if let Some(op) = op {
                op.responses
                    .responses
                    .entry("403".to_string())
                    .or_insert_with(|| {
                        RefOr::<Response>::Ref(Ref::from_response_name("Forbidden"))
                    });
            }
        }
    }
}

fn forbiddable(action: Action) -> bool {
    !matches!(
        action,
        Action::Authenticated
            | Action::ReadCatalog
            | Action::ReadInstance
            | Action::ReadCustomer
            | Action::ReadProject
            | Action::ReadUser
            | Action::ManageTokens
    )
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "instance-ledger",
        description = "Event-sourced ledger of cloud VM instances. Every change is an event in a durable, hash-chained log; views and list filters are projections of it.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        ops::healthz, ops::readyz, ops::metrics, ops::openapi_json,
        instances::create, instances::list, instances::show, instances::patch, instances::destroy,
        actions::start, actions::stop, actions::reboot, actions::resize, actions::recover,
        actions::purge, actions::lock, actions::unlock, actions::complete, actions::fail, actions::power, actions::set_power, instances::events, instances::operations,
        events::feed, events::stream, events::head, events::digest,
        history::diff, history::fleet_changes,
        identity::me, identity::create_user, identity::list_users, identity::show_user,
        identity::issue_token, identity::list_tokens, identity::revoke_token,
        identity::list_owners, identity::add_owner, identity::remove_owner,
        identity::list_members, identity::add_member, identity::remove_member,
        catalog::create_customer, catalog::list_customers, catalog::show_customer,
        catalog::create_project, catalog::list_projects, catalog::show_project,
        catalog::create_flavor, catalog::list_flavors, catalog::show_flavor,
        catalog::create_image, catalog::list_images, catalog::show_image,
        catalog::create_iso, catalog::list_isos, catalog::show_iso,
        catalog::create_network, catalog::list_networks, catalog::show_network,
        catalog::create_ssh_key, catalog::list_ssh_keys, catalog::show_ssh_key,
        catalog::create_security_group, catalog::list_security_groups, catalog::show_security_group,
    ),
    components(schemas(Problem), responses(
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, Gone, PreconditionFailed, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, Unavailable, Internal,
    )),
    modifiers(&Common),
    tags(
        (name = "instances", description = "Instances and their lifecycle"),
        (name = "catalog", description = "Customers, projects, flavors, images, ISOs, networks, SSH keys and security groups"),
        (name = "ledger", description = "The event log"),
        (name = "identity", description = "Users, tokens, customer owners and project members"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
pub struct ApiDoc;
