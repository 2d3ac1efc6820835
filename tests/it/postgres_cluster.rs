//! Three `ledger` nodes on one PostgreSQL database, with concurrent clients sending
//! conflicting lifecycle commands to different nodes: nothing acknowledged is lost or
//! duplicated, every instance's timeline is a legal path through the state machine with
//! each requested transition completed exactly once (every node runs a driver), and the
//! global feed read from every node is the same gap-free sequence.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{Catalog, Server};
use instance_ledger::domain::lifecycle::{Operation, State, is_allowed};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The whole global feed as one node serves it (the history check reads it too).
pub(crate) async fn feed(node: &Server) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0u64;
    loop {
        let r = node
            .get(&format!("/v1/events?after={after}&limit=1000"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let items = r.body["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            return out;
        }
        after = r.body["next_after"].as_u64().expect("next_after");
        out.extend(items);
    }
}

/// Collects the positions node `s` sends on its live feed after `last_id`, until aborted.
fn follow(
    s: Arc<Vec<Server>>,
    node: usize,
    last_id: u64,
) -> (Arc<Mutex<Vec<u64>>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = seen.clone();
    let task = tokio::spawn(async move {
        let n = &s[node];
        let mut resp = n
            .client
            .get(format!("{}/v1/events/stream", n.base))
            .bearer_auth(crate::harness::TOKEN)
            .header("Last-Event-ID", last_id.to_string())
            .send()
            .await
            .expect("stream");
        assert_eq!(resp.status(), StatusCode::OK);
        let mut buf = String::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let message: String = buf.drain(..end + 2).collect();
                if let Some(id) = message
                    .lines()
                    .find_map(|l| l.strip_prefix("id: "))
                    .and_then(|v| v.parse().ok())
                {
                    out.lock().expect("lock").push(id);
                }
            }
        }
    });
    (seen, task)
}

/// The state-machine operation an instance event records, and the state it leads to.
fn step(event_type: &str, data: &Value) -> (Option<Operation>, State) {
    match event_type {
        "StartRequested" => (Some(Operation::Start), State::Starting),
        "Started" => (Some(Operation::Complete), State::Running),
        "StopRequested" if data["mode"] == "forced" => {
            (Some(Operation::ForceStop), State::Stopping)
        }
        "StopRequested" => (Some(Operation::Stop), State::Stopping),
        "Stopped" => (Some(Operation::Complete), State::Stopped),
        "RebootRequested" => (Some(Operation::Reboot), State::Rebooting),
        "Rebooted" => (Some(Operation::Complete), State::Running),
        "Provisioned" => (Some(Operation::Complete), State::Running),
        other => panic!("unexpected event {other} in this test"),
    }
}

