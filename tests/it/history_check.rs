//! A Jepsen-style history check over the native API. Sixteen concurrent clients send
//! random lifecycle commands (start, stop and forced stop, reboot, resize, update, lock,
//! unlock, destroy, recover) to six shared instances, as staff or as a project
//! administrator, through random nodes (one on redb, three on one PostgreSQL database),
//! with a fresh, a stale or no `If-Match`, and some with an `Idempotency-Key`, retried
//! after the answer or sent twice at once. Every request and answer is recorded; once the
//! drivers are idle the whole log is read back and must account for the history:
//!
//! - only 200/202 (by operation), 409 and 412 answers, each echoing its request id;
//! - every instance's events are a legal path through the state machine, versions 1..n,
//!   completions by the driver only, locks honoured for non-staff callers;
//! - every fresh 2xx is exactly one event group (by request id) whose last version and
//!   resulting view are the answer's, directly after the `If-Match` it named; every other
//!   answer is no event; nothing else but driver completions is in the log;
//! - a stale `If-Match` is always 412; refusals name a version or state the log shows;
//! - an idempotent replay is the original answer and appends nothing, each key's events
//!   carry one request id (checked in `ledgerctl export`);
//! - positions gap-free, no duplicate (stream, version), the same feed on every node, and
//!   positions and reads respect real time (an answer received before a request was sent
//!   is ordered before it, and never read past);
//! - `ledgerctl verify` is clean.
//!
//! `LEDGER_HISTORY_COMMANDS` sets the number of commands (default 600, as in CI; by hand
//! `LEDGER_HISTORY_COMMANDS=10000 cargo test --test it history_check -- --nocapture`),
//! `LEDGER_HISTORY_SEED` replays a seed's commands (the seed is printed when the check
//! fails; the interleaving, and so the answers, differ from run to run).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use instance_ledger::domain::lifecycle::{Operation, State};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Catalog, Server, TOKEN, postgres};
use crate::postgres_cluster::feed;

mod checks;

const CLIENTS: usize = 16;
const INSTANCES: usize = 6;
const DRIVER: [&str; 4] = ["--driver-delay-ms", "5", "--driver-sweep-secs", "1"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Start,
    Stop { force: bool },
    Reboot { soft: bool },
    Resize { big: bool },
    Update,
    Lock,
    Unlock,
    Destroy { force: bool },
    Recover,
}

impl Op {
    fn random(rng: &mut StdRng) -> Op {
        match rng.random_range(0..100) {
            0..16 => Op::Start,
            16..32 => Op::Stop {
                force: rng.random_bool(0.3),
            },
            32..42 => Op::Reboot {
                soft: rng.random_bool(0.5),
            },
            42..52 => Op::Resize {
                big: rng.random_bool(0.5),
            },
            52..66 => Op::Update,
            66..76 => Op::Lock,
            76..86 => Op::Unlock,
            86..92 => Op::Destroy {
                force: rng.random_bool(0.5),
            },
            _ => Op::Recover,
        }
    }

    /// What the transition table calls it (and what a refusal names).
    fn operation(self) -> Operation {
        match self {
            Op::Start => Operation::Start,
            Op::Stop { force: false } => Operation::Stop,
            Op::Stop { force: true } => Operation::ForceStop,
            Op::Reboot { .. } => Operation::Reboot,
            Op::Resize { .. } => Operation::Resize,
            Op::Update => Operation::Update,
            Op::Lock => Operation::Lock,
            Op::Unlock => Operation::Unlock,
            Op::Destroy { force: false } => Operation::Destroy,
            Op::Destroy { force: true } => Operation::ForceDestroy,
            Op::Recover => Operation::Recover,
        }
    }

    /// The documented success status.
    fn ok_status(self) -> u16 {
        match self {
            Op::Start | Op::Stop { .. } | Op::Reboot { .. } => 202,
            _ => 200,
        }
    }

