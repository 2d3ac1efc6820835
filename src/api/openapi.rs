//! The one OpenAPI 3.1 document of the server: the native API's, with every dialect's
//! operations merged in under its own tag. Served at `/openapi.json`, and held to the
//! registered routes by [`served_routes`].

use std::sync::OnceLock;

use actix_web::http::Method;
use serde_json::Value;
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
        nodeconductor::openapi::adjust(&mut value);
        launch_provision::openapi::adjust(&mut value);
        wakame::openapi::adjust(&mut value);
        mogan::openapi::adjust(&mut value);
        cloudmc::openapi::adjust(&mut value);
        headers_are_never_null(&mut value);
        for c in created() {
            link(&mut value, &c);
        }
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

/// An operation that creates an object, and where the object then lives.
struct Created {
    method: &'static str,
    path: String,
    status: &'static str,
    /// The object's path, and its id parameter there.
    target: String,
    param: &'static str,
    /// Where the answer carries the id (a runtime expression).
    id: &'static str,
}

/// Every create of the document. Each is linked to the operations on the object, so that
/// a client generator (or a fuzzer's stateful phase) can follow a create to what it made.
/// NodeConductor's answer names its object by `url` only, which no link expression can
/// take apart.
fn created() -> Vec<Created> {
    let mut out = Vec::new();
    for collection in [
        "instances",
        "customers",
        "projects",
        "flavors",
        "images",
        "isos",
        "networks",
        "security-groups",
        "ssh-keys",
        "users",
    ] {
        let path = format!("/v1/{collection}");
        out.push(Created {
            method: "post",
            target: format!("{path}/{{id}}"),
            path,
            status: "201",
            param: "id",
            id: "$response.body#/id",
        });
    }
    for mount in [mogan::MOUNT, mogan::BARE_MOUNT] {
        for collection in ["instances", "servers"] {
            let path = format!("{mount}/{collection}");
            out.push(Created {
                method: "post",
                target: format!("{path}/{{uuid}}"),
                path,
                status: "201",
                param: "uuid",
                id: "$response.body#/uuid",
            });
        }
    }
    out.push(Created {
        method: "put",
        path: format!("{}/launch", launch_provision::MOUNT),
        status: "200",
        target: format!("{}/{{id}}", launch_provision::MOUNT),
        param: "id",
        id: "$response.body#/0",
    });
    let wakame = format!("{}/instances", wakame::MOUNT);
    out.push(Created {
        method: "post",
        target: format!("{wakame}/{{id}}"),
        path: wakame,
        status: "200",
        param: "id",
        id: "$response.body#/id",
    });
    for mount in [cloudmc::MOUNT, cloudmc::V1_MOUNT] {
        out.push(Created {
            method: "post",
            path: format!("{mount}/services/{{service}}/{{environment}}/instances"),
            status: "200",
            target: format!("{mount}/tasks/{{id}}"),
            param: "id",
            id: "$response.body#/taskId",
        });
    }
    out
}

/// Links the answer of a create to every operation at its target or below it: the id
/// parameter from the answer, and every other path parameter the two share from the
/// request.
fn link(doc: &mut Value, c: &Created) {
    let Created {
        method,
        path,
        status,
        target,
        param,
        id,
    } = c;
    let mut links = serde_json::Map::new();
    let below = format!("{target}/");
    let shared: Vec<String> = path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}').map(str::to_string))
        .collect();
    each_operation(doc, target, |to, to_method, op| {
        if to != target && !to.starts_with(&below) {
            return;
        }
        // By reference, not operationId: the dialects' handlers share names.
        let reference = format!("#/paths/{}/{to_method}", escape(to));
        let name = op["operationId"].as_str().unwrap_or(to_method).to_string();
        let mut parameters = serde_json::Map::new();
        parameters.insert(param.to_string(), Value::from(*id));
        for name in &shared {
            if to.contains(&format!("{{{name}}}")) {
                parameters.insert(name.clone(), Value::from(format!("$request.path.{name}")));
            }
        }
        links.insert(
            format!("{to_method}_{name}"),
            serde_json::json!({"operationRef": reference, "parameters": parameters}),
        );
    });
    let pointer = format!("/paths/{}/{method}/responses/{status}", escape(path));
    if let Some(response) = doc.pointer_mut(&pointer) {
        response["links"] = Value::Object(links);
    }
}

/// A path as one JSON Pointer token (RFC 6901).
fn escape(path: &str) -> String {
    path.replace('~', "~0").replace('/', "~1")
}

/// An optional header is absent, never null: utoipa writes `Option<String>` as
/// `["string", "null"]`, which no header can carry.
fn headers_are_never_null(doc: &mut Value) {
    each_operation(doc, "/", |_, _, op| {
        let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
            return;
        };
        for p in params.iter_mut().filter(|p| p["in"] == "header") {
            if p["schema"]["type"] == serde_json::json!(["string", "null"]) {
                p["schema"]["type"] = Value::from("string");
            }
        }
    });
}

const METHODS: [&str; 5] = ["get", "put", "post", "patch", "delete"];

/// Calls `f` with the path, method and body of every operation of the document whose
/// path starts with `prefix`: where a dialect states what its operations share.
pub fn each_operation(doc: &mut Value, prefix: &str, mut f: impl FnMut(&str, &str, &mut Value)) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut().filter(|(p, _)| p.starts_with(prefix)) {
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in ops.iter_mut() {
            if METHODS.contains(&method.as_str()) {
                f(path, method, op);
            }
        }
    }
}

/// Replaces the schema (and sets `required`) of the operation's parameter `name`, if it
/// has one.
pub fn constrain_parameter(op: &mut Value, name: &str, required: bool, schema: Value) {
    // `get_mut`, not indexing: indexing a missing key would insert a null.
    let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
        return;
    };
    for p in params {
        if p["name"].as_str() == Some(name) {
            p["required"] = Value::Bool(required);
            p["schema"] = schema.clone();
        }
    }
}

/// Documents `status` on the operation unless it already is.
pub fn add_response(op: &mut Value, status: &str, response: Value) {
    if op["responses"].get(status).is_none() {
        op["responses"][status] = response;
    }
}
