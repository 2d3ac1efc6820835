//! Every kind of bad input gets its documented status and problem code, and appends
//! nothing: the global position and the instance's timeline are unchanged.

use crate::harness::{Catalog, Server};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

async fn timeline(s: &Server, id: &str) -> Value {
    s.get(&format!("/v1/instances/{id}/events")).await.body
}

on_each_backend!(#[tokio::test] async fn bad_input_gets_documented_errors_and_appends_nothing);
async fn bad_input_gets_documented_errors_and_appends_nothing() {
    let s = Server::start(&["--driver-delay-ms", "0"]);
    let c = Catalog::create(&s).await;
    let id = s.post("/v1/instances", c.instance("target")).await.id();
    s.wait_for_state(&id, "running").await;
    let before = s.position().await;
    let events_before = timeline(&s, &id).await;
    let json_ct = [("content-type", "application/json")];
    let missing = "00000000-0000-7000-8000-000000000000";

    // malformed JSON, wrong types, unknown and missing fields
    let r = s
        .raw(Method::POST, "/v1/instances", "{\"name\": ", &json_ct)
        .await;
    r.assert_problem(400, "malformed_json");
    let mut wrong_type = c.instance("x");
    wrong_type["name"] = json!(5);
    s.post("/v1/instances", wrong_type)
        .await
        .assert_problem(400, "invalid_body");
    let mut unknown = c.instance("x");
    unknown["colour"] = json!("blue");
    let r = s.post("/v1/instances", unknown).await;
    r.assert_problem(400, "invalid_body");
    assert!(
        r.body["detail"].as_str().unwrap_or("").contains("colour"),
        "{}",
        r.body
    );
    let r = s.post("/v1/instances", json!({"name": "x"})).await;
    r.assert_problem(400, "invalid_body");
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("project_id"),
        "{}",
        r.body
    );
    let mut bad_uuid = c.instance("x");
    bad_uuid["flavor_id"] = json!("not-a-uuid");
    s.post("/v1/instances", bad_uuid)
        .await
        .assert_problem(400, "invalid_body");
    s.raw(Method::POST, "/v1/instances", "", &json_ct)
        .await
        .assert_problem(400, "invalid_body");
    let mut bad_host = c.instance("x");
    bad_host["hostname"] = json!("-bad_host-");
    s.post("/v1/instances", bad_host)
        .await
        .assert_problem(400, "invalid_field");
    let mut empty_name = c.instance("x");
    empty_name["name"] = json!("  ");
    s.post("/v1/instances", empty_name)
        .await
        .assert_problem(400, "invalid_field");
    s.post(&format!("/v1/instances/{id}/stop"), json!({"force": "yes"}))
        .await
        .assert_problem(400, "invalid_body");
    s.post(&format!("/v1/instances/{id}/stop"), json!({"hard": true}))
        .await
        .assert_problem(400, "invalid_body");
    s.raw(
        Method::POST,
        "/v1/customers",
        "name=x",
        &[("content-type", "application/x-www-form-urlencoded")],
    )
    .await
    .assert_problem(415, "unsupported_media_type");

    // oversized body
    let mut huge = c.instance("x");
    huge["user_data"] = json!("x".repeat(1024 * 1024 + 1));
    s.post("/v1/instances", huge)
        .await
        .assert_problem(413, "payload_too_large");

    // unknown references name the field
    for (field, value) in [
        ("project_id", json!(missing)),
        ("flavor_id", json!(missing)),
        ("image_id", json!(missing)),
        ("network_ids", json!([c.network, missing])),
        ("ssh_key_id", json!(missing)),
        // a real id of the wrong kind is just as unknown
        ("project_id", json!(c.flavor)),
    ] {
        let mut b = c.instance("x");
        b[field] = value;
        let r = s.post("/v1/instances", b).await;
        r.assert_problem(422, "unknown_reference");
        assert_eq!(r.body["field"], field, "{}", r.body);
    }
    let r = s
        .post("/v1/projects", json!({"name": "p", "customer_id": missing}))
        .await;
    r.assert_problem(422, "unknown_reference");
    assert_eq!(r.body["field"], "customer_id");
    s.post("/v1/networks", json!({"name": "n", "cidr": "10.0.0.0/33"}))
        .await
        .assert_problem(400, "invalid_field");
    s.post(
        "/v1/flavors",
        json!({"name": "f", "vcpus": 0, "memory_mb": 1, "disk_gb": 1}),
    )
    .await
    .assert_problem(400, "invalid_field");
    s.post(
        &format!("/v1/instances/{id}/resize"),
        json!({"flavor_id": missing}),
    )
    .await
    .assert_problem(422, "unknown_reference");

    // unknown ids
    s.get(&format!("/v1/instances/{missing}"))
        .await
        .assert_problem(404, "not_found");
    s.get("/v1/instances/i-zzzzzzzz")
        .await
        .assert_problem(404, "not_found");
    s.get("/v1/instances/nonsense")
        .await
        .assert_problem(404, "not_found");
    s.post(&format!("/v1/instances/{missing}/start"), json!({}))
        .await
        .assert_problem(404, "not_found");
    s.get(&format!("/v1/instances/{missing}/events"))
        .await
        .assert_problem(404, "not_found");
    s.get(&format!("/v1/customers/{missing}"))
        .await
        .assert_problem(404, "not_found");

    // illegal transitions
    let r = s
        .post(&format!("/v1/instances/{id}/start"), json!({}))
        .await;
    r.assert_problem(409, "invalid_transition");
    assert_eq!(r.body["current_state"], "running");
    assert_eq!(r.body["allowed_states"], json!(["stopped"]));
    s.post(&format!("/v1/instances/{id}/recover"), json!({}))
        .await
        .assert_problem(409, "invalid_transition");
    s.post(
        &format!("/v1/instances/{id}/resize"),
        json!({"flavor_id": c.flavor_big}),
    )
    .await
    .assert_problem(409, "invalid_transition");
    s.call(
        Method::DELETE,
        &format!("/v1/instances/{id}?purge=true"),
        None,
    )
    .await
    .assert_problem(409, "invalid_transition");

    // stale and malformed If-Match
    let r = s
        .call_with(
            Method::POST,
            &format!("/v1/instances/{id}/stop"),
            Some(json!({})),
            &[("If-Match", "\"1\"")],
        )
        .await;
    r.assert_problem(412, "version_mismatch");
    assert_eq!(r.body["expected_version"], 1);
    assert_eq!(r.body["current_version"], 2);
    s.call_with(
        Method::POST,
        &format!("/v1/instances/{id}/stop"),
        Some(json!({})),
        &[("If-Match", "yesterday")],
    )
    .await
    .assert_problem(400, "invalid_header");

    // query parameters
    for q in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "state=flying",
        "cursor=zz",
        "project_id=nope",
        "tag=novalue",
        "colour=red",
    ] {
        s.get(&format!("/v1/instances?{q}"))
            .await
            .assert_problem(400, "invalid_parameter");
    }
    s.call(
        Method::DELETE,
        &format!("/v1/instances/{id}?force=maybe"),
        None,
    )
    .await
    .assert_problem(400, "invalid_parameter");

    // routes, methods and tokens
    s.get("/v1/nothing-here")
        .await
        .assert_problem(404, "not_found");
    s.call(Method::PUT, "/v1/instances", Some(json!({})))
        .await
        .assert_problem(405, "method_not_allowed");
    let r = s
        .client
        .get(format!("{}/v1/instances", s.base))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get("www-authenticate").is_some());
    let r = s
        .client
        .post(format!("{}/v1/customers", s.base))
        .bearer_auth("wrong-token")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    assert_eq!(
        s.position().await,
        before,
        "a refused request appended an event"
    );
    assert_eq!(timeline(&s, &id).await, events_before);
    assert_eq!(
        s.get(&format!("/v1/instances/{id}")).await.body["state"],
        "running"
    );
}

