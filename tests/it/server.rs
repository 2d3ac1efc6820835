//! The binary as an operator meets it: the generated admin token, the unauthenticated
//! operational endpoints, and a clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Starts `ledger serve` without `LEDGER_ADMIN_TOKEN`; returns the child, its base URL and
/// every stdout line printed before the address.
fn spawn(dir: &std::path::Path) -> (Child, String, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env_remove("LEDGER_ADMIN_TOKEN")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("no stdout pipe");
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut before = Vec::new();
    loop {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server printed no address; stdout so far: {before:?}");
        };
        if let Some(base) = line.strip_prefix("listening on ") {
            return (child, base.to_string(), before);
        }
        before.push(line);
    }
}

fn terminate(mut child: Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    for _ in 0..400 {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("no exit within 20 s of SIGTERM");
}

#[tokio::test]
async fn first_start_generates_a_private_admin_token_printed_once() {
    let tmp = tempfile::tempdir().expect("dir");
    let (child, base, lines) = spawn(tmp.path());
    let printed: Vec<_> = lines
        .iter()
        .filter(|l| l.starts_with("generated admin token"))
        .collect();
    assert_eq!(printed.len(), 1, "{lines:?}");
    let token = printed[0].rsplit(": ").next().expect("token").to_string();
    let file = tmp.path().join("admin-token");
    assert_eq!(std::fs::read_to_string(&file).expect("token file"), token);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/v1/customers"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "a"}))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 201);
    let r = client
        .get(format!("{base}/v1/customers"))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 401);

    // operational endpoints need no token
    let r = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 200);
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("req")
        .text()
        .await
        .expect("text");
    for name in [
        "ledger_events_appended_total",
        "ledger_commits_total",
        "ledger_batch_events_bucket",
        "ledger_http_request_duration_seconds_bucket",
        "ledger_http_requests_total",
    ] {
        assert!(
            metrics.contains(name),
            "{name} missing from /metrics:\n{metrics}"
        );
    }
    assert!(
        metrics.contains("route=\"/v1/customers\""),
        "requests are labelled by route template"
    );

    assert!(terminate(child).success(), "SIGTERM is a clean shutdown");

    // a restart reuses the stored token and prints nothing secret
    let (child, base, lines) = spawn(tmp.path());
    assert!(lines.iter().all(|l| !l.contains(&token)), "{lines:?}");
    let r = client
        .get(format!("{base}/v1/customers"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["total"], 1, "the customer survived the restart");
    assert!(terminate(child).success());
}

#[test]
fn verify_refuses_politely_while_the_server_holds_the_ledger() {
    let tmp = tempfile::tempdir().expect("dir");
    let (child, _base, _) = spawn(tmp.path());
    let out = Command::new(env!("CARGO_BIN_EXE_ledger"))
        .arg("verify")
        .arg("--data-dir")
        .arg(tmp.path())
        .output()
        .expect("verify");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is a server running"), "{err}");
    assert!(terminate(child).success());
}
