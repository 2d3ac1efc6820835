//! How a dialect declares its routes: one table per wing, registered under its mount with
//! one resource per path (so a wrong method answers the wing's own 405 with `Allow`), and
//! read by the OpenAPI checks, which hold the document and the tables to each other.

use actix_web::http::Method;
use actix_web::web;

/// One route of a wing: method, path under the mount (with `{placeholders}`), handler.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    make: fn() -> actix_web::Route,
}

impl Route {
    pub fn new(method: Method, path: &'static str, make: fn() -> actix_web::Route) -> Route {
        Route { method, path, make }
    }
}

/// Declares a wing's route table: `GET "/instances/" => handler;`.
#[macro_export]
macro_rules! wing_routes {
    ($($method:ident $path:literal => $handler:expr;)*) => {
        vec![$($crate::api::wing::Route::new(
            actix_web::http::Method::$method,
            $path,
            || actix_web::web::method(actix_web::http::Method::$method).to($handler),
        ),)*]
    };
}

/// The methods a path answers, as an `Allow` header lists them (with `HEAD` where there
/// is a `GET`, and `OPTIONS`).
pub fn allow(table: &[Route], path: &str) -> String {
    let mut methods: Vec<String> = table
        .iter()
        .filter(|r| r.path == path)
        .map(|r| r.method.to_string())
        .collect();
    if methods.iter().any(|m| m == "GET") {
        methods.push("HEAD".into());
    }
    methods.push("OPTIONS".into());
    methods.join(", ")
}

/// Registers a table relative to the scope it is configured in: one resource per path, in
/// table order, whose other methods get `not_allowed(allow)`.
pub fn register(
    cfg: &mut web::ServiceConfig,
    table: &[Route],
    not_allowed: fn(String) -> actix_web::Route,
) {
    let mut paths: Vec<&'static str> = Vec::new();
    for r in table {
        if !paths.contains(&r.path) {
            paths.push(r.path);
        }
    }
    for path in paths {
        let mut resource = web::resource(path).default_service(not_allowed(allow(table, path)));
        for r in table.iter().filter(|r| r.path == path) {
            resource = resource.route((r.make)());
        }
        cfg.service(resource);
    }
}
