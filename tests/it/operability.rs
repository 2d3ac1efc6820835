//! Running the ledger under the usual operations stack: metrics that move, one JSON log
//! span per request, readiness, and configuration from flags, environment and a file.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{Catalog, Server};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The value of one labelled sample, e.g. `ledger_http_requests_total` with
/// `route="/v1/customers"` and `status="201"`.
async fn sample(s: &Server, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = s
        .client
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

on_each_backend!(#[tokio::test] async fn metrics_move_with_requests_writes_and_commits);
async fn metrics_move_with_requests_writes_and_commits() {
    let s = Server::start(&["--driver-delay-ms", "0"]);
    let created = [("route", "/v1/customers"), ("status", "201")];
    let before = (
        sample(&s, "ledger_http_requests_total", &created).await,
        s.metric("ledger_events_appended_total").await,
        s.metric("ledger_commits_total").await,
        sample(&s, "ledger_commit_seconds_count", &[]).await,
        sample(&s, "ledger_batch_events_count", &[]).await,
    );
    for i in 0..3 {
        s.post("/v1/customers", json!({"name": format!("c{i}")}))
            .await;
    }
    s.get("/v1/nope").await;
    let after = (
        sample(&s, "ledger_http_requests_total", &created).await,
        s.metric("ledger_events_appended_total").await,
        s.metric("ledger_commits_total").await,
        sample(&s, "ledger_commit_seconds_count", &[]).await,
        sample(&s, "ledger_batch_events_count", &[]).await,
    );
    assert_eq!(
        after.0 - before.0,
        3.0,
        "request counter by route and status"
    );
    assert_eq!(after.1 - before.1, 3.0, "events appended");
    assert!(
        after.2 > before.2 && after.3 > before.3 && after.4 > before.4,
        "{before:?} -> {after:?}"
    );
    assert!(sample(&s, "ledger_http_request_duration_seconds_count", &created).await >= 3.0);
    assert_eq!(
        sample(
            &s,
            "ledger_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        )
        .await,
        1.0
    );
    assert!(s.metric("ledger_store_bytes").await > 0.0, "store size");
    let text = s
        .client
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for gauge in ["ledger_write_queue_depth", "ledger_driver_backlog"] {
        assert!(text.contains(gauge), "{gauge} missing");
    }
}

on_each_backend!(#[tokio::test] async fn json_logs_carry_one_span_per_request_with_its_request_id);
async fn json_logs_carry_one_span_per_request_with_its_request_id() {
    let mut s = Server::start_with(&["--log-format", "json"], &[("RUST_LOG", "info")]);
    let r = s
        .call_with(
            Method::POST,
            "/v1/customers",
            Some(json!({"name": "traced"})),
            &[("X-Request-Id", "trace-me-7")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("x-request-id").as_deref(), Some("trace-me-7"));
    s.stop();
    let log = s.log();
    let lines: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(!lines.is_empty(), "no JSON lines in: {log}");
    let done = lines
        .iter()
        .find(|l| {
            l["span"]["request_id"] == "trace-me-7" && l["fields"]["message"] == "request completed"
        })
        .unwrap_or_else(|| panic!("no completed span for the request in: {log}"));
    let span = &done["span"];
    assert_eq!(span["method"], "POST");
    assert_eq!(span["route"], "/v1/customers");
    assert_eq!(span["status"], 201);
    assert!(span["latency_ms"].as_f64().is_some(), "{span}");
    assert!(
        !log.contains(crate::harness::TOKEN),
        "the token must never be logged"
    );
}

on_each_backend!(#[tokio::test] async fn readyz_reports_each_check);
async fn readyz_reports_each_check() {
    let s = Server::start(&[]);
    let r = s
        .client
        .get(format!("{}/readyz", s.base))
        .send()
        .await
        .expect("readyz");
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.expect("json");
    assert_eq!(
        body,
        json!({"status": "ready", "store": true, "writer": true, "driver": true, "reasons": []})
    );
}

on_each_backend!(#[tokio::test] async fn a_config_file_sets_values_and_the_environment_overrides_it);
async fn a_config_file_sets_values_and_the_environment_overrides_it() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("ledger.toml");
    std::fs::write(&file, "driver_delay_ms = 0\ndriver_failure_rate = 1.0\n").expect("write");
    let path = file.to_string_lossy().to_string();

    let s = Server::start(&["--config", &path]);
    let c = Catalog::create(&s).await;
    let id = s.post("/v1/instances", c.instance("from-file")).await.id();
    s.wait_for_state(&id, "error").await;

    let s = Server::start_with(&["--config", &path], &[("LEDGER_DRIVER_FAILURE_RATE", "0")]);
    let c = Catalog::create(&s).await;
    let id = s.post("/v1/instances", c.instance("env-wins")).await.id();
    s.wait_for_state(&id, "running").await;
}

fn serve_fails(args: &[&str], envs: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().expect("dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ledger"))
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path())
        .args(args)
        .envs(envs.iter().copied())
        .env("LEDGER_ADMIN_TOKEN", crate::harness::TOKEN)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            assert!(!status.success(), "{args:?} {envs:?} should fail");
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            return err;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} {envs:?} kept running: invalid configuration must fail at start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn invalid_configuration_fails_at_start_naming_the_setting() {
    let dir = tempfile::tempdir().expect("dir");
    let unknown = dir.path().join("unknown.toml");
    std::fs::write(&unknown, "colour = \"blue\"\n").expect("write");
    let bad_value = dir.path().join("bad.toml");
    std::fs::write(&bad_value, "queue_capacity = 0\n").expect("write");
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (vec!["--listen", "nowhere"], vec![], "--listen"),
        (vec![], vec![("LEDGER_LISTEN", "nowhere")], "--listen"),
        (
            vec!["--driver-failure-rate", "2"],
            vec![],
            "--driver-failure-rate",
        ),
        (
            vec!["--config", unknown.to_str().expect("path")],
            vec![],
            "colour",
        ),
        (
            vec!["--config", bad_value.to_str().expect("path")],
            vec![],
            "--queue-capacity",
        ),
        (
            vec!["--config", "/nonexistent/ledger.toml"],
            vec![],
            "/nonexistent/ledger.toml",
        ),
        (vec!["--log-format", "xml"], vec![], "--log-format"),
    ];
    for (args, envs, named) in cases {
        let err = serve_fails(&args, &envs);
        assert!(
            err.contains(named),
            "{args:?} {envs:?}: error does not name {named}: {err}"
        );
    }
}

#[test]
fn serve_help_documents_every_setting_with_its_environment_variable_and_default() {
    let out = Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["serve", "--help"])
        .output()
        .expect("help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for (flag, env, default) in [
        ("--data-dir", "LEDGER_DATA_DIR", Some("./ledger-data")),
        ("--listen", "LEDGER_LISTEN", Some("127.0.0.1:8080")),
        ("--driver-delay-ms", "LEDGER_DRIVER_DELAY_MS", Some("500")),
        (
            "--driver-failure-rate",
            "LEDGER_DRIVER_FAILURE_RATE",
            Some("0"),
        ),
        ("--queue-capacity", "LEDGER_QUEUE_CAPACITY", Some("4096")),
        ("--batch-limit", "LEDGER_BATCH_LIMIT", Some("256")),
        ("--log-format", "LEDGER_LOG_FORMAT", Some("text")),
        ("--workers", "LEDGER_WORKERS", None),
        ("--cache-mb", "LEDGER_CACHE_MB", Some("1024")),
        ("--journal-kib", "LEDGER_JOURNAL_KIB", Some("1024")),
        ("--backend", "LEDGER_BACKEND", Some("redb")),
        ("--driver-sweep-secs", "LEDGER_DRIVER_SWEEP_SECS", Some("5")),
        ("--postgres-url", "LEDGER_POSTGRES_URL", None),
        (
            "--postgres-wait-secs",
            "LEDGER_POSTGRES_WAIT_SECS",
            Some("30"),
        ),
        ("--config", "LEDGER_CONFIG", None),
    ] {
        let start = help
            .find(flag)
            .unwrap_or_else(|| panic!("{flag} undocumented:\n{help}"));
        let entry = &help[start..];
        let entry = &entry[..entry[2..].find("\n      --").map_or(entry.len(), |i| i + 2)];
        assert!(entry.contains(&format!("[env: {env}=")), "{flag}: {entry}");
        if let Some(d) = default {
            assert!(
                entry.contains(&format!("[default: {d}]")),
                "{flag}: {entry}"
            );
        }
    }
}

#[test]
fn an_unreachable_postgres_is_retried_with_a_log_line_then_start_up_fails_clearly() {
    let dir = tempfile::tempdir().expect("dir");
    // `output()` returning at all shows the wait is bounded.
    let out = Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["serve", "--backend", "postgres", "--listen", "127.0.0.1:0"])
        .args(["--postgres-url", "postgres://postgres@127.0.0.1:1/ledger"])
        .args(["--postgres-wait-secs", "2"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started without a database: {err}");
    assert!(
        err.contains("PostgreSQL is not reachable yet; retrying"),
        "no retry log line: {err}"
    );
    assert!(
        err.contains("was not reachable within 2 s"),
        "unclear final error: {err}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["serve", "--backend", "postgres", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("LEDGER_POSTGRES_URL")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--postgres-url"),
        "does not name the setting: {err}"
    );
}
