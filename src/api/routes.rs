//! The route table: the one place routes are declared. The server registers exactly these,
//! grouped per path so an unsupported method answers 405; a test checks the table against
//! the OpenAPI document in both directions.

use actix_web::http::Method;
use actix_web::{Route, web};

use super::catalog;
use super::{ApiError, events, instances as i, ops};

pub struct RouteDef {
    pub method: Method,
    /// The full path, with `{id}` placeholders as in the OpenAPI document.
    pub path: &'static str,
    make: fn() -> Route,
}

macro_rules! routes {
    ($($method:ident $path:literal => $handler:expr;)*) => {
        vec![$(RouteDef {
            method: Method::from_bytes(stringify!($method).as_bytes()).unwrap_or(Method::GET),
            path: $path,
            make: || web::method(Method::from_bytes(stringify!($method).as_bytes()).unwrap_or(Method::GET)).to($handler),
        },)*]
    };
}

pub fn table() -> Vec<RouteDef> {
    routes! {
        GET "/healthz" => ops::healthz;
        GET "/readyz" => ops::readyz;
        GET "/metrics" => ops::metrics;
        GET "/openapi.json" => ops::openapi_json;
        POST "/v1/instances" => i::create;
        GET "/v1/instances" => i::list;
        GET "/v1/instances/{id}" => i::show;
        PATCH "/v1/instances/{id}" => i::patch;
        DELETE "/v1/instances/{id}" => i::destroy;
        POST "/v1/instances/{id}/start" => i::start;
        POST "/v1/instances/{id}/stop" => i::stop;
        POST "/v1/instances/{id}/reboot" => i::reboot;
        POST "/v1/instances/{id}/resize" => i::resize;
        POST "/v1/instances/{id}/recover" => i::recover;
        POST "/v1/instances/{id}/purge" => i::purge;
        GET "/v1/instances/{id}/power" => i::power;
        PUT "/v1/instances/{id}/power" => i::set_power;
        GET "/v1/instances/{id}/events" => i::events;
        GET "/v1/events" => events::feed;
        GET "/v1/ledger/head" => events::head;
        POST "/v1/customers" => catalog::create_customer;
        GET "/v1/customers" => catalog::list_customers;
        GET "/v1/customers/{id}" => catalog::show_customer;
        POST "/v1/projects" => catalog::create_project;
        GET "/v1/projects" => catalog::list_projects;
        GET "/v1/projects/{id}" => catalog::show_project;
        POST "/v1/flavors" => catalog::create_flavor;
        GET "/v1/flavors" => catalog::list_flavors;
        GET "/v1/flavors/{id}" => catalog::show_flavor;
        POST "/v1/images" => catalog::create_image;
        GET "/v1/images" => catalog::list_images;
        GET "/v1/images/{id}" => catalog::show_image;
        POST "/v1/networks" => catalog::create_network;
        GET "/v1/networks" => catalog::list_networks;
        GET "/v1/networks/{id}" => catalog::show_network;
        POST "/v1/ssh-keys" => catalog::create_ssh_key;
        GET "/v1/ssh-keys" => catalog::list_ssh_keys;
        GET "/v1/ssh-keys/{id}" => catalog::show_ssh_key;
    }
}

async fn method_not_allowed() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}

/// Registers the routes whose path starts with `prefix`, relative to it, one resource per
/// path in table order.
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
        let mut resource =
            web::resource(&path[prefix.len()..]).default_service(web::to(method_not_allowed));
        for r in table.iter().filter(|r| r.path == path) {
            resource = resource.route((r.make)());
        }
        cfg.service(resource);
    }
}
