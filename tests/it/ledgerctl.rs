//! `ledgerctl` as an operator runs it, on ledgers a real server wrote: export → import →
//! verify between backends with identical digests; damage named by position and kind,
//! projection damage repaired by `rebuild`, log damage never; bad import files refused
//! at their line with the target left empty; `tail` across a server restart.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use redb::ReadableTable as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Catalog, Server, TOKEN, ledgerctl as ctl, postgres};

/// `ledgerctl <args> --json`: the exit code and the one JSON document printed.
fn ctl_json(args: &[String]) -> (i32, Value) {
    let mut args = args.to_vec();
    args.push("--json".into());
    let (code, out, err) = ctl(&args);
    let doc = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("ledgerctl {args:?}: not JSON ({e}): {out}\nstderr: {err}"));
    (code, doc)
}

fn args(parts: &[&str], at: &[String]) -> Vec<String> {
    parts
        .iter()
        .map(|s| s.to_string())
        .chain(at.iter().cloned())
        .collect()
}

/// A fresh PostgreSQL database for a target, dropped with the guard.
struct PgTarget(tempfile::TempDir);

impl PgTarget {
    fn new() -> PgTarget {
        PgTarget(tempfile::tempdir().expect("dir"))
    }
    fn location(&self) -> Vec<String> {
        vec![
            "--postgres-url".into(),
            postgres::database_for(self.0.path()),
        ]
    }
}

impl Drop for PgTarget {
    fn drop(&mut self) {
        postgres::drop_database_for(self.0.path());
    }
}

/// The event types the code has (the current schema of each).
fn every_event_type() -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/events");
    std::fs::read_dir(dir)
        .expect("schema/events")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            Some(name.split_once(".v")?.0.to_string())
        })
        .collect()
}

fn types_in(file: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(file)
        .expect("export")
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("line");
            v["type"].as_str().expect("type").to_string()
        })
        .collect()
}