on_postgres!(#[tokio::test(flavor = "multi_thread", worker_threads = 4)] async fn three_nodes_with_conflicting_clients_lose_and_duplicate_nothing);
async fn three_nodes_with_conflicting_clients_lose_and_duplicate_nothing() {
    let first = Server::start(&["--driver-delay-ms", "5", "--driver-sweep-secs", "1"]);
    let shared = first.data_dir.clone();
    let nodes = Arc::new(vec![
        first,
        Server::start_node(
            &shared,
            &["--driver-delay-ms", "5", "--driver-sweep-secs", "1"],
        ),
        Server::start_node(
            &shared,
            &["--driver-delay-ms", "5", "--driver-sweep-secs", "1"],
        ),
    ]);
    let cat = Catalog::create(&nodes[0]).await;
    let mut ids = Vec::new();
    for n in 0..6 {
        let r = nodes[n % 3]
            .post("/v1/instances", cat.instance(&format!("vm-{n}")))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        ids.push(r.body["id"].as_str().expect("id").to_string());
    }
    for (n, id) in ids.iter().enumerate() {
        nodes[n % 3].wait_for_state(id, "running").await;
    }

    // Node 3's live feed, from here on: it must carry every node's commits.
    let before = nodes[0].position().await;
    let (live, live_task) = follow(nodes.clone(), 2, before);

    // Six clients, each hammering random instances through a node of its own choosing.
    let ids = Arc::new(ids);
    let mut clients = Vec::new();
    for c in 0..6u64 {
        let (nodes, ids) = (nodes.clone(), ids.clone());
        clients.push(tokio::spawn(async move {
            let mut acked: Vec<(String, u64, String)> = Vec::new();
            let mut conflicts = 0;
            for i in 0..40u64 {
                let pick = (c * 7919 + i * 104_729) as usize;
                let node = &nodes[(pick / 3) % 3];
                let id = &ids[pick % ids.len()];
                let action = ["start", "stop", "reboot"][(pick / 7) % 3];
                let r = node
                    .post(&format!("/v1/instances/{id}/{action}"), json!({}))
                    .await;
                match r.status {
                    StatusCode::OK | StatusCode::ACCEPTED => {
                        let version = r.body["version"].as_u64().expect("version");
                        acked.push((id.clone(), version, action.to_string()));
                    }
                    StatusCode::CONFLICT => conflicts += 1,
                    other => panic!("{action} {id}: unexpected {other}: {}", r.body),
                }
            }
            (acked, conflicts)
        }));
    }
    let mut acked = Vec::new();
    let mut conflicts = 0;
    for c in clients {
        let (a, n) = c.await.expect("client");
        acked.extend(a);
        conflicts += n;
    }
    assert!(!acked.is_empty(), "no command was accepted");
    assert!(
        conflicts > 0,
        "the clients never conflicted; the test proves nothing"
    );

    // Let every driver finish: no instance left in a transitional state.
    let deadline = Instant::now() + Duration::from_secs(30);
    for id in ids.iter() {
        loop {
            let r = nodes[0].get(&format!("/v1/instances/{id}")).await;
            let state = r.body["state"].as_str().unwrap_or_default().to_string();
            if State::parse(&state).is_some_and(|s| !s.is_transitional()) {
                break;
            }
            assert!(Instant::now() < deadline, "{id} stuck in {state}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // One last write through node 1 only: node 3's live feed shows it promptly (its
    // wake-up comes from PostgreSQL, not from its own writer).
    let r = nodes[0]
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/instances/{}", ids[0]),
            Some(json!({"description": "last"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let head = nodes[0].position().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while live.lock().expect("lock").last().copied() < Some(head) {
        assert!(
            Instant::now() < deadline,
            "node 3's live feed stopped at {:?}, head is {head}",
            live.lock().expect("lock").last()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    live_task.abort();
    let streamed = live.lock().expect("lock").clone();
    assert_eq!(
        streamed,
        (before + 1..=head).collect::<Vec<_>>(),
        "node 3's live feed skipped or repeated a position"
    );

    // Every node serves the same feed, positions 1..=head with no gap.
    let feeds = [
        feed(&nodes[0]).await,
        feed(&nodes[1]).await,
        feed(&nodes[2]).await,
    ];
    assert_eq!(feeds[0], feeds[1], "node 2's feed differs from node 1's");
    assert_eq!(feeds[0], feeds[2], "node 3's feed differs from node 1's");
    let log = &feeds[0];
    for (i, e) in log.iter().enumerate() {
        assert_eq!(
            e["position"].as_u64(),
            Some(i as u64 + 1),
            "gap or reorder at {e}"
        );
    }
    assert_eq!(nodes[1].position().await, log.len() as u64);

    // No duplicate (stream, version); every acknowledged command is in the log once, as
    // the request it was.
    let mut streams: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for e in log {
        streams
            .entry(e["stream_id"].as_str().expect("stream").to_string())
            .or_default()
            .push(e);
    }
    let mut seen = BTreeSet::new();
    for e in log {
        assert!(
            seen.insert((e["stream_id"].to_string(), e["version"].as_u64())),
            "duplicate event {e}"
        );
    }
    for (id, version, action) in &acked {
        let events = &streams[id];
        let e = events
            .iter()
            .find(|e| e["version"].as_u64() == Some(*version))
            .unwrap_or_else(|| {
                panic!("acknowledged {action} of {id} at version {version} is not in the log")
            });
        let want = match action.as_str() {
            "start" => "StartRequested",
            "stop" => "StopRequested",
            _ => "RebootRequested",
        };
        assert_eq!(e["type"], want, "{id} v{version}");
    }

    // `ledger verify` on the shared database, with the nodes running: the chain and every
    // projection equal a rebuild from the log.
    let url = crate::harness::postgres::database_for(&shared);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ledger"))
            .args(["verify", "--backend", "postgres", "--postgres-url", &url])
            .output()
            .expect("run ledger verify")
    })
    .await
    .expect("verify");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "verify failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("{} events", log.len())),
        "verify did not check the whole log: {text}"
    );

    // Every timeline is a legal path, versions 1..n; each request completed exactly once.
    for id in ids.iter() {
        let events = &streams[id];
        assert_eq!(events[0]["type"], "Created");
        let mut state = State::Provisioning;
        for (i, e) in events.iter().enumerate() {
            assert_eq!(
                e["version"].as_u64(),
                Some(i as u64 + 1),
                "{id}: version gap"
            );
            if i == 0 || e["type"] == "Updated" {
                continue;
            }
            let (op, next) = step(e["type"].as_str().expect("type"), &e["data"]);
            if let Some(op) = op {
                assert!(
                    is_allowed(op, state),
                    "{id}: {} is illegal in {state:?} (event {e})",
                    e["type"]
                );
            }
            state = next;
        }
        assert!(!state.is_transitional(), "{id}: a request never completed");
    }
}

on_postgres!(#[tokio::test] async fn a_transition_left_by_a_dead_node_is_completed_once_by_another);
async fn a_transition_left_by_a_dead_node_is_completed_once_by_another() {
    // Node A's driver would wait ten minutes; node B sweeps every second.
    let mut a = Server::start(&["--driver-delay-ms", "600000"]);
    let shared = a.data_dir.clone();
    let b = Server::start_node(
        &shared,
        &["--driver-delay-ms", "10", "--driver-sweep-secs", "1"],
    );
    let cat = Catalog::create(&a).await;
    let r = a.post("/v1/instances", cat.instance("orphan")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.id();
    a.kill9();
    b.wait_for_state(&id, "running").await;
    let r = b.get(&format!("/v1/events?instance_id={id}")).await;
    let types: Vec<&str> = r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(types, ["Created", "Provisioned"]);
}

on_postgres!(#[test] fn a_node_starts_with_a_fresh_data_directory_and_generates_its_token);
/// A node started the README's way: a data directory that does not exist yet (on
/// PostgreSQL it holds only the generated admin token) and no token in the environment.
fn a_node_starts_with_a_fresh_data_directory_and_generates_its_token() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().expect("dir");
    let data = tmp.path().join("not-yet");
    let url = crate::harness::postgres::database_for(tmp.path());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["serve", "--backend", "postgres", "--listen", "127.0.0.1:0"])
        .args(["--postgres-url", &url])
        .arg("--data-dir")
        .arg(&data)
        .env_remove("LEDGER_ADMIN_TOKEN")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let listening = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.starts_with("listening on "));
    let _ = child.kill();
    let _ = child.wait();
    crate::harness::postgres::drop_database_for(tmp.path());
    assert!(listening, "the node did not start");
    assert!(
        data.join("admin-token").exists(),
        "no admin token was written"
    );
}
