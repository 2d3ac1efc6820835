//! Time travel over HTTP: as-of reads of one instance and of a filtered fleet, diffs, the
//! changes in a window, the audit filters of the feed, the live feed (resuming with
//! `Last-Event-ID` under concurrent writers), and digests that stay true.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::{Catalog, Server};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn head(s: &Server) -> u64 {
    s.position().await
}

fn ids(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

on_each_backend!(#[tokio::test] async fn as_of_reads_of_one_instance_and_of_filtered_lists);
async fn as_of_reads_of_one_instance_and_of_filtered_lists() {
    let s = Server::start(&["--driver-delay-ms", "0"]);
    let c = Catalog::create(&s).await;
    let before_any = head(&s).await;
    let a = s.post("/v1/instances", c.instance("a")).await.id();
    s.wait_for_state(&a, "running").await;
    let mut b_body = c.instance("b");
    b_body["project_id"] = json!(c.project2);
    let b = s.post("/v1/instances", b_body).await.id();
    s.wait_for_state(&b, "running").await;
    let p1 = head(&s).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let t1 = chrono::Utc::now().to_rfc3339();
    tokio::time::sleep(Duration::from_millis(20)).await;

    s.post(&format!("/v1/instances/{a}/stop"), json!({"force": true}))
        .await;
    s.call(
        Method::PATCH,
        &format!("/v1/instances/{b}"),
        Some(json!({"name": "b2"})),
    )
    .await;
    s.call(
        Method::DELETE,
        &format!("/v1/instances/{a}?purge=true"),
        None,
    )
    .await;
    let p2 = head(&s).await;

    // One instance, by position and by time.
    let r = s.get(&format!("/v1/instances/{a}?at_position={p1}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.body["state"].as_str(), r.body["version"].as_u64()),
        (Some("running"), Some(2))
    );
    let r = s
        .get(&format!("/v1/instances/{a}?as_of={}", urlencode(&t1)))
        .await;
    assert_eq!(r.body["state"], "running", "{}", r.body);
    assert_eq!(r.header("etag").as_deref(), Some("\"2\""));
    s.get(&format!("/v1/instances/{a}?at_position={before_any}"))
        .await
        .assert_problem(404, "not_found");
    s.get(&format!("/v1/instances/{a}"))
        .await
        .assert_problem(410, "gone");
    s.get(&format!("/v1/instances/{a}?at_position={p2}"))
        .await
        .assert_problem(410, "gone");
    let r = s.get(&format!("/v1/instances/{b}?at_position={p1}")).await;
    assert_eq!(r.body["name"], "b");
    s.get(&format!("/v1/instances/{a}?as_of=yesterday"))
        .await
        .assert_problem(400, "invalid_parameter");
    // Both bounds at once mean the earlier point: the position here, before `a` existed.
    s.get(&format!(
        "/v1/instances/{a}?as_of={}&at_position={before_any}",
        urlencode(&t1)
    ))
    .await
    .assert_problem(404, "not_found");
    let r = s
        .get(&format!(
            "/v1/instances/{b}?as_of={}&at_position={p2}",
            urlencode(&t1)
        ))
        .await;
    assert_eq!(
        r.body["name"], "b",
        "the time bound comes first: {}",
        r.body
    );
    s.get(&format!(
        "/v1/instances/{a}?as_of={}&as_of={}",
        urlencode(&t1),
        urlencode(&t1)
    ))
    .await
    .assert_problem(400, "invalid_parameter");

    // The fleet, filtered and paged, as it was.
    let r = s
        .get(&format!("/v1/instances?at_position={p1}&state=running"))
        .await;
    assert_eq!(ids(&r.body), vec![a.clone(), b.clone()]);
    assert_eq!(r.body["total"], 2);
    let r = s
        .get(&format!(
            "/v1/instances?as_of={}&state=running&limit=1",
            urlencode(&t1)
        ))
        .await;
    assert_eq!(ids(&r.body), vec![a.clone()]);
    assert_eq!(r.body["total"], 2);
    let cursor = r.body["next_cursor"].as_str().expect("cursor").to_string();
    let r = s
        .get(&format!(
            "/v1/instances?as_of={}&state=running&limit=1&cursor={cursor}",
            urlencode(&t1)
        ))
        .await;
    assert_eq!(ids(&r.body), vec![b.clone()]);
    assert_eq!(r.body["next_cursor"], Value::Null);
    let r = s
        .get(&format!(
            "/v1/instances?at_position={p1}&project_id={}&name=a",
            c.project
        ))
        .await;
    assert_eq!(ids(&r.body), vec![a.clone()]);
    let r = s
        .get(&format!("/v1/instances?at_position={p1}&name=b2"))
        .await;
    assert_eq!(r.body["total"], 0);
    // Today: a is purged, b renamed.
    let r = s.get("/v1/instances").await;
    assert_eq!(ids(&r.body), vec![b.clone()]);
    let r = s
        .get(&format!("/v1/instances?at_position={before_any}"))
        .await;
    assert_eq!((r.body["total"].as_u64(), ids(&r.body).len()), (Some(0), 0));

    // A diff between the two points.
    let r = s
        .get(&format!("/v1/instances/{b}/diff?from={p1}&to={p2}"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let changed: BTreeSet<&str> = r.body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert!(
        changed.contains("name") && changed.contains("version"),
        "{changed:?}"
    );
    assert!(!changed.contains("state"));
    let name = r.body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"] == "name")
        .unwrap();
    assert_eq!(
        (name["from"].as_str(), name["to"].as_str()),
        (Some("b"), Some("b2"))
    );
    let types: Vec<&str> = r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["Updated"]);
    let r = s
        .get(&format!("/v1/instances/{a}/diff?from={}", urlencode(&t1)))
        .await;
    assert_eq!(r.body["from"]["state"], "running");
    assert_eq!(r.body["to"]["state"], "purged");
    s.get(&format!("/v1/instances/{a}/diff?from={p2}&to={p1}"))
        .await
        .assert_problem(400, "invalid_parameter");

    // The fleet's changes in the window.
    let r = s.get(&format!("/v1/changes?since={p1}&until={p2}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(ids(&r.body), vec![a.clone(), b.clone()]);
    assert_eq!(r.body["items"][0]["before"]["state"], "running");
    assert_eq!(r.body["items"][0]["after"]["state"], "purged");
    let r = s
        .get(&format!("/v1/changes?since={p1}&project_id={}", c.project2))
        .await;
    assert_eq!(ids(&r.body), vec![b.clone()]);
    let r = s.get(&format!("/v1/changes?since={p1}&limit=1")).await;
    assert_eq!(ids(&r.body), vec![a.clone()]);
    let next = r.body["next_since"].as_u64().expect("more in the window");
    let r = s.get(&format!("/v1/changes?since={next}&until={p2}")).await;
    assert!(ids(&r.body).contains(&b));
    s.get("/v1/changes")
        .await
        .assert_problem(400, "invalid_parameter");
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

on_each_backend!(#[tokio::test] async fn feed_filters_narrow_the_audit_trail);
async fn feed_filters_narrow_the_audit_trail() {
    let s = Server::start(&["--driver-delay-ms", "0"]);
    let c = Catalog::create(&s).await;
    let a = s.post("/v1/instances", c.instance("a")).await.id();
    let mut b_body = c.instance("b");
    b_body["project_id"] = json!(c.project2);
    let b = s.post("/v1/instances", b_body).await.id();
    s.wait_for_state(&a, "running").await;
    s.wait_for_state(&b, "running").await;
    let t = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r = s
        .call_with(
            Method::POST,
            &format!("/v1/instances/{a}/stop"),
            Some(json!({})),
            &[("X-Request-Id", "audit-1")],
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    s.wait_for_state(&a, "stopped").await;

    let feed = |q: String| {
        let s = &s;
        async move {
            let r = s.get(&format!("/v1/events?{q}")).await;
            assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.body);
            r.body["items"].as_array().unwrap().clone()
        }
    };
    let only_a = feed(format!("instance_id={a}")).await;
    assert_eq!(
        only_a
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["Created", "Provisioned", "StopRequested", "Stopped"]
    );
    assert!(
        feed(format!("project_id={}", c.project2))
            .await
            .iter()
            .all(|e| e["stream_id"] == b.as_str())
    );
    let stops = feed("type=StopRequested".into()).await;
    assert_eq!(stops.len(), 1);
    assert_eq!(stops[0]["data"], json!({"mode": "graceful"}));
    assert_eq!(feed("request_id=audit-1".into()).await.len(), 1);
    assert!(
        feed("actor=driver:simulated".into())
            .await
            .iter()
            .all(|e| e["origin"] == "driver")
    );
    let since = feed(format!("since={}", urlencode(&t.to_rfc3339()))).await;
    assert_eq!(
        since
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["StopRequested", "Stopped"]
    );
    let until = feed(format!("until={}", urlencode(&t.to_rfc3339()))).await;
    assert!(until.iter().all(|e| e["type"] != "StopRequested"));
    assert!(!until.is_empty());
    s.get("/v1/events?type=Created&colour=red")
        .await
        .assert_problem(400, "invalid_parameter");
}

/// Reads Server-Sent Events until `stop` says so or the stream goes quiet; returns the
/// (position, type) of each message.
async fn read_sse(
    s: &Server,
    last_id: Option<u64>,
    max: usize,
    wait: Duration,
) -> Vec<(u64, String)> {
    let mut req = s
        .client
        .get(format!("{}/v1/events/stream", s.base))
        .bearer_auth(crate::harness::TOKEN);
    if let Some(id) = last_id {
        req = req.header("Last-Event-ID", id.to_string());
    }
    let mut resp = req.send().await.expect("stream");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut buf = String::new();
    let mut out = Vec::new();
    let deadline = Instant::now() + wait;
    while out.len() < max {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(chunk) = tokio::time::timeout(left, resp.chunk()).await else {
            break;
        };
        let Some(chunk) = chunk.expect("chunk") else {
            break;
        };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let message: String = buf.drain(..end + 2).collect();
            let id = message
                .lines()
                .find_map(|l| l.strip_prefix("id: "))
                .and_then(|v| v.parse().ok());
            let event = message
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("")
                .to_string();
            if let Some(id) = id {
                out.push((id, event));
                if out.len() == max {
                    break;
                }
            }
        }
    }
    out
}

on_each_backend!(#[tokio::test] async fn live_feed_resumes_with_last_event_id_exactly_once_in_order_under_concurrent_writers);
async fn live_feed_resumes_with_last_event_id_exactly_once_in_order_under_concurrent_writers() {
    let s = Arc::new(Server::start(&["--driver-delay-ms", "0"]));
    let c = Arc::new(Catalog::create(&s).await);
    let mut writers = Vec::new();
    for w in 0..4 {
        let (s, c) = (s.clone(), c.clone());
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..15 {
                let r = s
                    .post("/v1/instances", c.instance(&format!("w{w}-{i}")))
                    .await;
                assert_eq!(r.status, StatusCode::CREATED);
                ids.push(r.body["id"].as_str().expect("id").to_string());
            }
            ids
        }));
    }
    // Read in short sessions, disconnecting after each few events and resuming from the
    // last id, while the writers run.
    let mut received: Vec<(u64, String)> = Vec::new();
    let mut created: Vec<String> = Vec::new();
    let mut sessions = 0;
    loop {
        let last = received.last().map(|(p, _)| *p);
        let got = read_sse(&s, last, 7, Duration::from_millis(1500)).await;
        sessions += 1;
        received.extend(got);
        if writers.iter().all(|w| w.is_finished()) && created.is_empty() {
            for w in writers.drain(..) {
                created.extend(w.await.expect("writer"));
            }
            // Once every instance is running the driver has nothing left to append (a
            // backlog gauge can read 0 while a just-committed transition is still on its
            // way to the driver, so it cannot say this).
            for id in &created {
                s.wait_for_state(id, "running").await;
            }
        }
        if !created.is_empty() && received.last().map(|(p, _)| *p) == Some(head(&s).await) {
            break;
        }
        assert!(
            sessions < 500,
            "the live feed stalled at {:?}",
            received.last()
        );
    }
    let positions: Vec<u64> = received.iter().map(|(p, _)| *p).collect();
    let expected: Vec<u64> = (1..=head(&s).await).collect();
    assert_eq!(
        positions, expected,
        "every event exactly once, in order, across {sessions} sessions"
    );
    assert!(
        sessions > 5,
        "the reader must have disconnected and resumed"
    );
    assert_eq!(created.len(), 60);
    let announced = received.iter().filter(|(_, t)| t == "Created").count();
    assert_eq!(announced, 60);
}

on_each_backend!(#[tokio::test] async fn digest_attests_a_position_and_stays_true_as_the_ledger_grows);
async fn digest_attests_a_position_and_stays_true_as_the_ledger_grows() {
    let mut s = Server::start(&["--driver-delay-ms", "0"]);
    let dir = s.take_dir().expect("dir");
    let c = Catalog::create(&s).await;
    let a = s.post("/v1/instances", c.instance("a")).await.id();
    s.wait_for_state(&a, "running").await;
    let held = s.get("/v1/ledger/digest").await.body;
    let position = held["position"].as_u64().expect("position");
    assert_eq!(position, head(&s).await);
    assert_eq!(held["hash"], s.get("/v1/ledger/head").await.body["hash"]);
    assert_eq!(held["state_hash"].as_str().map(str::len), Some(64));

    s.post(&format!("/v1/instances/{a}/stop"), json!({"force": true}))
        .await;
    s.post("/v1/instances", c.instance("b")).await;
    let now = s.get("/v1/ledger/digest").await.body;
    assert_ne!(now["state_hash"], held["state_hash"], "the state moved");
    let again = s
        .get(&format!("/v1/ledger/digest?at_position={position}"))
        .await
        .body;
    assert_eq!(again, held, "an old digest is reproduced exactly");
    let empty = s.get("/v1/ledger/digest?at_position=0").await.body;
    assert_eq!(empty["hash"], "0".repeat(64));

    // Offline, verify replays the whole log: chain, projections and state hashes.
    // (On PostgreSQL it verifies the server's database, not an empty data directory.)
    s.stop();
    let mut verify = std::process::Command::new(env!("CARGO_BIN_EXE_ledger"));
    verify.args(["verify", "--data-dir"]).arg(dir.path());
    if crate::harness::postgres::enabled() {
        verify
            .args(["--backend", "postgres", "--postgres-url"])
            .arg(crate::harness::postgres::database_for(dir.path()));
    }
    let out = verify.output().expect("verify");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
