//! The checks of the history against the log: the state machine each instance's events
//! follow, the accounting of every answer by its request id, idempotency keys, real-time
//! order, and the stored log as `ledgerctl export` shows it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use instance_ledger::domain::lifecycle::{Operation, State, is_allowed};
use serde_json::Value;

use super::{Attempt, History, INSTANCES, Observed, Op, Precondition, Sent, World};

/// Operations a lock holds back from callers other than staff.
fn respects_lock(op: Operation) -> bool {
    use Operation::*;
    matches!(
        op,
        Start | Stop | ForceStop | Reboot | Resize | Destroy | ForceDestroy
    )
}

/// An instance after one of its versions, as far as the answers show it.
#[derive(Debug, Clone, PartialEq)]
struct Snap {
    state: State,
    /// `admin` or `owner`, as `Locked` records the holder.
    locked: Option<String>,
    flavor_id: Value,
    description: Value,
}

impl Snap {
    fn is_view(&self, view: &Value) -> bool {
        view["state"] == self.state.as_str()
            && view["locked"] == self.locked.is_some()
            && view["flavor_id"] == self.flavor_id
            && view["description"] == self.description
    }
}

/// What an instance event records: the operation it is checked against, and the state it
/// leaves. Completions must finish exactly the transition pending.
fn transition(s: &Snap, e: &Value) -> Result<(Operation, State), String> {
    use State::*;
    let completion = |from: State, to: State| {
        if s.state == from {
            Ok((Operation::Complete, to))
        } else {
            Err(format!("{} completes nothing in {}", e["type"], s.state))
        }
    };
    let data = &e["data"];
    Ok(match e["type"].as_str().unwrap_or_default() {
        "Provisioned" => completion(Provisioning, Running)?,
        "Started" => completion(Starting, Running)?,
        "Stopped" => completion(Stopping, Stopped)?,
        "Rebooted" => completion(Rebooting, Running)?,
        "StartRequested" => (Operation::Start, Starting),
        "StopRequested" if data["mode"] == "forced" => (Operation::ForceStop, Stopping),
        "StopRequested" => (Operation::Stop, Stopping),
        "RebootRequested" => (Operation::Reboot, Rebooting),
        "Resized" => (Operation::Resize, s.state),
        "Updated" => (Operation::Update, s.state),
        "Locked" => (Operation::Lock, s.state),
        "Unlocked" => (Operation::Unlock, s.state),
        "Destroyed" if data["force"] == true => (Operation::ForceDestroy, Destroyed),
        "Destroyed" => (Operation::Destroy, Destroyed),
        "Recovered" => (Operation::Recover, Stopped),
        other => return Err(format!("unexpected event {other}")),
    })
}

/// Folds one request's events (or one driver completion) into `s`, checking each step.
fn step(s: &mut Snap, group: &[&Value], snaps: &mut Vec<Snap>) -> Result<(), String> {
    let by_driver = group[0]["origin"] == "driver";
    let staff = group[0]["actor"] == "admin";
    let (op, _) = transition(s, group[0])?;
    let forced_stop = op == Operation::ForceStop;
    let expected_len = if forced_stop { 2 } else { 1 };
    if group.len() != expected_len {
        return Err(format!("{op} wrote {} events", group.len()));
    }
    if by_driver != (op == Operation::Complete) {
        return Err(format!("{op} recorded with origin {}", group[0]["origin"]));
    }
    if !is_allowed(op, s.state) {
        return Err(format!("{op} is illegal in {}", s.state));
    }
    if !staff && respects_lock(op) && s.locked.is_some() {
        return Err(format!("{op} by a non-staff caller on a locked instance"));
    }
    let holder = if staff { "admin" } else { "owner" };
    for (i, e) in group.iter().enumerate() {
        let (op, next) = transition(s, e)?;
        if i == 1 && op != Operation::Complete {
            return Err(format!("a forced stop went on with {op}"));
        }
        match op {
            Operation::Lock => {
                let by = e["data"]["by"].as_str().unwrap_or_default();
                let takes = match s.locked.as_deref() {
                    None => true,
                    Some(held) => held == "owner" && by == "admin",
                };
                if by != holder || !takes {
                    return Err(format!("{holder} locked as {by} over {:?}", s.locked));
                }
                s.locked = Some(by.to_string());
            }
            Operation::Unlock if s.locked.as_deref() != Some(holder) => {
                return Err(format!("{holder} lifted a lock held by {:?}", s.locked));
            }
            Operation::Unlock => s.locked = None,
            Operation::Resize => s.flavor_id = e["data"]["flavor_id"].clone(),
            Operation::Update => s.description = e["data"]["description"].clone(),
            _ => {}
        }
        s.state = next;
        snaps.push(s.clone());
    }
    Ok(())
}