    fn request(
        self,
        w: &World,
        instance: usize,
        command: usize,
    ) -> (Method, String, Option<Value>) {
        let path = format!("/v1/instances/{}", w.ids[instance]);
        let post =
            |action: &str, body: Value| (Method::POST, format!("{path}/{action}"), Some(body));
        match self {
            Op::Start => post("start", json!({})),
            Op::Stop { force } => post("stop", json!({ "force": force })),
            Op::Reboot { soft } => post("reboot", json!({ "soft": soft })),
            Op::Resize { big } => post("resize", json!({"flavor_id": w.flavors[usize::from(big)]})),
            // Unique, so an update always changes something (an equal one appends nothing).
            Op::Update => (
                Method::PATCH,
                path.clone(),
                Some(json!({"description": format!("command {command}")})),
            ),
            Op::Lock => post("lock", json!({})),
            Op::Unlock => post("unlock", json!({})),
            Op::Destroy { force } => (Method::DELETE, format!("{path}?force={force}"), None),
            Op::Recover => post("recover", json!({})),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Precondition {
    None,
    /// The version this client last saw.
    Fresh(u64),
    /// Older than a version this client saw: can never match.
    Stale(u64),
}

impl Precondition {
    fn version(self) -> Option<u64> {
        match self {
            Precondition::None => None,
            Precondition::Fresh(v) | Precondition::Stale(v) => Some(v),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Original,
    /// The same request with the same key, after the original's answer.
    Retry,
    /// The same request with the same key, at the same time as the original.
    Twin,
}

struct World {
    bases: Vec<String>,
    http: reqwest::Client,
    ids: Vec<String>,
    flavors: [String; 2],
    member_token: String,
}

#[derive(Clone)]
struct Request {
    node: usize,
    staff: bool,
    method: Method,
    path: String,
    body: Option<Value>,
    if_match: Option<u64>,
    key: Option<String>,
    /// Ours, or `None` for one the server makes up (its echo is then the id).
    request_id: Option<String>,
}

#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    body: Value,
    replayed: bool,
    request_id: String,
    sent: Instant,
    received: Instant,
}

#[derive(Debug)]
struct Sent {
    command: usize,
    attempt: Attempt,
    op: Op,
    instance: usize,
    staff: bool,
    precondition: Precondition,
    key: Option<String>,
    answer: Answer,
}

impl Sent {
    fn fresh_success(&self) -> bool {
        (200..300).contains(&self.answer.status) && !self.answer.replayed
    }
}

/// A version some answer showed the instance at, and when that request was sent.
struct Observed {
    instance: usize,
    version: u64,
    sent: Instant,
}

#[derive(Default)]
struct History {
    sends: Vec<Sent>,
    reads: Vec<Observed>,
}

impl World {
    async fn send(&self, r: &Request) -> Answer {
        let token = if r.staff { TOKEN } else { &self.member_token };
        let mut req = self
            .http
            .request(
                r.method.clone(),
                format!("{}{}", self.bases[r.node], r.path),
            )
            .bearer_auth(token);
        if let Some(v) = r.if_match {
            req = req.header("If-Match", format!("\"{v}\""));
        }
        if let Some(k) = &r.key {
            req = req.header("Idempotency-Key", k);
        }
        if let Some(id) = &r.request_id {
            req = req.header("X-Request-Id", id);
        }
        if let Some(b) = &r.body {
            req = req.json(b);
        }
        let sent = Instant::now();
        let resp = Server::send(req).await;
        let received = Instant::now();
        let echoed = resp
            .header("x-request-id")
            .unwrap_or_else(|| panic!("{} {}: no X-Request-Id in the answer", r.method, r.path));
        if let Some(id) = &r.request_id {
            assert_eq!(
                &echoed, id,
                "{} {}: request id not echoed",
                r.method, r.path
            );
        }
        Answer {
            status: resp.status.as_u16(),
            replayed: resp.header("idempotent-replayed").as_deref() == Some("true"),
            body: resp.body,
            request_id: echoed,
            sent,
            received,
        }
    }

    async fn read(&self, node: usize, instance: usize) -> Observed {
        let sent = Instant::now();
        let url = format!("{}/v1/instances/{}", self.bases[node], self.ids[instance]);
        let r = Server::send(self.http.get(url).bearer_auth(TOKEN)).await;
        assert_eq!(r.status.as_u16(), 200, "read: {}", r.body);
        let version = r.body["version"].as_u64().expect("version");
        Observed {
            instance,
            version,
            sent,
        }
    }
}

/// One client: its share of the commands, each on a random instance through a random node.
async fn client(w: Arc<World>, c: usize, commands: std::ops::Range<usize>, seed: u64) -> History {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(31).wrapping_add(c as u64));
    let mut known: HashMap<usize, u64> = HashMap::new();
    let mut h = History::default();
    let nodes = w.bases.len();
    for command in commands {
        let instance = rng.random_range(0..INSTANCES);
        let op = Op::random(&mut rng);
        let node = rng.random_range(0..nodes);
        let staff = rng.random_bool(0.7);
        // A fresh `If-Match` is a read-modify-write: the version read just before.
        let kind = rng.random_range(0..10);
        let reread = rng.random_bool(0.2);
        if (4..9).contains(&kind) || reread || !known.contains_key(&instance) {
            let seen = w.read(node, instance).await;
            let v = known.entry(instance).or_default();
            *v = (*v).max(seen.version);
            h.reads.push(seen);
        }
        // Every instance is at version 2 or more (created, provisioned) before the load.
        let v = known[&instance];
        let precondition = match kind {
            0..4 => Precondition::None,
            4..9 => Precondition::Fresh(v),
            _ => Precondition::Stale(v - 1),
        };
        let key = rng
            .random_bool(0.4)
            .then(|| format!("history-{seed}-{command}"));
        let again = rng.random_range(0..10);
        let own_id = rng.random_bool(0.5);
        let (method, path, body) = op.request(&w, instance, command);
        let first = Request {
            node,
            staff,
            method,
            path,
            body,
            if_match: precondition.version(),
            key: key.clone(),
            request_id: own_id.then(|| format!("history-{seed}-{command}-0")),
        };
        let mut second = first.clone();
        second.node = (node + 1) % nodes;
        second.request_id = own_id.then(|| format!("history-{seed}-{command}-1"));
        let answers = match (&key, again) {
            (Some(_), 0..3) => {
                let a = w.send(&first).await;
                vec![
                    (Attempt::Original, a),
                    (Attempt::Retry, w.send(&second).await),
                ]
            }
            (Some(_), 3..5) => {
                let (a, b) = tokio::join!(w.send(&first), w.send(&second));
                vec![(Attempt::Original, a), (Attempt::Twin, b)]
            }
            _ => vec![(Attempt::Original, w.send(&first).await)],
        };
        for (attempt, answer) in answers {
            let seen = match answer.status {
                200..300 if !answer.replayed => answer.body["version"].as_u64(),
                412 => answer.body["current_version"].as_u64(),
                _ => None,
            };
            if let Some(seen) = seen {
                let v = known.entry(instance).or_default();
                *v = (*v).max(seen);
            }
            h.sends.push(Sent {
                command,
                attempt,
                op,
                instance,
                staff,
                precondition,
                key: key.clone(),
                answer,
            });
        }
    }
    h
}

/// Prints the seed when the check fails, so the run can be replayed.
struct SeedOnFailure(u64);

impl Drop for SeedOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "history check failed; replay with LEDGER_HISTORY_SEED={}",
                self.0
            );
        }
    }
}

