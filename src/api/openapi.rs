//! The one OpenAPI 3.1 document of the server: the native API's, with every dialect's
//! operations merged in under its own tag. Served at `/openapi.json`, and held to the
//! registered routes by [`served_routes`].

use std::sync::OnceLock;

use actix_web::http::Method;
use utoipa::OpenApi;

use super::{native, nodeconductor};

/// The document, serialized once.
pub fn json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = native::openapi::ApiDoc::openapi();
        doc.merge(nodeconductor::openapi::Doc::openapi());
        doc.to_json()
            .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    })
}

/// Every (method, path) the server routes, as the document spells paths.
pub fn served_routes() -> Vec<(Method, String)> {
    let mut out: Vec<(Method, String)> = native::routes::table()
        .into_iter()
        .map(|r| (r.method, r.path.to_string()))
        .collect();
    #[allow(clippy::single_element_loop)] // every dialect joins this list
    for (mount, table) in [(nodeconductor::MOUNT, nodeconductor::routes())] {
        out.extend(
            table
                .into_iter()
                .map(|r| (r.method, format!("{mount}{}", r.path))),
        );
    }
    out
}
