//! Secrets stay secret: a user token used on every surface, and a password CloudMC reset
//! for it, are nowhere in the stored ledger (the store's files, or its whole export), in
//! the event feed, nor in the server's log: only the token's SHA-256 and the password's
//! digest are kept, and neither is ever printed.

use std::time::{Duration, Instant};

use reqwest::Method;

use crate::harness::{Catalog, Resp, Server, ledgerctl};

/// Every file under `dir`, read whole (the redb file and anything beside it).
fn files_under(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push((path.display().to_string(), bytes));
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn with(s: &Server, method: Method, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = s.http(method, path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Server::send(req).await
}

on_each_backend!(#[tokio::test] async fn a_token_and_a_reset_password_are_never_stored_fed_or_logged);
async fn a_token_and_a_reset_password_are_never_stored_fed_or_logged() {
    // Everything the server logs, at its most talkative.
    let mut s = Server::start_with(&["--driver-delay-ms", "0"], &[("RUST_LOG", "debug")]);
    let c = Catalog::create(&s).await;
    let (_, token) = s.administrator("ann", &c.project).await;
    let id = s.post("/v1/instances", c.instance("web-1")).await.id();
    s.wait_for_state(&id, "running").await;
    let secret = token.rsplit('_').next().expect("a secret").to_string();
    assert!(secret.len() >= 32, "{token}");

    // The token at work on every surface, the way each one's clients carry it.
    let bearer = format!("Bearer {token}");
    let drf = format!("Token {token}");
    let account = format!("a-{}", c.customer);
    let cloudmc = format!(
        "/cloudmc/api/v2/services/compute-on/{}/instances",
        c.project
    );
    for (path, headers) in [
        (
            "/v1/me".to_string(),
            vec![("Authorization", bearer.as_str())],
        ),
        (
            "/nodeconductor/api/instances/".to_string(),
            vec![("Authorization", drf.as_str())],
        ),
        (
            "/mogan/v1/servers".to_string(),
            vec![("X-Auth-Token", token.as_str())],
        ),
        (cloudmc.clone(), vec![("MC-Api-Key", token.as_str())]),
        (
            "/wakame/api/instances".to_string(),
            vec![
                ("X-VDC-Requester-Token", token.as_str()),
                ("X-VDC-Account-UUID", account.as_str()),
            ],
        ),
        (
            format!("/launch-provision/v1/{}/attributes?key=k&token={token}", {
                let r = s.get(&format!("/v1/instances/{id}")).await;
                r.body["short_id"].as_str().expect("short id").to_string()
            }),
            vec![],
        ),
    ] {
        let r = with(&s, Method::GET, &path, &headers).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    // A wrong secret is refused too, and its text is not logged either.
    let wrong = format!(
        "{}_{}",
        token.rsplit_once('_').expect("token").0,
        "f".repeat(64)
    );
    let r = with(
        &s,
        Method::GET,
        "/v1/me",
        &[("Authorization", &format!("Bearer {wrong}"))],
    )
    .await;
    assert_eq!(r.status, 401);

    // CloudMC resets the password: the asker reads it from the task, once derived.
    let key = [
        ("MC-Api-Key", token.as_str()),
        ("Content-Type", "application/json"),
    ];
    let r = with(
        &s,
        Method::POST,
        &format!("{cloudmc}/{id}?operation=resetPassword"),
        &key,
    )
    .await;
    assert!(r.status.is_success(), "{}", r.body);
    let task = r.body["taskId"].as_str().expect("taskId").to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let password = loop {
        let r = with(
            &s,
            Method::GET,
            &format!("/cloudmc/api/v2/tasks/{task}"),
            &key,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        if let Some(p) = r.body["data"]["result"]["password"].as_str() {
            break p.to_string();
        }
        assert!(Instant::now() < deadline, "no password: {}", r.body);
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert!(password.len() >= 12, "{password}");

    // The feed, as staff reads it: every event, the token's and the reset's included.
    let feed = s.get("/v1/events?limit=1000").await;
    assert_eq!(feed.status, 200);
    let types: Vec<&str> = feed.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert!(types.contains(&"TokenIssued"), "{types:?}");
    assert!(types.contains(&"PasswordReset"), "{types:?}");
    let feed = feed.body.to_string();

    // Then the server stops, so the store can be read whole and exported.
    s.stop();
    let (code, export, err) =
        ledgerctl(&[vec!["export".to_string()], s.ledgerctl_location()].concat());
    assert_eq!(code, 0, "{err}");
    assert!(export.lines().count() > 10, "{export}");
    let log = s.log();
    assert!(
        log.contains("request completed"),
        "the server log holds the requests"
    );

    let mut places: Vec<(String, Vec<u8>)> = vec![
        ("the event feed".into(), feed.into_bytes()),
        ("the export".into(), export.into_bytes()),
        ("the server log".into(), log.into_bytes()),
    ];
    places.extend(files_under(&s.data_dir));
    for (place, bytes) in &places {
        for (what, needle) in [
            ("the token", token.as_str()),
            ("the token's secret", secret.as_str()),
            ("the wrong secret", wrong.as_str()),
            ("the reset password", password.as_str()),
        ] {
            assert!(!contains(bytes, needle), "{what} is in {place}");
        }
    }
    // What is kept instead: the secret's SHA-256 (a stored user's token record).
    let digest: String = {
        use sha2::Digest;
        sha2::Sha256::digest(secret.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let exported = &places[1].1;
    assert!(
        contains(exported, &digest),
        "the export keeps the token's digest"
    );
}
