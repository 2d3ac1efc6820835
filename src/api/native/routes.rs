//! The route table: the one place routes are declared, each with the action it performs
//! and where its object comes from. The server registers exactly these (grouped per path
//! so an unsupported method answers 405), the gate enforces the policy from them, and a
//! test checks the table against the OpenAPI document in both directions.

use actix_web::http::Method;
use actix_web::middleware::from_fn;
use actix_web::{Route, web};

use super::{
    NativeError, actions as a, catalog as c, events, gate, history, identity as id, instances as i,
    ops,
};
use crate::api::Failure;
use crate::authz::Action::{self, *};

/// Where the object of a route's action comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectFrom {
    /// No object (or a list the handler filters by the caller's scopes).
    None,
    /// Named in the request body; the handler checks it after parsing.
    Body,
    /// The `{id}` path segment names an instance (uuid or short id).
    Instance,
    Project,
    Customer,
    User,
    /// The `{id}` path segment names a token; the object is its user.
    Token,
}

pub struct RouteDef {
    pub method: Method,
    /// The full path, with `{id}` placeholders as in the OpenAPI document.
    pub path: &'static str,
    pub action: Action,
    pub object: ObjectFrom,
    make: fn() -> Route,
}

macro_rules! routes {
    ($($method:ident $path:literal => $handler:expr, $action:expr, $object:ident;)*) => {
        vec![$(RouteDef {
            method: Method::$method,
            path: $path,
            action: $action,
            object: ObjectFrom::$object,
            make: || web::method(Method::$method).to($handler),
        },)*]
    };
}

