//! The one OpenAPI 3.1 document of the server: the native API's, with every dialect's
//! operations merged in under its own tag. Served at `/openapi.json`, and held to the
//! registered routes by [`served_routes`].

use std::sync::OnceLock;

use actix_web::http::Method;
use utoipa::OpenApi;

use super::{cloudmc, launch_provision, mogan, native, nodeconductor, wakame};

/// The document, serialized once.
pub fn json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = native::openapi::ApiDoc::openapi();
        doc.merge(nodeconductor::openapi::Doc::openapi());
        doc.merge(mogan::openapi::Doc::openapi());
        doc.merge(launch_provision::openapi::Doc::openapi());
        doc.merge(wakame::openapi::Doc::openapi());
        doc.merge(cloudmc::openapi::Doc::openapi());
        let mut value = match serde_json::to_value(&doc) {
            Ok(v) => v,
            Err(e) => return format!("{{\"error\":\"{e}\"}}"),
        };
        native::bounds::apply(&mut value);
        mogan::openapi::adjust(&mut value);
        cloudmc::openapi::adjust(&mut value);
        value.to_string()
    })
}

/// Every (method, path) the server routes, as the document spells paths.
pub fn served_routes() -> Vec<(Method, String)> {
    let mut out: Vec<(Method, String)> = native::routes::table()
        .into_iter()
        .map(|r| (r.method, r.path.to_string()))
        .collect();
    out.extend(
        mogan::public_routes()
            .into_iter()
            .map(|r| (r.method, r.path.to_string())),
    );
    for (mount, table) in [
        (nodeconductor::MOUNT, nodeconductor::routes()),
        (mogan::MOUNT, mogan::routes()),
        (mogan::BARE_MOUNT, mogan::routes()),
        (launch_provision::MOUNT, launch_provision::routes()),
        (wakame::MOUNT, wakame::routes()),
        (cloudmc::MOUNT, cloudmc::routes()),
        (cloudmc::V1_MOUNT, cloudmc::routes()),
    ] {
        out.extend(
            table
                .into_iter()
                .map(|r| (r.method, format!("{mount}{}", r.path))),
        );
    }
    out
}