/// The whole history against the log after `setup` (the position before the load).
pub(super) fn history(w: &World, h: &History, log: &[Value], setup: u64) -> Tally {
    let snaps = replay(log);
    let mut tally = account(w, h, log, &snaps, setup);
    keys(h, &mut tally);
    real_time(w, h, log);
    assert_eq!(
        log.len() as u64 - setup,
        (tally.request_events + tally.driver_events) as u64,
        "events besides acknowledged requests and driver completions"
    );
    tally
}

/// Every instance's path, checked, as the snapshot after each of its versions.
fn replay(log: &[Value]) -> HashMap<String, Vec<Snap>> {
    let mut streams: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for e in log.iter().filter(|e| e["stream_kind"] == "instance") {
        streams
            .entry(e["stream_id"].as_str().expect("stream"))
            .or_default()
            .push(e);
    }
    let mut out = HashMap::new();
    for (id, events) in streams {
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e["version"], i + 1, "{id}: versions not 1..n at {e}");
        }
        assert_eq!(events[0]["type"], "Created", "{id}");
        let mut s = Snap {
            state: State::Provisioning,
            locked: None,
            flavor_id: events[0]["data"]["flavor_id"].clone(),
            description: events[0]["data"]["description"].clone(),
        };
        let mut snaps = vec![s.clone()];
        let mut rest = &events[1..];
        while let Some(first) = rest.first() {
            let len = rest
                .iter()
                .take_while(|e| e["request_id"] == first["request_id"])
                .count();
            if let Err(why) = step(&mut s, &rest[..len], &mut snaps) {
                panic!("{id}: illegal path at {first}: {why}");
            }
            rest = &rest[len..];
        }
        assert!(!s.state.is_transitional(), "{id} ends in {}", s.state);
        out.insert(id.to_string(), snaps);
    }
    out
}

/// What the history adds up to, for the summary.
#[derive(Default)]
pub(super) struct Tally {
    /// Answers by status and problem code.
    pub(super) statuses: BTreeMap<String, usize>,
    /// 2xx answers that acted (not replays).
    pub(super) fresh: usize,
    /// Of those, the ones that had nothing to change (a lock held, no lock to lift).
    pub(super) unchanged: usize,
    pub(super) replayed: usize,
    pub(super) retries: usize,
    /// Retries of a refused original that acted: a refusal is not kept under its key.
    pub(super) renewed: usize,
    pub(super) request_events: usize,
    pub(super) driver_events: usize,
}

