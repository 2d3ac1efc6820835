//! The crash loop: a server under concurrent lifecycle load through the native API and
//! CloudMC's dialect is killed with SIGKILL at a random moment, again and again, on the
//! same ledger. After every kill the stopped ledger must verify clean, and its log must
//! account for every request by its request id: an acknowledged write exactly once (its
//! whole event group), a refused one not at all, one whose answer the kill swallowed
//! either whole or not at all. Creates whose answer was lost are retried after the
//! restart with the same `Idempotency-Key`: the log then holds exactly one creation each.
//!
//! `LEDGER_CRASH_CYCLES` sets the number of cycles (default 10, as in CI; the README's
//! figure is `LEDGER_CRASH_CYCLES=200 cargo test --test it crash_loop`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Catalog, Server, TOKEN};

/// One request as the client saw it.
#[derive(Debug, Clone)]
struct Sent {
    kind: &'static str,
    /// `Some(status)` when an answer arrived, `None` when the kill swallowed it.
    status: Option<u16>,
    idempotency_key: Option<String>,
    /// The body of a create, for its retry (the same request, byte for byte in meaning).
    body: Option<Value>,
}

type Journal = Arc<Mutex<HashMap<String, Sent>>>;

fn cycles() -> usize {
    std::env::var("LEDGER_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// The stopped ledger, exported (and verified) with `ledgerctl`.
fn verified_log(s: &Server) -> Vec<Value> {
    let run = |command: &str| {
        let mut args = vec![command.to_string()];
        args.extend(s.ledgerctl_location());
        let (code, out, err) = crate::harness::ledgerctl(&args);
        assert_eq!(code, 0, "ledgerctl {command}: {out}{err}");
        out
    };
    run("verify");
    run("export")
        .lines()
        .map(|l| serde_json::from_str(l).expect("an envelope per line"))
        .collect()
}

/// Sends one request with its own request id and records what came back.
async fn send(
    journal: &Journal,
    kind: &'static str,
    req: reqwest::RequestBuilder,
    idempotency_key: Option<String>,
    body: Option<Value>,
) -> Option<(u16, Value)> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut req = req.header("X-Request-Id", &request_id);
    if let Some(k) = &idempotency_key {
        req = req.header("Idempotency-Key", k);
    }
    let answer = match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            // A body cut off by the kill is an answer that did not arrive.
            r.json::<Value>().await.ok().map(|body| (status, body))
        }
        Err(_) => None,
    };
    journal.lock().expect("journal").insert(
        request_id,
        Sent {
            kind,
            status: answer.as_ref().map(|(s, _)| *s),
            idempotency_key,
            body,
        },
    );
    answer
}

/// What a writer needs of the server and CloudMC's world, owned.
#[derive(Clone)]
struct Target {
    base: String,
    ana: String,
    cloudmc_instances: String,
    cloudmc_body: Value,
    catalog: Arc<Catalog>,
}

/// One writer: creates (native, with an idempotency key, or CloudMC's) and lifecycle
/// operations on the instances it created, until the server goes away.
async fn writer(t: Target, journal: Journal, n: usize) {
    let client = reqwest::Client::new();
    let mut mine: Vec<String> = Vec::new();
    for i in 0.. {
        let pick = rand::rng().random_range(0..10);
        let answer = if mine.is_empty() || pick < 3 {
            let key = format!("crash-{n}-{i}-{}", uuid::Uuid::new_v4().simple());
            let body = t.catalog.instance(&format!("c{n}-{i}"));
            let req = client
                .post(format!("{}/v1/instances", t.base))
                .bearer_auth(TOKEN)
                .json(&body);
            send(&journal, "native create", req, Some(key), Some(body)).await
        } else if pick < 4 {
            let mut body = t.cloudmc_body.clone();
            body["name"] = json!(format!("mc{n}-{i}"));
            let req = client
                .post(format!("{}{}", t.base, t.cloudmc_instances))
                .header("MC-Api-Key", &t.ana)
                .header("Content-Type", "application/json")
                .body(body.to_string());
            send(&journal, "cloudmc create", req, None, None).await
        } else {
            let id = mine[rand::rng().random_range(0..mine.len())].clone();
            let (kind, method, path) = match pick {
                4 | 5 => ("stop", Method::POST, format!("/v1/instances/{id}/stop")),
                6 | 7 => ("start", Method::POST, format!("/v1/instances/{id}/start")),
                8 => ("reboot", Method::POST, format!("/v1/instances/{id}/reboot")),
                _ => (
                    "destroy",
                    Method::DELETE,
                    format!("/v1/instances/{id}?force=true"),
                ),
            };
            let mut req = client
                .request(method.clone(), format!("{}{path}", t.base))
                .bearer_auth(TOKEN);
            if method == Method::POST {
                req = req.json(&json!({}));
            }
            send(&journal, kind, req, None, None).await
        };
        match answer {
            None => return,
            Some((201, body)) => mine.extend(body["id"].as_str().map(String::from)),
            Some(_) => {}
        }
    }
}

