//! Group commit under concurrency, crash safety under `kill -9`, and driver pick-up of
//! pending work after a restart.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::harness::{Catalog, Server};
use reqwest::{Method, StatusCode};

fn verify(dir: &std::path::Path) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ledger"));
    cmd.arg("verify").arg("--data-dir").arg(dir);
    if crate::harness::postgres::enabled() {
        cmd.args(["--backend", "postgres", "--postgres-url"])
            .arg(crate::harness::postgres::database_for(dir));
    }
    let out = cmd.output().expect("run ledger verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "verify failed: {text}");
    text
}

on_each_backend!(#[tokio::test] async fn two_hundred_concurrent_creates_share_commits);
async fn two_hundred_concurrent_creates_share_commits() {
    let s = Arc::new(Server::start(&["--driver-delay-ms", "60000"]));
    let c = Arc::new(Catalog::create(&s).await);
    let commits_before = s.metric("ledger_commits_total").await;
    let events_before = s.metric("ledger_events_appended_total").await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (s, c) = (s.clone(), c.clone());
        tasks.push(tokio::spawn(async move {
            s.post("/v1/instances", c.instance(&format!("c-{i}"))).await
        }));
    }
    let mut ids = BTreeSet::new();
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        ids.insert(r.id());
    }
    assert_eq!(ids.len(), 200);
    let commits = s.metric("ledger_commits_total").await - commits_before;
    let events = s.metric("ledger_events_appended_total").await - events_before;
    assert_eq!(events, 200.0);
    assert!(
        commits < events / 4.0,
        "{commits} commits for {events} events: no group commit"
    );
    let r = s
        .get(&format!(
            "/v1/instances?project_id={}&limit=1000",
            c.project
        ))
        .await;
    assert_eq!(r.body["total"], 200);
    let shorts: BTreeSet<_> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["short_id"].to_string())
        .collect();
    assert_eq!(shorts.len(), 200, "short ids are unique");
}

on_each_backend!(#[tokio::test] async fn kill_9_during_writes_loses_no_acknowledged_write);
async fn kill_9_during_writes_loses_no_acknowledged_write() {
    let mut s = Server::start(&["--driver-delay-ms", "0"]);
    let tmp = s.take_dir().expect("temp dir");
    let c = Arc::new(Catalog::create(&s).await);
    let base = s.base.clone();
    let client = s.client.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
    let mut writers = Vec::new();
    for w in 0..8 {
        let (client, base, c, tx) = (client.clone(), base.clone(), c.clone(), tx.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..10_000 {
                let r = client
                    .post(format!("{base}/v1/instances"))
                    .bearer_auth(crate::harness::TOKEN)
                    .json(&c.instance(&format!("w{w}-{i}")))
                    .send()
                    .await;
                let Ok(r) = r else { return };
                if r.status() != StatusCode::CREATED {
                    return;
                }
                let Ok(body) = r.json::<serde_json::Value>().await else {
                    return;
                };
                let id = body["id"].as_str().unwrap_or_default().to_string();
                let _ = tx.send((id.clone(), "created".into()));
                // Lifecycle actions too, so the kill lands among several event kinds.
                if i % 3 == 0 {
                    let r = client
                        .delete(format!("{base}/v1/instances/{id}?force=true"))
                        .bearer_auth(crate::harness::TOKEN)
                        .send()
                        .await;
                    if matches!(r, Ok(ref r) if r.status() == StatusCode::OK) {
                        let _ = tx.send((id, "destroyed".into()));
                    }
                }
            }
        }));
    }
    drop(tx);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.kill9();
    for w in writers {
        let _ = w.await;
    }
    let mut acked = Vec::new();
    while let Ok(item) = rx.try_recv() {
        acked.push(item);
    }
    assert!(
        acked.len() > 20,
        "the load never got going: {} acknowledged",
        acked.len()
    );

    // The projections equal a rebuild from the log, and the chain is intact.
    verify(tmp.path());

    let s = Server::start_in(tmp.path(), &["--driver-delay-ms", "0"]);
    for (id, what) in &acked {
        let r = s.get(&format!("/v1/instances/{id}")).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "acknowledged {what} of {id} lost: {}",
            r.body
        );
        if what == "destroyed" {
            assert_eq!(
                r.body["state"], "destroyed",
                "acknowledged destroy of {id} lost"
            );
        }
    }
}

on_each_backend!(#[tokio::test] async fn pending_transitions_are_completed_after_a_restart);
async fn pending_transitions_are_completed_after_a_restart() {
    let mut s = Server::start(&["--driver-delay-ms", "600000"]);
    let tmp = s.take_dir().expect("temp dir");
    let c = Catalog::create(&s).await;
    let id = s.post("/v1/instances", c.instance("slow")).await.id();
    assert_eq!(
        s.get(&format!("/v1/instances/{id}")).await.body["state"],
        "provisioning"
    );
    s.stop();
    verify(tmp.path());

    let s = Server::start_in(tmp.path(), &["--driver-delay-ms", "0"]);
    let v = s.wait_for_state(&id, "running").await;
    assert_eq!(v["version"], 2);
}

on_each_backend!(#[tokio::test] async fn driver_failures_put_instances_in_error_with_a_failed_event);
async fn driver_failures_put_instances_in_error_with_a_failed_event() {
    let s = Server::start(&["--driver-delay-ms", "0", "--driver-failure-rate", "1"]);
    let c = Catalog::create(&s).await;
    let id = s.post("/v1/instances", c.instance("doomed")).await.id();
    let v = s.wait_for_state(&id, "error").await;
    assert_eq!(v["target_power_state"], serde_json::Value::Null);
    let r = s.get(&format!("/v1/instances/{id}/events")).await;
    let last = r.body["items"]
        .as_array()
        .and_then(|a| a.last())
        .cloned()
        .expect("events");
    assert_eq!(last["type"], "Failed");
    assert_eq!(last["data"]["reason"], "simulated failure");
    // error is a state you can leave: destroy it
    let r = s
        .call(Method::DELETE, &format!("/v1/instances/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}