/// Checks every answer against the log (see the module doc), by request id.
fn account(
    w: &World,
    h: &History,
    log: &[Value],
    snaps: &HashMap<String, Vec<Snap>>,
    setup: u64,
) -> Tally {
    let mut groups: HashMap<&str, Vec<&Value>> = HashMap::new();
    let mut t = Tally::default();
    for e in log.iter().filter(|e| e["position"].as_u64() > Some(setup)) {
        assert_eq!(
            e["stream_kind"], "instance",
            "only instances change under load: {e}"
        );
        if e["origin"] == "driver" {
            t.driver_events += 1;
        } else {
            groups
                .entry(e["request_id"].as_str().expect("rid"))
                .or_default()
                .push(e);
        }
    }
    let mut claimed = HashSet::new();
    for s in &h.sends {
        let a = &s.answer;
        let what = format!(
            "{:?} #{} {:?} ({:?}) -> {} {}",
            s.op, s.command, s.attempt, s.precondition, a.status, a.body
        );
        let code = a.body["code"]
            .as_str()
            .map(|c| format!(" {c}"))
            .unwrap_or_default();
        *t.statuses.entry(format!("{}{code}", a.status)).or_default() += 1;
        t.retries += usize::from(s.attempt != Attempt::Original);
        let history = &snaps[&w.ids[s.instance]];
        let events = groups.get(a.request_id.as_str());
        if !s.fresh_success() {
            assert!(events.is_none(), "{what}: appended {:?}", events);
        }
        if let Precondition::Stale(v) = s.precondition {
            assert_eq!(
                a.status, 412,
                "{what}: a stale If-Match {v} was not refused"
            );
        }
        match a.status {
            200..300 if a.replayed => t.replayed += 1,
            200..300 => {
                t.fresh += 1;
                assert_eq!(a.status, s.op.ok_status(), "{what}");
                let version = a.body["version"].as_u64().expect("version");
                let after = &history[version as usize - 1];
                assert!(
                    after.is_view(&a.body),
                    "{what}: the log has {after:?} at v{version}"
                );
                let first_version = match events {
                    // Only a lock already held, or no lock to lift, changes nothing.
                    None => {
                        t.unchanged += 1;
                        let nothing = match s.op {
                            // An owner's lock request on any lock, staff's on their own.
                            Op::Lock if s.staff => after.locked.as_deref() == Some("admin"),
                            Op::Lock => after.locked.is_some(),
                            Op::Unlock => after.locked.is_none(),
                            _ => false,
                        };
                        assert!(
                            nothing,
                            "{what}: acknowledged, but no event carries its request id"
                        );
                        version + 1
                    }
                    Some(g) => {
                        claimed.insert(a.request_id.as_str());
                        t.request_events += g.len();
                        for (i, e) in g.iter().enumerate() {
                            assert_eq!(e["stream_id"], w.ids[s.instance], "{what}: {e}");
                            assert_eq!(
                                e["position"],
                                g[0]["position"].as_u64().unwrap() + i as u64,
                                "{what}: group split"
                            );
                            assert_eq!(
                                e["version"],
                                g[0]["version"].as_u64().unwrap() + i as u64,
                                "{what}"
                            );
                        }
                        assert_eq!(
                            g[g.len() - 1]["version"],
                            version,
                            "{what}: answer is not the group's last version"
                        );
                        let from = g[0]["version"].as_u64().unwrap();
                        let (op, _) = transition(&history[from as usize - 2], g[0])
                            .expect("checked by replay");
                        assert_eq!(op, s.op.operation(), "{what}: logged as {}", g[0]["type"]);
                        g[0]["version"].as_u64().unwrap()
                    }
                };
                if let Some(m) = s.precondition.version() {
                    assert_eq!(first_version, m + 1, "{what}: If-Match {m} did not hold");
                }
            }
            412 => {
                let current = a.body["current_version"].as_u64().expect("current_version");
                assert_eq!(a.body["code"], "version_mismatch", "{what}");
                assert_eq!(
                    Some(a.body["expected_version"].as_u64().unwrap()),
                    s.precondition.version(),
                    "{what}"
                );
                assert!(
                    current != a.body["expected_version"] && current as usize <= history.len(),
                    "{what}"
                );
            }
            409 if a.body["code"] == "invalid_transition" => {
                let current = State::parse(a.body["current_state"].as_str().unwrap_or_default())
                    .expect("a state");
                assert_eq!(a.body["operation"], s.op.operation().as_str(), "{what}");
                assert!(
                    !is_allowed(s.op.operation(), current),
                    "{what}: refused although allowed"
                );
                assert!(
                    history.iter().any(|h| h.state == current),
                    "{what}: the log never had it {current}"
                );
            }
            409 if a.body["code"] == "locked" => {
                assert!(
                    history.iter().any(|h| h.locked.is_some()),
                    "{what}: never locked"
                );
                assert!(
                    !s.staff || s.op == Op::Unlock,
                    "{what}: staff are not held back by a lock"
                );
                if !a.body["operation"].is_null() {
                    assert_eq!(a.body["operation"], s.op.operation().as_str(), "{what}");
                }
            }
            _ => panic!("{what}: not an answer this API documents for it"),
        }
    }
    for (rid, g) in &groups {
        assert!(
            claimed.contains(rid),
            "events no acknowledged request accounts for: {g:?}"
        );
    }
    t
}

/// Idempotency: per key at most one fresh answer; every replay is that answer; a retry
/// after an acknowledged original is a replay.
fn keys(h: &History, t: &mut Tally) {
    let mut by_key: HashMap<&str, Vec<&Sent>> = HashMap::new();
    for s in &h.sends {
        if let Some(k) = &s.key {
            by_key.entry(k).or_default().push(s);
        }
    }
    for (key, sends) in by_key {
        let fresh: Vec<_> = sends.iter().filter(|s| s.fresh_success()).collect();
        assert!(
            fresh.len() <= 1,
            "key {key} acted {} times: {sends:#?}",
            fresh.len()
        );
        for s in &sends {
            if s.answer.replayed {
                let original = fresh
                    .first()
                    .unwrap_or_else(|| panic!("key {key}: a replay of nothing"));
                assert_eq!(
                    (s.answer.status, &s.answer.body),
                    (original.answer.status, &original.answer.body),
                    "key {key}: the replay differs"
                );
            }
        }
        if let [original, retry] = sends.as_slice()
            && retry.attempt == Attempt::Retry
        {
            if original.fresh_success() {
                assert!(
                    retry.answer.replayed,
                    "key {key}: the retry was not a replay: {:?}",
                    retry.answer
                );
            } else if retry.fresh_success() {
                // A refusal is not recorded under its key: the retry is a new attempt.
                t.renewed += 1;
            }
        }
    }
}

/// A fresh 2xx with its event group: when it was sent and answered, where it landed.
struct Acked {
    sent: Instant,
    received: Instant,
    instance: usize,
    first: u64,
    last: u64,
    version: u64,
}