on_each_backend!(#[tokio::test] async fn if_match_with_the_current_version_succeeds);
async fn if_match_with_the_current_version_succeeds() {
    let s = Server::start(&["--driver-delay-ms", "0"]);
    let c = Catalog::create(&s).await;
    let id = s.post("/v1/instances", c.instance("m")).await.id();
    let v = s.wait_for_state(&id, "running").await;
    let etag = format!("\"{}\"", v["version"]);
    let r = s.get(&format!("/v1/instances/{id}")).await;
    assert_eq!(r.header("etag"), Some(etag.clone()));
    let r = s
        .call_with(
            Method::POST,
            &format!("/v1/instances/{id}/stop"),
            None,
            &[("If-Match", &etag)],
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.header("etag"), Some(format!("\"{}\"", r.body["version"])));
}

on_each_backend!(#[tokio::test] async fn idempotency_key_replays_the_original_answer_without_new_events);
async fn idempotency_key_replays_the_original_answer_without_new_events() {
    let s = Server::start(&["--driver-delay-ms", "0"]);
    let c = Catalog::create(&s).await;
    let key = [("Idempotency-Key", "create-web-7")];
    let first = s
        .call_with(
            Method::POST,
            "/v1/instances",
            Some(c.instance("web-7")),
            &key,
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    s.wait_for_state(&first.id(), "running").await;
    let position = s.position().await;

    let again = s
        .call_with(
            Method::POST,
            "/v1/instances",
            Some(c.instance("web-7")),
            &key,
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(
        again.body, first.body,
        "the original answer, not today's state"
    );
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(s.position().await, position);

    let other = s
        .call_with(
            Method::POST,
            "/v1/instances",
            Some(c.instance("web-8")),
            &key,
        )
        .await;
    other.assert_problem(422, "idempotency_key_reused");
    assert_eq!(s.position().await, position);
    let r = s.get("/v1/instances?name=web-8").await;
    assert_eq!(r.body["total"], 0);

    // the same key on an action replays too
    let id = first.id();
    let stop_key = [("Idempotency-Key", "stop-1")];
    let a = s
        .call_with(
            Method::POST,
            &format!("/v1/instances/{id}/stop"),
            Some(json!({})),
            &stop_key,
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    s.wait_for_state(&id, "stopped").await;
    let position = s.position().await;
    let b = s
        .call_with(
            Method::POST,
            &format!("/v1/instances/{id}/stop"),
            Some(json!({})),
            &stop_key,
        )
        .await;
    assert_eq!(
        b.status,
        StatusCode::ACCEPTED,
        "a replay, not a 409 from today's state"
    );
    assert_eq!(b.body, a.body);
    assert_eq!(s.position().await, position);
}

#[tokio::test]
async fn every_native_path_answers_a_wrong_method_with_405_and_its_allow_header() {
    crate::harness::Backend::Redb.enter();
    let s = Server::start(&[]);
    let table = instance_ledger::api::native::routes::table();
    let mut paths: Vec<&str> = table.iter().map(|r| r.path).collect();
    paths.dedup();
    let mut checked = 0;
    for path in paths {
        let methods: Vec<String> = table
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.method.to_string())
            .collect();
        let Some(wrong) = ["PUT", "PATCH", "DELETE", "POST", "GET"]
            .into_iter()
            .find(|m| !methods.iter().any(|have| have == m))
        else {
            continue;
        };
        let concrete = path.replace("{id}", "0192d5b8-0000-7000-8000-000000000000");
        let r = s
            .call(
                Method::from_bytes(wrong.as_bytes()).expect("method"),
                &concrete,
                None,
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{wrong} {path}: {}",
            r.body
        );
        assert_eq!(r.body["code"], "method_not_allowed", "{wrong} {path}");
        assert_eq!(
            r.headers.get("allow").and_then(|v| v.to_str().ok()),
            Some(methods.join(", ").as_str()),
            "{wrong} {path}"
        );
        checked += 1;
    }
    assert!(checked > 40, "{checked} paths checked");
    // And one spelled out, independent of the table.
    let r = s.call(Method::PUT, "/v1/instances", None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let allow = r.headers.get("allow").and_then(|v| v.to_str().ok());
    assert!(
        allow.is_some_and(|a| a.contains("GET") && a.contains("POST") && !a.contains("PUT")),
        "{allow:?}"
    );
}

/// Reads from `stream` until the server closes it (or `limit` passes): what it sent.
fn read_until_closed(stream: &mut std::net::TcpStream, limit: Duration) -> Option<String> {
    use std::io::Read;
    stream.set_read_timeout(Some(limit)).expect("timeout");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(&out).to_string()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(String::from_utf8_lossy(&out).to_string());
            }
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn slow_and_idle_connections_are_dropped_and_never_starve_other_clients() {
    use std::io::Write;
    crate::harness::Backend::Redb.enter();
    let s = Server::start(&[]);
    let addr = s.base.trim_start_matches("http://").to_string();

    // A slow-loris client: a request head trickling in, a byte at a time.
    let mut slow = std::net::TcpStream::connect(&addr).expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    let trickle = {
        let mut slow = slow.try_clone().expect("clone");
        std::thread::spawn(move || {
            for _ in 0..60 {
                if slow.write_all(b"X").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    // A thousand idle connections that never send a byte.
    let idle: Vec<std::net::TcpStream> = (0..1000)
        .map(|_| std::net::TcpStream::connect(&addr).expect("idle connect"))
        .collect();
    // Everyone else is served meanwhile.
    for _ in 0..20 {
        let r = s.get("/healthz").await;
        assert_eq!(r.status, StatusCode::OK);
    }
    // The slow client is answered 408 and dropped long before its head would complete.
    let answer =
        tokio::task::spawn_blocking(move || read_until_closed(&mut slow, Duration::from_secs(30)))
            .await
            .expect("reader")
            .expect("the slow client was never dropped");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    let _ = trickle.join();
    // The idle ones are closed by the server too.
    let closed = tokio::task::spawn_blocking(move || {
        idle.into_iter()
            .take(50)
            .filter_map(|mut c| read_until_closed(&mut c, Duration::from_secs(30)))
            .count()
    })
    .await
    .expect("idle readers");
    assert_eq!(closed, 50, "idle connections are closed by the server");
    let r = s.get("/healthz").await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn a_request_flood_is_shed_with_503_and_retry_after_and_appends_only_what_it_acknowledged() {
    crate::harness::Backend::Redb.enter();
    // A queue of two and one request per commit: a flood must overflow it.
    let s = std::sync::Arc::new(Server::start(&[
        "--queue-capacity",
        "2",
        "--batch-limit",
        "1",
        "--driver-delay-ms",
        "60000",
    ]));
    let c = std::sync::Arc::new(Catalog::create(&s).await);
    let head_before = s.position().await;
    let mut tasks = Vec::new();
    for i in 0..400 {
        let (s, c) = (s.clone(), c.clone());
        tasks.push(tokio::spawn(async move {
            let r = s
                .post("/v1/instances", c.instance(&format!("flood-{i}")))
                .await;
            let retry_after = r.headers.get("retry-after").is_some();
            (r.status, retry_after, r.body)
        }));
    }
    let health = s.get("/healthz").await;
    assert_eq!(health.status, StatusCode::OK, "answering during the flood");
    let (mut created, mut shed) = (Vec::new(), 0);
    for t in tasks {
        let (status, retry_after, body) = t.await.expect("task");
        match status {
            StatusCode::CREATED => created.push(body["id"].as_str().expect("id").to_string()),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(retry_after, "a 503 without Retry-After: {body}");
                assert_eq!(body["code"], "overloaded", "{body}");
                shed += 1;
            }
            other => panic!("a flood answered {other}: {body}"),
        }
    }
    assert!(shed > 0, "the flood never overflowed a queue of two");
    assert!(!created.is_empty(), "nothing got through");
    // Exactly what was acknowledged was appended: one creation per 201, none per 503.
    assert_eq!(s.position().await - head_before, created.len() as u64);
    for id in &created {
        assert_eq!(
            s.get(&format!("/v1/instances/{id}")).await.status,
            StatusCode::OK
        );
    }
}
