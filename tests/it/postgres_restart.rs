//! PostgreSQL restarts while a node is under write load: requests caught by the outage
//! get 503 with `Retry-After`, the node reconnects by itself, and every write it
//! acknowledged is still there afterwards, exactly once.
//!
//! The restart uses the local cluster (`pg_ctlcluster ... restart`); set
//! `LEDGER_TEST_POSTGRES_RESTART` to a shell command that restarts another server. It
//! runs alone (`on_postgres!(alone ...)`): no other PostgreSQL test sees the outage.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::harness::{Catalog, Server};
use reqwest::StatusCode;

fn restart_postgres() {
    let command = std::env::var("LEDGER_TEST_POSTGRES_RESTART").unwrap_or_else(|_| {
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | head -n1) main restart -m fast"
            .into()
    });
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .status()
        .expect("run the restart command");
    assert!(status.success(), "`{command}` failed: {status}");
}

on_postgres!(alone #[tokio::test(flavor = "multi_thread", worker_threads = 4)] async fn a_postgres_restart_under_load_loses_no_acknowledged_write);
async fn a_postgres_restart_under_load_loses_no_acknowledged_write() {
    let s = Arc::new(Server::start(&["--driver-delay-ms", "0"]));
    let cat = Arc::new(Catalog::create(&s).await);
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (s, cat, stop) = (s.clone(), cat.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut refused = 0u32;
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let r = s
                    .post("/v1/instances", cat.instance(&format!("w{w}-{n}")))
                    .await;
                match r.status {
                    StatusCode::CREATED => {
                        acked.push(r.body["id"].as_str().expect("id").to_string())
                    }
                    StatusCode::SERVICE_UNAVAILABLE => {
                        assert!(
                            r.header("retry-after").is_some(),
                            "a 503 without Retry-After: {}",
                            r.body
                        );
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    other => panic!("unexpected {other} during the outage: {}", r.body),
                }
            }
            (acked, refused)
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    tokio::task::spawn_blocking(restart_postgres)
        .await
        .expect("restart");
    // Keep writing while the node finds its way back.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = s.post("/v1/instances", cat.instance("probe")).await;
        if r.status == StatusCode::CREATED {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the node did not reconnect within 30 s: {} {}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    let mut refused = 0;
    for w in writers {
        let (a, r) = w.await.expect("writer");
        acked.extend(a);
        refused += r;
    }
    assert!(
        refused > 0,
        "no request met the outage; the test proves nothing"
    );
    assert!(!acked.is_empty());

    // Every acknowledged create is readable and in the log exactly once.
    let mut created = Vec::new();
    let mut after = 0;
    loop {
        let r = s
            .get(&format!("/v1/events?after={after}&limit=1000&type=Created"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let items = r.body["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            break;
        }
        after = r.body["next_after"].as_u64().expect("next_after");
        created.extend(
            items
                .iter()
                .map(|e| e["stream_id"].as_str().expect("id").to_string()),
        );
    }
    let unique: BTreeSet<_> = created.iter().cloned().collect();
    assert_eq!(unique.len(), created.len(), "an instance was created twice");
    for id in &acked {
        assert!(unique.contains(id), "acknowledged instance {id} was lost");
        let r = s.get(&format!("/v1/instances/{id}")).await;
        assert_eq!(r.status, StatusCode::OK, "{id}: {}", r.body);
    }
}