/// Real time: a write acknowledged before another was sent has a lower position, and no
/// answer shows an instance older than a write acknowledged before it was sent.
fn real_time(w: &World, h: &History, log: &[Value]) {
    let mut by_rid: HashMap<&str, (u64, u64, u64)> = HashMap::new();
    for e in log {
        let (p, v) = (
            e["position"].as_u64().unwrap(),
            e["version"].as_u64().unwrap(),
        );
        by_rid
            .entry(e["request_id"].as_str().unwrap())
            .and_modify(|g| (g.1, g.2) = (p, v))
            .or_insert((p, p, v));
    }
    let mut acked: Vec<Acked> = h
        .sends
        .iter()
        .filter(|s| s.fresh_success())
        .filter_map(|s| {
            let &(first, last, version) = by_rid.get(s.answer.request_id.as_str())?;
            Some(Acked {
                sent: s.answer.sent,
                received: s.answer.received,
                instance: s.instance,
                first,
                last,
                version,
            })
        })
        .collect();
    acked.sort_by_key(|a| a.received);
    let highest = |of: &[&Acked], f: fn(&Acked) -> u64| -> Vec<u64> {
        of.iter()
            .scan(0, |m, a| {
                *m = f(a).max(*m);
                Some(*m)
            })
            .collect()
    };
    let all: Vec<&Acked> = acked.iter().collect();
    let last = highest(&all, |a| a.last);
    for a in &acked {
        let before = acked.partition_point(|b| b.received < a.sent);
        assert!(
            before == 0 || last[before - 1] < a.first,
            "position {} was ordered before a write acknowledged earlier",
            a.first
        );
    }
    let mut seen: Vec<&Observed> = h.reads.iter().collect();
    let answered: Vec<Observed> = h
        .sends
        .iter()
        .filter_map(|s| {
            let version = match s.answer.status {
                200..300 if !s.answer.replayed => s.answer.body["version"].as_u64(),
                412 => s.answer.body["current_version"].as_u64(),
                _ => None,
            }?;
            Some(Observed {
                instance: s.instance,
                version,
                sent: s.answer.sent,
            })
        })
        .collect();
    seen.extend(answered.iter());
    for instance in 0..INSTANCES {
        let mine: Vec<&Acked> = acked.iter().filter(|a| a.instance == instance).collect();
        let newest = highest(&mine, |a| a.version);
        for o in seen.iter().filter(|o| o.instance == instance) {
            let before = mine.partition_point(|b| b.received < o.sent);
            assert!(
                before == 0 || newest[before - 1] <= o.version,
                "{}: read v{} after v{} was acknowledged",
                w.ids[instance],
                o.version,
                newest[before - 1]
            );
        }
    }
}

impl Tally {
    /// Answers whose status (and code) start with `prefix`.
    pub(super) fn count(&self, prefix: &str) -> usize {
        self.statuses
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }
}

/// Positions 1..n with no gap, and no (stream, version) twice.
pub(super) fn gap_free(log: &[Value]) {
    let mut versions = HashSet::new();
    for (i, e) in log.iter().enumerate() {
        assert_eq!(e["position"], i + 1, "gap or reorder at {e}");
        assert!(
            versions.insert((e["stream_id"].to_string(), e["version"].to_string())),
            "duplicate {e}"
        );
    }
}

/// The export is the feed, and each idempotency key's events carry exactly the request
/// id of its one fresh answer.
pub(super) fn stored(export: &str, log: &[Value], h: &History) {
    let stored: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).expect("envelope"))
        .collect();
    assert_eq!(
        stored.len(),
        log.len(),
        "the export and the feed differ in length"
    );
    let mut keyed: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (e, f) in stored.iter().zip(log) {
        assert_eq!(
            (&e["position"], &e["request_id"], &e["type"]),
            (&f["position"], &f["request_id"], &f["type"])
        );
        if let Some(k) = e["idempotency_key"].as_str() {
            keyed
                .entry(k)
                .or_default()
                .insert(e["request_id"].as_str().expect("request id"));
        }
    }
    let logged: HashSet<&str> = log
        .iter()
        .filter_map(|e| e["request_id"].as_str())
        .collect();
    let mut expected: HashMap<&str, HashSet<&str>> = HashMap::new();
    for s in h.sends.iter().filter(|s| s.fresh_success()) {
        if let Some(key) = s.key.as_deref()
            && logged.contains(s.answer.request_id.as_str())
        {
            expected
                .entry(key)
                .or_default()
                .insert(s.answer.request_id.as_str());
        }
    }
    assert!(
        keyed == expected,
        "idempotency keys in the log: {keyed:?}, answers: {expected:?}"
    );
}