pub fn table() -> Vec<RouteDef> {
    routes! {
        GET "/healthz" => ops::healthz, Authenticated, None;
        GET "/readyz" => ops::readyz, Authenticated, None;
        GET "/metrics" => ops::metrics, Authenticated, None;
        GET "/openapi.json" => ops::openapi_json, Authenticated, None;
        POST "/v1/instances" => i::create, CreateInstance, Body;
        GET "/v1/instances" => i::list, Authenticated, None;
        GET "/v1/instances/{id}" => i::show, ReadInstance, Instance;
        PATCH "/v1/instances/{id}" => i::patch, OperateInstance, Instance;
        DELETE "/v1/instances/{id}" => i::destroy, OperateInstance, Instance;
        POST "/v1/instances/{id}/start" => a::start, OperateInstance, Instance;
        POST "/v1/instances/{id}/stop" => a::stop, OperateInstance, Instance;
        POST "/v1/instances/{id}/reboot" => a::reboot, OperateInstance, Instance;
        POST "/v1/instances/{id}/resize" => a::resize, OperateInstance, Instance;
        POST "/v1/instances/{id}/recover" => a::recover, OperateInstance, Instance;
        POST "/v1/instances/{id}/purge" => a::purge, OperateInstance, Instance;
        POST "/v1/instances/{id}/lock" => a::lock, OperateInstance, Instance;
        POST "/v1/instances/{id}/unlock" => a::unlock, OperateInstance, Instance;
        POST "/v1/instances/{id}/complete" => a::complete, CompleteInstance, Instance;
        POST "/v1/instances/{id}/fail" => a::fail, CompleteInstance, Instance;
        GET "/v1/instances/{id}/power" => a::power, ReadInstance, Instance;
        PUT "/v1/instances/{id}/power" => a::set_power, OperateInstance, Instance;
        GET "/v1/instances/{id}/events" => i::events, ReadInstance, Instance;
        GET "/v1/instances/{id}/operations" => i::operations, ReadInstance, Instance;
        GET "/v1/instances/{id}/diff" => history::diff, ReadInstance, Instance;
        GET "/v1/changes" => history::fleet_changes, Authenticated, None;
        GET "/v1/events" => events::feed, Authenticated, None;
        GET "/v1/events/stream" => events::stream, Authenticated, None;
        GET "/v1/ledger/head" => events::head, ReadLedger, None;
        GET "/v1/ledger/digest" => events::digest, ReadLedger, None;
        GET "/v1/me" => id::me, Authenticated, None;
        POST "/v1/users" => id::create_user, ManageUsers, None;
        GET "/v1/users" => id::list_users, ManageUsers, None;
        GET "/v1/users/{id}" => id::show_user, ReadUser, User;
        POST "/v1/users/{id}/tokens" => id::issue_token, ManageTokens, User;
        GET "/v1/users/{id}/tokens" => id::list_tokens, ManageTokens, User;
        DELETE "/v1/tokens/{id}" => id::revoke_token, ManageTokens, Token;
        GET "/v1/customers/{id}/owners" => id::list_owners, ReadCustomer, Customer;
        POST "/v1/customers/{id}/owners" => id::add_owner, ManageOwners, Customer;
        DELETE "/v1/customers/{id}/owners" => id::remove_owner, ManageOwners, Customer;
        GET "/v1/projects/{id}/members" => id::list_members, ReadProject, Project;
        POST "/v1/projects/{id}/members" => id::add_member, ManageMembers, Project;
        DELETE "/v1/projects/{id}/members" => id::remove_member, ManageMembers, Project;
        POST "/v1/customers" => c::create_customer, CreateCustomer, None;
        GET "/v1/customers" => c::list_customers, Authenticated, None;
        GET "/v1/customers/{id}" => c::show_customer, ReadCustomer, Customer;
        POST "/v1/projects" => c::create_project, CreateProject, Body;
        GET "/v1/projects" => c::list_projects, Authenticated, None;
        GET "/v1/projects/{id}" => c::show_project, ReadProject, Project;
        POST "/v1/flavors" => c::create_flavor, ManageCatalog, None;
        GET "/v1/flavors" => c::list_flavors, ReadCatalog, None;
        GET "/v1/flavors/{id}" => c::show_flavor, ReadCatalog, None;
        POST "/v1/images" => c::create_image, ManageCatalog, None;
        GET "/v1/images" => c::list_images, ReadCatalog, None;
        GET "/v1/images/{id}" => c::show_image, ReadCatalog, None;
        POST "/v1/isos" => c::create_iso, ManageCatalog, None;
        GET "/v1/isos" => c::list_isos, ReadCatalog, None;
        GET "/v1/isos/{id}" => c::show_iso, ReadCatalog, None;
        POST "/v1/networks" => c::create_network, ManageCatalog, None;
        GET "/v1/networks" => c::list_networks, ReadCatalog, None;
        GET "/v1/networks/{id}" => c::show_network, ReadCatalog, None;
        POST "/v1/ssh-keys" => c::create_ssh_key, ManageCatalog, None;
        GET "/v1/ssh-keys" => c::list_ssh_keys, ReadCatalog, None;
        GET "/v1/ssh-keys/{id}" => c::show_ssh_key, ReadCatalog, None;
        POST "/v1/security-groups" => c::create_security_group, ManageCatalog, None;
        GET "/v1/security-groups" => c::list_security_groups, ReadCatalog, None;
        GET "/v1/security-groups/{id}" => c::show_security_group, ReadCatalog, None;
    }
}

/// 405 with the `Allow` header RFC 9110 requires: the methods this path answers.
fn method_not_allowed(allow: String) -> actix_web::HttpResponse {
    use actix_web::ResponseError;
    let mut resp = NativeError(Failure::MethodNotAllowed).error_response();
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allow) {
        resp.headers_mut()
            .insert(actix_web::http::header::ALLOW, value);
    }
    resp
}

/// Registers the routes whose path starts with `prefix`, relative to it, one resource per
/// path in table order. `/v1` resources pass through the authorization gate.
pub fn register(cfg: &mut web::ServiceConfig, prefix: &str, exclude: Option<&str>) {
    let table = table();
    let mut paths: Vec<&'static str> = Vec::new();
    for r in &table {
        let inside = r.path.starts_with(prefix) && !exclude.is_some_and(|x| r.path.starts_with(x));
        if inside && !paths.contains(&r.path) {
            paths.push(r.path);
        }
    }
    for path in paths {
        let methods: Vec<String> = table
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.method.to_string())
            .collect();
        let allow = methods.join(", ");
        let mut resource =
            web::resource(&path[prefix.len()..]).default_service(web::to(move || {
                let allow = allow.clone();
                async move { method_not_allowed(allow) }
            }));
        for r in table.iter().filter(|r| r.path == path) {
            resource = resource.route((r.make)());
        }
        if path.starts_with("/v1/") {
            cfg.service(resource.wrap(from_fn(gate::enforce)));
        } else {
            cfg.service(resource);
        }
    }
}
