//! The published contract: `/openapi.json` is a valid OpenAPI 3.1 document, every route the
//! server registers is documented and every documented route exists, and the docs page is
//! served from the binary.

use std::collections::BTreeSet;

use crate::harness::Server;
use instance_ledger::api::native::params::INSTANCE_LIST_PARAMS;
use reqwest::{Method, StatusCode};
use serde_json::Value;

async fn document(s: &Server) -> (String, Value) {
    let r = s
        .client
        .get(format!("{}/openapi.json", s.base))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::OK, "the document needs no token");
    let text = r.text().await.expect("text");
    let json = serde_json::from_str(&text).expect("json");
    (text, json)
}

fn dangling_refs(doc: &Value) -> Vec<String> {
    fn walk(doc: &Value, node: &Value, out: &mut Vec<String>) {
        match node {
            Value::Object(map) => {
                for (k, v) in map {
                    if k == "$ref" {
                        let target = v.as_str().unwrap_or("");
                        let found = target
                            .strip_prefix("#/")
                            .map(|p| p.split('/').try_fold(doc, |n, part| n.get(part)).is_some())
                            .unwrap_or(false);
                        if !found {
                            out.push(target.to_string());
                        }
                    } else {
                        walk(doc, v, out);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(doc, v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, doc, &mut out);
    out
}

#[tokio::test]
async fn openapi_document_is_valid_3_1_and_matches_the_registered_routes() {
    let s = Server::start(&[]);
    let (text, doc) = document(&s).await;

    let spec = oas3::from_json(&text).expect("parses as an OpenAPI 3.1 document");
    let version = spec.validate_version().expect("a supported 3.1 version");
    assert_eq!((version.major, version.minor), (3, 1));
    assert_eq!(
        dangling_refs(&doc),
        Vec::<String>::new(),
        "every $ref resolves"
    );

    let documented: BTreeSet<(String, String)> = spec
        .operations()
        .map(|(path, method, _)| (method.as_str().to_string(), path))
        .collect();
    let registered: BTreeSet<(String, String)> = instance_ledger::api::openapi::served_routes()
        .iter()
        .map(|(method, path)| (method.as_str().to_string(), path.clone()))
        .collect();
    let undocumented: Vec<_> = registered.difference(&documented).collect();
    let unregistered: Vec<_> = documented.difference(&registered).collect();
    assert!(
        undocumented.is_empty(),
        "registered but not documented: {undocumented:?}"
    );
    assert!(
        unregistered.is_empty(),
        "documented but not registered: {unregistered:?}"
    );

    // Every documented operation is served: no 405 and no "no such route".
    for (method, path) in &documented {
        let url = format!(
            "{}{}",
            s.base,
            path.replace("{id}", "00000000-0000-7000-8000-000000000000")
        );
        let r = s
            .client
            .request(Method::from_bytes(method.as_bytes()).expect("method"), url)
            .bearer_auth(crate::harness::TOKEN)
            .header("content-type", "application/json")
            .send()
            .await
            .expect("request");
        let status = r.status();
        // The live feed never ends: its status is the answer.
        if path.ends_with("/events/stream") {
            assert_eq!(status, StatusCode::OK, "{method} {path}");
            continue;
        }
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_ne!(body["detail"], "no such route", "{method} {path}");
    }

    // Authenticated operations declare the bearer scheme and their 401.
    let schemes = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(
        (schemes["type"].as_str(), schemes["scheme"].as_str()),
        (Some("http"), Some("bearer"))
    );
    for (method, path) in documented.iter().filter(|(_, p)| p.starts_with("/v1/")) {
        let op = &doc["paths"][path][method.to_lowercase()];
        assert!(op["security"].is_array(), "{method} {path} lacks security");
        assert!(
            op["responses"]["401"].is_object(),
            "{method} {path} lacks 401"
        );
    }

    // Errors are documented as problem+json with the stable codes.
    let conflict = &doc["components"]["responses"]["Conflict"]["content"];
    assert!(
        conflict["application/problem+json"].is_object(),
        "{conflict}"
    );
    let codes = doc["components"]["schemas"]["ProblemCode"]["enum"]
        .as_array()
        .expect("codes");
    for code in [
        "invalid_transition",
        "version_mismatch",
        "idempotency_key_reused",
        "payload_too_large",
        "unknown_reference",
    ] {
        assert!(
            codes.iter().any(|c| c == code),
            "{code} missing from ProblemCode"
        );
    }

    // The documented list parameters are exactly the accepted ones, and each is accepted.
    let params: BTreeSet<String> = doc["paths"]["/v1/instances"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .map(|p| p["name"].as_str().unwrap_or("").to_string())
        .collect();
    let accepted: BTreeSet<String> = INSTANCE_LIST_PARAMS.iter().map(|p| p.to_string()).collect();
    assert_eq!(params, accepted);
    let uuid = "00000000-0000-7000-8000-000000000000";
    for p in INSTANCE_LIST_PARAMS {
        let value = match p {
            "state" => "running",
            "as_of" => "2026-01-01T00:00:00Z",
            "at_position" => "1",
            "limit" => "5",
            "tag" => "env:prod",
            "project_id" | "customer_id" | "flavor_id" | "image_id" | "cursor" => uuid,
            _ => "x",
        };
        let r = s.get(&format!("/v1/instances?{p}={value}")).await;
        assert_eq!(r.status, StatusCode::OK, "{p}: {}", r.body);
    }
}

#[tokio::test]
async fn docs_page_and_its_assets_are_served_from_the_binary() {
    let s = Server::start(&[]);
    let r = s
        .client
        .get(format!("{}/docs/", s.base))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.expect("html");
    assert!(html.contains("swagger-ui"), "{html}");
    let r = s
        .client
        .get(format!("{}/docs/swagger-ui-bundle.js", s.base))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.bytes().await.expect("js").len() > 100_000,
        "the bundle is embedded, not fetched"
    );
    let r = s
        .client
        .get(format!("{}/docs/swagger-initializer.js", s.base))
        .send()
        .await
        .expect("request");
    let init = r.text().await.expect("js");
    assert!(
        init.contains("/openapi.json"),
        "the page loads our document: {init}"
    );
}