/// Checks the log against the journal: see the module doc.
fn account(log: &[Value], journal: &HashMap<String, Sent>) -> (usize, usize) {
    let mut by_request: HashMap<&str, usize> = HashMap::new();
    let mut created_by_key: HashMap<&str, usize> = HashMap::new();
    for e in log {
        *by_request
            .entry(e["request_id"].as_str().unwrap_or_default())
            .or_default() += 1;
        if e["type"] == "Created"
            && let Some(k) = e["idempotency_key"].as_str()
        {
            *created_by_key.entry(k).or_default() += 1;
        }
    }
    // The size of each kind's event group, as acknowledged requests show it.
    let mut group: HashMap<&str, usize> = HashMap::new();
    let mut acked = 0;
    for (id, sent) in journal {
        let n = by_request.get(id.as_str()).copied().unwrap_or(0);
        match sent.status {
            Some(200..=299) => {
                acked += 1;
                let expected = *group.entry(sent.kind).or_insert(n);
                assert!(
                    n >= 1 && n == expected,
                    "acknowledged {} {id}: {n} events (its kind writes {expected})",
                    sent.kind
                );
            }
            Some(status) => assert_eq!(n, 0, "refused {} {id} ({status}) appended", sent.kind),
            None => {}
        }
    }
    let mut swallowed = 0;
    for (id, sent) in journal.iter().filter(|(_, s)| s.status.is_none()) {
        let n = by_request.get(id.as_str()).copied().unwrap_or(0);
        swallowed += 1;
        if let Some(expected) = group.get(sent.kind) {
            assert!(
                n == 0 || n == *expected,
                "{} {id} without an answer left {n} events (a whole group is {expected})",
                sent.kind
            );
        }
    }
    for (key, n) in &created_by_key {
        assert_eq!(*n, 1, "idempotency key {key} created {n} instances");
    }
    (acked, swallowed)
}

on_each_backend!(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn crash_loop_loses_nothing_acknowledged_and_half_writes_nothing);
async fn crash_loop_loses_nothing_acknowledged_and_half_writes_nothing() {
    let mut first = Server::start(&["--driver-delay-ms", "0"]);
    let dir = first.take_dir().expect("dir");
    let catalog = Arc::new(Catalog::create(&first).await);
    let mut world = crate::cloudmc::world(first).await;
    let journal: Journal = Arc::default();
    let (mut acked, mut swallowed) = (0, 0);
    for cycle in 0..cycles() {
        if cycle > 0 {
            world.s = Server::start_in(dir.path(), &["--driver-delay-ms", "0"]);
            retry_lost_creates(&world.s, &journal).await;
        }
        let target = Target {
            base: world.s.base.clone(),
            ana: world.ana.clone(),
            cloudmc_instances: world.instances(),
            cloudmc_body: world.create_body("template"),
            catalog: catalog.clone(),
        };
        let writers: Vec<_> = (0..4)
            .map(|n| tokio::spawn(writer(target.clone(), journal.clone(), n)))
            .collect();
        let ms = rand::rng().random_range(150..900);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        world.s.kill9();
        for h in writers {
            let _ = h.await;
        }
        let log = verified_log(&world.s);
        (acked, swallowed) = account(&log, &journal.lock().expect("journal"));
    }
    assert!(acked > 50, "the load never got going: {acked} acknowledged");
    eprintln!(
        "crash loop: {} cycles, {acked} acknowledged writes each present once, {swallowed} answers lost to kills, 0 verify failures",
        cycles()
    );
}

/// A client whose create was swallowed by the kill retries it with its key (and its
/// request id): the original was committed and its answer is replayed, or the retry
/// creates it now; never a conflict, never a second instance.
async fn retry_lost_creates(s: &Server, journal: &Journal) {
    let lost: Vec<(String, Sent)> = journal
        .lock()
        .expect("journal")
        .iter()
        .filter(|(_, s)| s.status.is_none() && s.idempotency_key.is_some())
        .map(|(id, s)| (id.clone(), s.clone()))
        .collect();
    for (id, sent) in lost {
        let key = sent.idempotency_key.clone().expect("key");
        let r = s
            .call_with(
                Method::POST,
                "/v1/instances",
                sent.body.clone(),
                &[("Idempotency-Key", &key), ("X-Request-Id", &id)],
            )
            .await;
        assert!(
            r.status == StatusCode::CREATED || r.status == StatusCode::OK,
            "retry of {key}: {} {}",
            r.status,
            r.body
        );
        journal.lock().expect("journal").insert(
            id,
            Sent {
                status: Some(r.status.as_u16()),
                ..sent
            },
        );
    }
}