fn setting(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

on_each_backend!(#[tokio::test(flavor = "multi_thread", worker_threads = 4)] async fn concurrent_clients_leave_a_history_the_log_accounts_for);
async fn concurrent_clients_leave_a_history_the_log_accounts_for() {
    let seed = setting("LEDGER_HISTORY_SEED").unwrap_or_else(rand::random::<u64>);
    let _seed = SeedOnFailure(seed);
    let commands = setting("LEDGER_HISTORY_COMMANDS").unwrap_or(600) as usize;
    let started = Instant::now();
    let mut nodes = vec![Server::start(&DRIVER)];
    if postgres::enabled() {
        let shared = nodes[0].data_dir.clone();
        nodes.push(Server::start_node(&shared, &DRIVER));
        nodes.push(Server::start_node(&shared, &DRIVER));
    }
    let cat = Catalog::create(&nodes[0]).await;
    let (member, member_token) = nodes[0].user("history-member", false).await;
    let r = nodes[0]
        .post(
            &format!("/v1/projects/{}/members", cat.project),
            json!({"user_id": member, "role": "administrator"}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let mut ids = Vec::new();
    for n in 0..INSTANCES {
        let r = nodes[n % nodes.len()]
            .post("/v1/instances", cat.instance(&format!("h{n}")))
            .await;
        assert_eq!(r.status.as_u16(), 201, "{}", r.body);
        ids.push(r.id());
    }
    for id in &ids {
        nodes[0].wait_for_state(id, "running").await;
    }
    let setup = nodes[0].position().await;
    let world = Arc::new(World {
        bases: nodes.iter().map(|n| n.base.clone()).collect(),
        http: reqwest::Client::new(),
        ids,
        flavors: [cat.flavor.clone(), cat.flavor_big.clone()],
        member_token,
    });

    let load = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            tokio::spawn(client(
                world.clone(),
                c,
                c * commands / CLIENTS..(c + 1) * commands / CLIENTS,
                seed,
            ))
        })
        .collect();
    let mut history = History::default();
    for t in tasks {
        let h = t.await.expect("client");
        history.sends.extend(h.sends);
        history.reads.extend(h.reads);
    }
    let load = load.elapsed();

    // The drivers finish what was asked: no instance left transitional.
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in &world.ids {
        loop {
            let r = nodes[0].get(&format!("/v1/instances/{id}")).await;
            let state = State::parse(r.body["state"].as_str().unwrap_or_default());
            if state.is_some_and(|s| !s.is_transitional()) {
                break;
            }
            assert!(Instant::now() < deadline, "{id} stuck: {}", r.body);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let log = feed(&nodes[0]).await;
    for (n, node) in nodes.iter().enumerate().skip(1) {
        assert!(
            feed(node).await == log,
            "node {} serves another feed than node 1",
            n + 1
        );
    }
    assert_eq!(nodes[0].position().await, log.len() as u64);
    checks::gap_free(&log);

    let tally = checks::history(&world, &history, &log, setup);
    let count = |prefix: &str| tally.count(prefix);
    if commands >= 200 {
        assert!(
            count("409") > 0
                && count("412") > 0
                && tally.replayed > 0
                && tally.fresh > commands / 10,
            "the load proves little: {:?}",
            tally.statuses
        );
    }

    // The stored log, offline on redb (the file is the server's while it runs).
    if !postgres::enabled() {
        nodes[0].stop();
    }
    let location = nodes[0].ledgerctl_location();
    let (export, verified) = tokio::task::spawn_blocking(move || {
        let run = |command: &str| {
            let mut args = vec![command.to_string()];
            args.extend(location.iter().cloned());
            let (code, out, err) = crate::harness::ledgerctl(&args);
            assert_eq!(code, 0, "ledgerctl {command}: {out}{err}");
            out
        };
        (run("export"), run("verify"))
    })
    .await
    .expect("ledgerctl");
    assert!(
        verified.contains(&format!("{} events verified", log.len())),
        "{verified}"
    );
    checks::stored(&export, &log, &history);

    let backend = if postgres::enabled() {
        "PostgreSQL, 3 nodes"
    } else {
        "redb"
    };
    eprintln!(
        "history check ({backend}): {commands} commands from {CLIENTS} clients, {} requests: {} 2xx ({} fresh, {} changing nothing, {} replayed), {} 409, {} 412; {} retries ({} a new attempt after a refusal); {} reads; {} events ({} by requests, {} driver completions); load {:.1} s, total {:.1} s; seed {seed}",
        history.sends.len(),
        count("2"),
        tally.fresh,
        tally.unchanged,
        tally.replayed,
        count("409"),
        count("412"),
        tally.retries,
        tally.renewed,
        history.reads.len(),
        log.len() as u64 - setup,
        tally.request_events,
        tally.driver_events,
        load.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    eprintln!("history check ({backend}) answers: {:?}", tally.statuses);
}