/// A ledger holding every event type, written through the native API and CloudMC's.
async fn ledger_with_every_event_type() -> Server {
    // A driver slow enough that a failure can be reported while a start is pending.
    let w = crate::cloudmc::world(Server::start(&["--driver-delay-ms", "300"])).await;
    let s = &w.s;
    let ok = |r: &crate::harness::Resp, what: &str| {
        assert!(r.status.is_success(), "{what}: {} {}", r.status, r.body);
    };
    // Identity and tenancy changes.
    let (user, _) = s.user("audrey", false).await;
    let token = s
        .post(
            &format!("/v1/users/{user}/tokens"),
            json!({"name": "spare"}),
        )
        .await;
    ok(&token, "token");
    let token_id = token.body["id"].as_str().expect("token id").to_string();
    ok(
        &s.call(Method::DELETE, &format!("/v1/tokens/{token_id}"), None)
            .await,
        "revoke",
    );
    let customer = s.get(&format!("/v1/projects/{}", w.project)).await.body["customer_id"]
        .as_str()
        .expect("customer")
        .to_string();
    let owner = json!({"user_id": user});
    let owners = format!("/v1/customers/{customer}/owners");
    ok(&s.post(&owners, owner.clone()).await, "add owner");
    ok(
        &s.call(Method::DELETE, &owners, Some(owner.clone())).await,
        "remove owner",
    );
    let members = format!("/v1/projects/{}/members", w.project);
    ok(
        &s.post(&members, json!({"user_id": user, "role": "manager"}))
            .await,
        "add member",
    );
    ok(
        &s.call(Method::DELETE, &members, Some(owner)).await,
        "remove member",
    );
    ok(
        &s.post("/v1/security-groups", json!({"name": "web", "protocol": "tcp", "from_port": 443, "to_port": 443, "ip_range": "0.0.0.0/0"})).await,
        "security group",
    );
    // One instance through CloudMC's operations, from creation to purge.
    let id = w.create(w.create_body("every")).await;
    for (op, body) in [
        ("stop", None),
        ("start", None),
        ("reboot", None),
        (
            "changeComputeOffering",
            Some(json!({"computeOfferingId": w.custom, "cpuCount": 2, "memoryInMB": 2048})),
        ),
        ("resetPassword", None),
        ("changeNetwork", Some(json!({"networkId": w.net2}))),
        ("associateSSHKey", Some(json!({"sshKeyName": "my_ssh_key"}))),
        ("attachIso", Some(json!({"isoId": w.iso}))),
        ("detachIso", None),
    ] {
        w.op(&id, op, body).await;
    }
    // Native-only changes: update, lock, unlock, a driver failure, destroy, recover, purge.
    let path = format!("/v1/instances/{id}");
    ok(
        &s.call(
            Method::PATCH,
            &path,
            Some(json!({"description": "all of it"})),
        )
        .await,
        "update",
    );
    ok(&s.post(&format!("{path}/lock"), json!({})).await, "lock");
    ok(
        &s.post(&format!("{path}/unlock"), json!({})).await,
        "unlock",
    );
    ok(&s.post(&format!("{path}/stop"), json!({})).await, "stop");
    s.wait_for_state(&id, "stopped").await;
    ok(&s.post(&format!("{path}/start"), json!({})).await, "start");
    let _ = s
        .post(&format!("{path}/fail"), json!({"reason": "disk on fire"}))
        .await;
    s.wait_for_state(&id, "error").await;
    ok(&s.call(Method::DELETE, &path, None).await, "destroy");
    s.wait_for_state(&id, "destroyed").await;
    ok(
        &s.post(&format!("{path}/recover"), json!({})).await,
        "recover",
    );
    s.wait_for_state(&id, "stopped").await;
    // CloudMC's delete asks a driver to destroy and purge.
    let r = w
        .ana(
            Method::DELETE,
            &format!("{}/{id}", w.instances()),
            Some(json!({"purgeImmediately": true})),
        )
        .await;
    ok(&r, "delete and purge");
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.get(&path).await.status != StatusCode::GONE {
        assert!(Instant::now() < deadline, "never purged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    w.s
}

fn field(doc: &Value, section: &str, name: &str) -> String {
    doc[section][name]
        .as_str()
        .unwrap_or_else(|| panic!("{section}.{name} in {doc}"))
        .to_string()
}

on_each_backend!(#[tokio::test] async fn export_import_verify_moves_every_event_type_between_backends_unchanged);
// The PostgreSQL guard is held for the whole test, on purpose.
#[allow(clippy::await_holding_lock)]
async fn export_import_verify_moves_every_event_type_between_backends_unchanged() {
    let mut s = ledger_with_every_event_type().await;
    s.stop();
    let source = s.ledgerctl_location();
    let (code, stats) = ctl_json(&args(&["stats"], &source));
    assert_eq!(code, 0, "{stats}");
    let (head, state) = (
        field(&stats, "stats", "head_hash"),
        field(&stats, "stats", "state_hash"),
    );
    let work = tempfile::tempdir().expect("dir");
    let file = work.path().join("ledger.jsonl");
    let file_arg = file.display().to_string();
    let (code, out, err) = ctl(&args(&["export", "-o", &file_arg], &source));
    assert_eq!(code, 0, "{out}{err}");
    let missing: Vec<_> = every_event_type()
        .difference(&types_in(&file))
        .cloned()
        .collect();
    assert!(missing.is_empty(), "the ledger lacks {missing:?}");
    let exported = std::fs::read(&file).expect("read export");

    // Into a fresh embedded ledger and a fresh PostgreSQL one, whichever the source was.
    let _pg = (!postgres::enabled()).then(crate::harness::postgres_shared);
    let redb_target = work.path().join("imported");
    let pg_target = PgTarget::new();
    let targets = [
        vec!["--data-dir".to_string(), redb_target.display().to_string()],
        pg_target.location(),
    ];
    for target in &targets {
        let (code, imported) = ctl_json(&args(&["import", &file_arg], target));
        assert_eq!(code, 0, "{target:?}: {imported}");
        assert_eq!(field(&imported, "imported", "head_hash"), head);
        assert_eq!(field(&imported, "imported", "state_hash"), state);
        let (code, verified) = ctl_json(&args(&["verify"], target));
        assert_eq!(code, 0, "{target:?}: {verified}");
        assert_eq!(field(&verified, "verified", "head_hash"), head);
        assert_eq!(field(&verified, "verified", "state_hash"), state);
        let again = work.path().join("again.jsonl");
        let (code, _, err) = ctl(&args(
            &["export", "-o", &again.display().to_string()],
            target,
        ));
        assert_eq!(code, 0, "{err}");
        assert!(
            std::fs::read(&again).expect("re-export") == exported,
            "{target:?}: the imported log is not byte for byte the exported one"
        );
        // A second import into the now non-empty target is refused as a usage error.
        let (code, refused) = ctl_json(&args(&["import", &file_arg], target));
        assert_eq!(
            (code, refused["error"].as_str()),
            (2, Some("usage")),
            "{refused}"
        );
    }
    // The imported embedded ledger serves, attesting the source's digest.
    if !postgres::enabled() {
        let copy = Server::start_in(&redb_target, &[]);
        let digest = copy.get("/v1/ledger/digest").await;
        assert_eq!(digest.body["hash"], head.as_str(), "{}", digest.body);
        assert_eq!(digest.body["state_hash"], state.as_str(), "{}", digest.body);
    }
}

/// The redb file of a stopped server, opened directly to damage it.
fn redb_file(s: &Server) -> PathBuf {
    s.data_dir.join("ledger.redb")
}

fn damage_redb(file: &Path, f: impl FnOnce(&redb::WriteTransaction)) {
    let db = redb::Database::open(file).expect("open redb");
    let txn = db.begin_write().expect("txn");
    f(&txn);
    txn.commit().expect("commit");
}

const EVENTS: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("events");
const VERSIONS: redb::TableDefinition<u64, &[u8]> =
    redb::TableDefinition::new("versions_by_position");
const CURRENT: redb::TableDefinition<u128, (u64, [u8; 32])> =
    redb::TableDefinition::new("current_views");
const INDEX: redb::TableDefinition<(u32, u128), ()> = redb::TableDefinition::new("index_by_key");

/// `verify` fails naming `at` (and a detail containing `kind`), exit code 1.
fn assert_damage(at_flags: &[String], at: &str, kind: &str) {
    let (code, doc) = ctl_json(&args(&["verify"], at_flags));
    assert_eq!(code, 1, "{doc}");
    assert_eq!(doc["error"], "damage", "{doc}");
    assert_eq!(doc["at"], at, "{doc}");
    assert!(
        doc["damage"].as_str().is_some_and(|d| d.contains(kind)),
        "expected {kind:?}: {doc}"
    );
}

async fn small_ledger() -> (Server, String) {
    let mut s = Server::start(&["--driver-delay-ms", "0"]);
    let c = Catalog::create(&s).await;
    let id = s.post("/v1/instances", c.instance("a")).await.id();
    s.wait_for_state(&id, "running").await;
    let other = s.post("/v1/instances", c.instance("b")).await.id();
    s.wait_for_state(&other, "running").await;
    s.stop();
    (s, id)
}

fn rebuild_ok(at: &[String]) {
    let (code, doc) = ctl_json(&args(&["rebuild"], at));
    assert_eq!(code, 0, "{doc}");
    let (code, doc) = ctl_json(&args(&["verify"], at));
    assert_eq!(code, 0, "a rebuild repairs projection damage: {doc}");
}

#[tokio::test]
async fn verify_names_redb_damage_and_rebuild_repairs_only_projections() {
    crate::harness::Backend::Redb.enter();
    let (s, id) = small_ledger().await;
    let at = s.ledgerctl_location();
    let file = redb_file(&s);
    let uuid = uuid::Uuid::parse_str(&id).expect("id").as_u128();

    // An altered projection row, then a missing one: named, and repaired by a rebuild.
    // The instance's current view is the version its current-view entry points to.
    damage_redb(&file, |t| {
        let position = {
            let current = t.open_table(CURRENT).expect("current views");
            current
                .get(uuid)
                .expect("get")
                .expect("a current view")
                .value()
                .0
        };
        let mut table = t.open_table(VERSIONS).expect("versions");
        let mut row = table
            .get(position)
            .expect("get")
            .expect("a version")
            .value()
            .to_vec();
        // A byte of the view's id (after the 32-byte state hash and the format byte).
        row[32 + 5] ^= 0x01;
        table.insert(position, row.as_slice()).expect("put");
    });
    assert_damage(&at, "projection versions_by_position", "differs");
    rebuild_ok(&at);
    damage_redb(&file, |t| {
        let mut table = t.open_table(INDEX).expect("index");
        let first = table
            .iter()
            .expect("iter")
            .next()
            .expect("an entry")
            .expect("row")
            .0
            .value();
        table.remove(first).expect("remove");
    });
    assert_damage(&at, "projection index_by_key", "missing entry");
    rebuild_ok(&at);

    // A flipped byte in an event: named at its position; rebuild refuses, nothing changes.
    damage_redb(&file, |t| {
        let mut table = t.open_table(EVENTS).expect("events");
        let mut row = table.get(3).expect("get").expect("row").value().to_vec();
        row[60] ^= 0x01;
        table.insert(3, row.as_slice()).expect("put");
    });
    assert_damage(&at, "position 3", "hash does not match");
    let (code, doc) = ctl_json(&args(&["rebuild"], &at));
    assert_eq!((code, doc["at"].as_str()), (1, Some("position 3")), "{doc}");
    assert_damage(&at, "position 3", "hash does not match");
    damage_redb(&file, |t| {
        let mut table = t.open_table(EVENTS).expect("events");
        let mut row = table.get(3).expect("get").expect("row").value().to_vec();
        row[60] ^= 0x01;
        table.insert(3, row.as_slice()).expect("put");
    });
    let (code, doc) = ctl_json(&args(&["verify"], &at));
    assert_eq!(code, 0, "restored: {doc}");

    // A gap in positions.
    damage_redb(&file, |t| {
        t.open_table(EVENTS)
            .expect("events")
            .remove(4)
            .expect("remove");
    });
    assert_damage(&at, "position 4", "missing event");

    // A truncated file: refused as damage (exit 1), never opened as an empty ledger.
    let len = std::fs::metadata(&file).expect("meta").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .expect("open");
    f.set_len(len / 3).expect("truncate");
    drop(f);
    let (code, doc) = ctl_json(&args(&["verify"], &at));
    assert_eq!((code, doc["error"].as_str()), (1, Some("damage")), "{doc}");
    assert!(
        doc["at"]
            .as_str()
            .is_some_and(|a| a.starts_with("store file")),
        "{doc}"
    );
}

#[tokio::test]
// The PostgreSQL guard is held for the whole test, on purpose.
#[allow(clippy::await_holding_lock)]
async fn verify_names_postgres_damage_and_rebuild_repairs_only_projections() {
    crate::harness::Backend::Postgres.enter();
    let _pg = crate::harness::postgres_shared();
    let (s, id) = small_ledger().await;
    let at = s.ledgerctl_location();
    let url = postgres::database_for(&s.data_dir);
    let sql = |q: String| postgres::on(url.clone(), move |c| c.batch_execute(&q).expect("sql"));

    sql(format!(
        "UPDATE instances SET view = set_byte(view, 5, get_byte(view, 5) # 1) WHERE id = '{id}'"
    ));
    assert_damage(&at, "projection instances", "differ from a rebuild");
    rebuild_ok(&at);
    sql("DELETE FROM index_entries WHERE ctid = (SELECT ctid FROM index_entries LIMIT 1)".into());
    assert_damage(&at, "projection index_entries", "differ from a rebuild");
    rebuild_ok(&at);

    sql(
        "UPDATE events SET body = set_byte(body, 60, get_byte(body, 60) # 1) WHERE position = 3"
            .into(),
    );
    assert_damage(&at, "position 3", "hash does not match");
    let (code, doc) = ctl_json(&args(&["rebuild"], &at));
    assert_eq!((code, doc["at"].as_str()), (1, Some("position 3")), "{doc}");
    sql(
        "UPDATE events SET body = set_byte(body, 60, get_byte(body, 60) # 1) WHERE position = 3"
            .into(),
    );
    let (code, doc) = ctl_json(&args(&["verify"], &at));
    assert_eq!(code, 0, "restored: {doc}");

    sql("DELETE FROM events WHERE position = 4".into());
    assert_damage(&at, "position 4", "missing event");
}

#[tokio::test]
// The PostgreSQL guard is held for the whole test, on purpose.
#[allow(clippy::await_holding_lock)]
async fn import_stops_at_the_first_bad_line_and_leaves_the_target_empty() {
    crate::harness::Backend::Redb.enter();
    let (s, _) = small_ledger().await;
    let work = tempfile::tempdir().expect("dir");
    let file = work.path().join("good.jsonl");
    let (code, _, err) = ctl(&args(
        &["export", "-o", &file.display().to_string()],
        &s.ledgerctl_location(),
    ));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<String> = std::fs::read_to_string(&file)
        .expect("read")
        .lines()
        .map(String::from)
        .collect();
    assert!(lines.len() > 8, "{}", lines.len());
    let write = |name: &str, lines: &[String]| {
        let path = work.path().join(name);
        std::fs::write(&path, lines.join("\n") + "\n").expect("write");
        path.display().to_string()
    };
    // An altered line 4 breaks the link of line 5 to it.
    let mut altered = lines.clone();
    altered[3] = altered[3].replacen("\"actor\":\"", "\"actor\":\"x", 1);
    let mut gap = lines.clone();
    gap.remove(5);
    let mut invalid = lines.clone();
    invalid[6] = "{\"position\": 7, not json".into();
    let _pg = crate::harness::postgres_shared();
    let pg = PgTarget::new();
    for (name, file, line, kind) in [
        (
            "broken chain",
            write("altered.jsonl", &altered),
            5,
            "previous-hash link",
        ),
        (
            "gap",
            write("gap.jsonl", &gap),
            6,
            "envelope says position 7",
        ),
        (
            "invalid",
            write("invalid.jsonl", &invalid),
            7,
            "does not decode",
        ),
    ] {
        let redb = vec![
            "--data-dir".to_string(),
            work.path().join(format!("t-{line}")).display().to_string(),
        ];
        for target in [redb, pg.location()] {
            let (code, doc) = ctl_json(&args(&["import", &file], &target));
            assert_eq!(code, 1, "{name}: {doc}");
            assert_eq!(doc["error"], "bad_line", "{name}: {doc}");
            assert_eq!(doc["line"], line, "{name}: {doc}");
            assert!(
                doc["damage"].as_str().is_some_and(|d| d.contains(kind)),
                "{name}: {doc}"
            );
            let (code, stats) = ctl_json(&args(&["stats"], &target));
            assert_eq!(code, 0, "{stats}");
            assert_eq!(
                stats["stats"]["events"], 0,
                "{name}: the target was touched"
            );
        }
    }
}

on_each_backend!(#[tokio::test] async fn tail_follows_the_feed_across_a_server_restart_exactly_once_in_order);
async fn tail_follows_the_feed_across_a_server_restart_exactly_once_in_order() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let flags = ["--listen", listen.as_str(), "--driver-delay-ms", "0"];
    let mut s = Server::start(&flags);
    let c = Catalog::create(&s).await;
    let a = s.post("/v1/instances", c.instance("before")).await.id();
    s.wait_for_state(&a, "running").await;

    let mut tail = Command::new(env!("CARGO_BIN_EXE_ledgerctl"))
        .args(["tail", "--json", "--url", &s.base, "--token", TOKEN])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tail");
    let (tx, rx) = std::sync::mpsc::channel::<u64>();
    let stdout = tail.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let v: Value = serde_json::from_str(&line).expect("an event per line");
            let _ = tx.send(v["position"].as_u64().expect("position"));
        }
    });
    let mut seen = Vec::new();
    let collect_to = |seen: &mut Vec<u64>, head: u64| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen.last().copied() < Some(head) {
            let left = deadline.saturating_duration_since(Instant::now());
            seen.push(rx.recv_timeout(left).expect("tail fell behind"));
        }
    };
    let first_head = s.position().await;
    collect_to(&mut seen, first_head);

    // Stop the server; it comes back on the same address and the same ledger.
    s.stop();
    let dir = s.take_dir().expect("dir");
    let s = Server::start_in(dir.path(), &flags);
    let b = s.post("/v1/instances", c.instance("after")).await.id();
    s.wait_for_state(&b, "running").await;
    let second_head = s.position().await;
    assert!(second_head > first_head);
    collect_to(&mut seen, second_head);

    let expected: Vec<u64> = (1..=second_head).collect();
    assert_eq!(seen, expected, "every event exactly once, in order");

    // Ctrl-C ends it cleanly.
    Command::new("kill")
        .args(["-INT", &tail.id().to_string()])
        .status()
        .expect("kill");
    let status = tail.wait().expect("wait");
    let mut err = String::new();
    if let Some(mut e) = tail.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut err).ok();
    }
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(
        err.contains("feed disconnected"),
        "the restart was noticed: {err}"
    );
}

#[test]
fn usage_errors_and_unopenable_ledgers_have_their_exit_codes() {
    let (code, _, err) = ctl(&["verify", "--bogus"]);
    assert_eq!(code, 2, "{err}");
    let (code, out, _) = ctl(&["--help"]);
    assert_eq!(code, 0);
    for command in [
        "verify", "rebuild", "export", "import", "history", "diff", "audit", "stats", "tail",
    ] {
        assert!(out.contains(command), "--help lists {command}: {out}");
    }
    let nowhere = tempfile::tempdir().expect("dir");
    let (code, doc) = ctl_json(&args(
        &["verify", "--data-dir"],
        &[nowhere.path().join("none").display().to_string()],
    ));
    assert_eq!(
        (code, doc["error"].as_str()),
        (3, Some("cannot_open")),
        "{doc}"
    );
}
