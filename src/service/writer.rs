//! The single writer: drains queued requests into one batch, decides each against current
//! state inside one write transaction, appends and projects, commits once (one fsync for
//! the whole batch) and only then answers every waiting request.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::AddressProblem;
use super::address::Network;
use super::batch::{Batches, Next};
use super::idempotency::Record;
use super::{Job, Outcome, Reply, ServiceError, WriteCommand, WriteRequest};
use crate::domain::catalog::{self, Grant, Resource};
use crate::domain::identity::{self, UserCommand};
use crate::domain::instance::{self, Instance};
use crate::domain::{DomainError, short_id};
use crate::limits::SHORT_ID_ORDINAL_TRIES;
use crate::projection::index;
use crate::store::envelope::{Payload, Provenance};
use crate::store::{EventStore, NewEvent, StoreError, StreamKind, WriteTxn};

#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    pub queue_capacity: usize,
    /// Most requests folded into one transaction.
    pub batch_limit: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            queue_capacity: 4096,
            batch_limit: 256,
        }
    }
}

/// An instance left waiting for a driver at this version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pending {
    pub id: Uuid,
    pub version: u64,
}

pub(super) fn spawn(
    store: Arc<dyn EventStore>,
    rx: mpsc::Receiver<Job>,
    config: WriterConfig,
    pending: Option<mpsc::UnboundedSender<Pending>>,
    last_failure: Arc<Mutex<Option<String>>>,
    commits: watch::Sender<u64>,
) -> Result<std::thread::JoinHandle<()>, ServiceError> {
    // Timestamps never run backwards in the log, even if the wall clock does.
    let last_at = {
        let snap = store.read()?;
        let head = snap.head()?;
        match head.position {
            0 => DateTime::<Utc>::MIN_UTC,
            p => snap
                .read_all(p - 1, 1)?
                .first()
                .map(|e| e.at)
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        }
    };
    let batches = Batches::new(rx, config.batch_limit);
    let mut writer = Writer {
        store,
        pending,
        last_at,
        last_failure,
        commits,
    };
    std::thread::Builder::new()
        .name("ledger-writer".into())
        .spawn(move || writer.run(batches))
        .map_err(|e| ServiceError::Unavailable(format!("cannot start the writer: {e}")))
}

struct Writer {
    store: Arc<dyn EventStore>,
    pending: Option<mpsc::UnboundedSender<Pending>>,
    last_at: DateTime<Utc>,
    last_failure: Arc<Mutex<Option<String>>>,
    commits: watch::Sender<u64>,
}

/// A request's result inside the batch: Err(StoreError) aborts the whole batch.
type Step = Result<Result<Reply, ServiceError>, StoreError>;

impl Writer {
    fn run(&mut self, mut batches: Batches) {
        let mut committed = false;
        loop {
            match batches.next(committed) {
                Next::Batch(jobs) => {
                    metrics::gauge!("ledger_write_queue_depth").set(batches.queued() as f64);
                    self.commit_batch(jobs, &mut batches);
                    committed = true;
                }
                Next::Idle | Next::Closed if committed => {
                    // Idle: the store folds its journal into its file now rather than in
                    // a later client's batch. Writes were durable before it.
                    if let Err(e) = self.store.settle() {
                        tracing::warn!(error = %e, "the store could not settle; it will at its next commit");
                    }
                    committed = false;
                }
                Next::Idle => {}
                Next::Closed => break,
            }
        }
    }

    fn commit_batch(&mut self, mut jobs: Vec<Job>, batches: &mut Batches) {
        let (last_at, mut now) = (self.last_at, self.last_at);
        let started = Instant::now();
        let mut results: Vec<Result<Reply, ServiceError>> = Vec::with_capacity(jobs.len());
        let mut appended = 0u64;
        let mut head = 0u64;
        let outcome = self.store.write(&mut |txn| {
            // The store holds its write lock now: what came while it waited (on
            // PostgreSQL, for other nodes' batches) rides along, and the time is read
            // after the wait, so no event is dated before its request came.
            batches.drain(&mut jobs);
            now = Utc::now().max(last_at);
            let (instances, idempotency) = reads_ahead(&jobs);
            results.clear();
            appended = 0;
            txn.prefetch(&instances, &idempotency)?;
            for job in &jobs {
                let result = process(txn, &job.request, now, &mut appended)?;
                results.push(result);
            }
            head = txn.head_position()?;
            Ok(())
        });
        let elapsed = started.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => {
                self.last_at = now;
                self.record_failure(None);
                if appended > 0 {
                    advance(&self.commits, head);
                    metrics::counter!("ledger_commits_total").increment(1);
                    metrics::counter!("ledger_events_appended_total").increment(appended);
                    metrics::histogram!("ledger_batch_events").record(appended as f64);
                    metrics::histogram!("ledger_commit_seconds").record(elapsed);
                }
                for (job, result) in jobs.into_iter().zip(results) {
                    if let (Ok(reply), Some(pending)) = (&result, &self.pending) {
                        notify_driver(pending, reply);
                    }
                    // A requester that went away still had its write committed.
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, requests = jobs.len(), "write batch failed; nothing was committed");
                metrics::counter!("ledger_commit_failures_total").increment(1);
                self.record_failure(Some(e.to_string()));
                for job in jobs {
                    let _ = job.reply.send(Err(match &e {
                        // Said as such (507): the client knows to retry once there is room.
                        StoreError::Full(detail) => {
                            ServiceError::Store(StoreError::Full(detail.clone()))
                        }
                        _ => ServiceError::Unavailable(format!("the store failed: {e}")),
                    }));
                }
            }
        }
    }
}

impl Writer {
    fn record_failure(&self, failure: Option<String>) {
        if let Ok(mut guard) = self.last_failure.lock() {
            *guard = failure;
        }
    }
}

/// The instances and idempotency records a batch's requests will read first.
fn reads_ahead(jobs: &[Job]) -> (Vec<Uuid>, Vec<String>) {
    let instances = jobs
        .iter()
        .filter_map(|job| match &job.request.command {
            WriteCommand::Instance { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    let idempotency = jobs
        .iter()
        .filter_map(|job| {
            let meta = &job.request.meta;
            meta.idempotency
                .as_ref()
                .map(|k| k.storage_key(&meta.actor))
        })
        .collect();
    (instances, idempotency)
}

/// Moves the published head forward (never back: another node's commit may have been
/// seen first).
pub(super) fn advance(commits: &watch::Sender<u64>, head: u64) {
    commits.send_if_modified(|current| {
        let moved = head > *current;
        if moved {
            *current = head;
        }
        moved
    });
}

fn notify_driver(pending: &mpsc::UnboundedSender<Pending>, reply: &Reply) {
    if reply.replayed {
        return;
    }
    let instances = match &reply.outcome {
        Outcome::Instance(inst) => std::slice::from_ref(&**inst),
        Outcome::Instances(all) => all.as_slice(),
        _ => &[],
    };
    for inst in instances.iter().filter(|i| i.state.is_transitional()) {
        let _ = pending.send(Pending {
            id: inst.id,
            version: inst.version,
        });
    }
}

fn process(
    txn: &mut dyn WriteTxn,
    req: &WriteRequest,
    now: DateTime<Utc>,
    appended: &mut u64,
) -> Step {
    let idem = req
        .meta
        .idempotency
        .as_ref()
        .map(|k| (k, k.storage_key(&req.meta.actor)));
    if let Some((key, storage_key)) = &idem
        && let Some(raw) = txn.idempotency(storage_key)?
    {
        let record: Record = serde_json::from_slice(&raw).map_err(|e| StoreError::Corrupt {
            at: "idempotency record".into(),
            detail: e.to_string(),
        })?;
        if record.fingerprint != key.fingerprint {
            return Ok(Err(ServiceError::IdempotencyKeyReused));
        }
        return Ok(Ok(Reply {
            outcome: record.outcome,
            replayed: true,
            position: record.position,
        }));
    }
    let provenance = Provenance {
        actor: req.meta.actor.clone(),
        token_id: req.meta.token_id.clone(),
        request_id: req.meta.request_id.clone(),
        origin: req.meta.origin.clone(),
        idempotency_key: req.meta.idempotency.as_ref().map(|k| k.key.clone()),
    };
    let decided = match &req.command {
        WriteCommand::CreateInstance(spec) => {
            create_instance(txn, spec, false, now, &provenance, &mut Reserved::default())?
        }
        WriteCommand::CreateInstances {
            spec,
            min,
            max,
            hostname_lease,
        } => create_instances(txn, spec, (*min, *max), *hostname_lease, now, &provenance)?,
        WriteCommand::Instance { id, commands } => operate(
            txn,
            *id,
            commands,
            req.expected_version,
            req.meta.staff,
            now,
            &provenance,
        )?,
        WriteCommand::CreateResource { kind, spec }
            if *kind == catalog::Kind::SecurityGroup
                && let catalog::Spec::SecurityGroup { name, .. } = spec
                && txn
                    .first_with(&index::resource_name_key(*kind, name))?
                    .is_some() =>
        {
            Err(ServiceError::NameTaken {
                kind: *kind,
                name: name.clone(),
            })
        }
        WriteCommand::CreateResource { kind, spec } => {
            let id = txn.mint_stream();
            Resource::decide_create(None, *kind, spec.clone())
                .map_err(ServiceError::Domain)
                .map(|event| {
                    let resource = Resource::evolve(None, id, &event, now);
                    let new = NewEvent {
                        stream_id: id,
                        version: 1,
                        kind: StreamKind::from(*kind),
                        payload: Payload::Catalog(event),
                        at: now,
                        provenance: provenance.clone(),
                    };
                    (Outcome::Resource(resource), vec![new])
                })
        }
        WriteCommand::Grant { resource_id, grant } => {
            grant_change(txn, *resource_id, grant, now, &provenance)?
        }
        WriteCommand::CreateUser(new) => {
            if txn
                .first_with(&index::username_key(&new.username))?
                .is_some()
            {
                Err(ServiceError::UsernameTaken(new.username.clone()))
            } else {
                let id = txn.mint_stream();
                user_change(txn, id, &UserCommand::Create(new.clone()), now, &provenance)?
            }
        }
        WriteCommand::User { id, command } => user_change(txn, *id, command, now, &provenance)?,
    };
    let (outcome, events) = match decided {
        Ok(d) => d,
        Err(e) => return Ok(Err(e)),
    };
    let mut position = None;
    for event in events {
        position = Some(txn.append(event)?.position);
        *appended += 1;
    }
    let position = match position {
        Some(p) => p,
        None => txn.head_position()?,
    };
    if let Some((key, storage_key)) = &idem {
        let record = Record {
            fingerprint: key.fingerprint.clone(),
            outcome: outcome.clone(),
            position,
        };
        let raw = serde_json::to_vec(&record).map_err(|e| StoreError::Io(e.to_string()))?;
        txn.put_idempotency(storage_key, &raw)?;
    }
    Ok(Ok(Reply {
        outcome,
        replayed: false,
        position,
    }))
}

type Decided = Result<(Outcome, Vec<NewEvent>), ServiceError>;

/// Gives decided payloads their stream versions after `current`, in order.
fn stamp(
    id: Uuid,
    kind: StreamKind,
    current: u64,
    payloads: impl IntoIterator<Item = Payload>,
    now: DateTime<Utc>,
    provenance: &Provenance,
) -> Vec<NewEvent> {
    payloads
        .into_iter()
        .zip(current + 1..)
        .map(|(payload, version)| NewEvent {
            stream_id: id,
            version,
            kind,
            payload,
            at: now,
            provenance: provenance.clone(),
        })
        .collect()
}

fn grant_change(
    txn: &mut dyn WriteTxn,
    id: Uuid,
    grant: &Grant,
    now: DateTime<Utc>,
    provenance: &Provenance,
) -> Result<Decided, StoreError> {
    let Some(resource) = txn.resource(id)? else {
        return Ok(Err(ServiceError::Domain(DomainError::NotFound)));
    };
    let events = match resource.decide_grant(grant) {
        Ok(events) => events,
        Err(e) => return Ok(Err(e.into())),
    };
    let kind = StreamKind::from(resource.kind);
    let state = events
        .iter()
        .fold(resource, |r, e| Resource::evolve(Some(r), id, e, now));
    let current = txn.stream_version(id)?;
    let new = stamp(
        id,
        kind,
        current,
        events.into_iter().map(Payload::Catalog),
        now,
        provenance,
    );
    Ok(Ok((Outcome::Resource(state), new)))
}

fn user_change(
    txn: &mut dyn WriteTxn,
    id: Uuid,
    command: &UserCommand,
    now: DateTime<Utc>,
    provenance: &Provenance,
) -> Result<Decided, StoreError> {
    let current = txn.user(id)?;
    let events = match identity::decide(current.as_ref(), command) {
        Ok(events) => events,
        Err(e) => return Ok(Err(e.into())),
    };
    let state = events
        .iter()
        .fold(current, |u, e| Some(identity::evolve(u, id, e, now)));
    let version = txn.stream_version(id)?;
    let new = stamp(
        id,
        StreamKind::User,
        version,
        events.into_iter().map(Payload::User),
        now,
        provenance,
    );
    match state {
        Some(user) => Ok(Ok((Outcome::User(Box::new(user)), new))),
        None => Ok(Err(ServiceError::Domain(DomainError::NotFound))),
    }
}

/// What earlier creations of the same request took, which the store cannot see yet
/// (their events are appended together, after all are decided).
#[derive(Default)]
struct Reserved {
    short_ids: HashSet<String>,
    addresses: HashSet<(Uuid, String)>,
    hostnames: HashSet<String>,
}

/// The short id of a new instance: the one of the next log position (or of a position
/// after it, when a creation of this batch or an id minted at random before holds it), so
/// stores keep the short ids of a batch side by side; random ones when those are taken.
fn pick_short_id(txn: &mut dyn WriteTxn, reserved: &Reserved) -> Result<String, StoreError> {
    let next = txn.head_position()?.saturating_add(1);
    let mut tries = 0;
    loop {
        let candidate = if tries < SHORT_ID_ORDINAL_TRIES {
            short_id::from_ordinal(next + tries)
        } else {
            short_id::from_random(rand::random())
        };
        tries += 1;
        if !reserved.short_ids.contains(&candidate) && !txn.short_id_taken(&candidate)? {
            return Ok(candidate);
        }
    }
}

fn create_instance(
    txn: &mut dyn WriteTxn,
    spec: &instance::Spec,
    hostname_lease: bool,
    now: DateTime<Utc>,
    provenance: &Provenance,
    reserved: &mut Reserved,
) -> Result<Decided, StoreError> {
    let id = txn.mint_stream();
    let mut spec = spec.clone();
    spec.short_id = pick_short_id(txn, reserved)?;
    reserved.short_ids.insert(spec.short_id.clone());
    // EC2-style surfaces create without a name: the short id is the name then.
    if spec.name.is_empty() {
        spec.name = spec.short_id.clone();
    }
    spec.created_by = Some(provenance.actor.clone());
    if hostname_lease {
        let hostname = spec
            .hostname
            .get_or_insert_with(|| spec.short_id.trim_start_matches("i-").to_string())
            .clone();
        if reserved.hostnames.contains(&hostname)
            || txn
                .first_with(&index::hostname_key(spec.customer_id, &hostname))?
                .is_some()
        {
            return Ok(Err(ServiceError::HostnameTaken(hostname)));
        }
        reserved.hostnames.insert(hostname);
    }
    if let Some(network) = spec.network_ids.first().copied() {
        match assign_address(txn, network, spec.ip_address.take(), reserved)? {
            Ok(address) => {
                reserved.addresses.insert((network, address.clone()));
                spec.ip_address = Some(address)
            }
            Err(e) => return Ok(Err(e)),
        }
    }
    let command = instance::Command::Create(Box::new(spec));
    Ok(fold(None, id, &[command], now, provenance))
}

/// Creates up to `max` instances of `spec`, stopping when an address runs out; fewer than
/// `min` refuses them all.
fn create_instances(
    txn: &mut dyn WriteTxn,
    spec: &instance::Spec,
    (min, max): (usize, usize),
    hostname_lease: bool,
    now: DateTime<Utc>,
    provenance: &Provenance,
) -> Result<Decided, StoreError> {
    let mut reserved = Reserved::default();
    let mut made = Vec::with_capacity(max);
    let mut events = Vec::new();
    for _ in 0..max {
        match create_instance(txn, spec, hostname_lease, now, provenance, &mut reserved)? {
            Ok((Outcome::Instance(inst), evs)) => {
                made.push(*inst);
                events.extend(evs);
            }
            Ok(_) => {
                return Ok(Err(ServiceError::Internal(
                    "a creation without an instance".into(),
                )));
            }
            Err(ServiceError::Address {
                problem: AddressProblem::NetworkFull,
                ..
            }) if made.len() >= min => break,
            Err(e) => return Ok(Err(e)),
        }
    }
    Ok(Ok((Outcome::Instances(made), events)))
}

/// Random probes before a linear scan: few in a sparse network, bounded in a full one.
const ADDRESS_PROBES: usize = 16;
/// Most addresses a linear scan looks at before the network counts as full.
const ADDRESS_SCAN: u128 = 65_536;

/// The address an instance gets on `network`: the one asked for when it is free, else
/// a free one. Decided in the writer, so two creations never get the same address.
fn assign_address(
    txn: &mut dyn WriteTxn,
    network: Uuid,
    asked: Option<String>,
    reserved: &Reserved,
) -> Result<Result<String, ServiceError>, StoreError> {
    let free = |txn: &mut dyn WriteTxn, address: &str| -> Result<bool, StoreError> {
        Ok(
            !reserved.addresses.contains(&(network, address.to_string()))
                && txn
                    .first_with(&index::address_key(network, address))?
                    .is_none(),
        )
    };
    if let Some(address) = asked {
        return Ok(if free(txn, &address)? {
            Ok(address)
        } else {
            Err(ServiceError::Address {
                address: Some(address),
                problem: AddressProblem::Taken,
            })
        });
    }
    let cidr = match txn.resource(network)?.map(|r| r.spec) {
        Some(catalog::Spec::Network { cidr, .. }) => cidr,
        _ => {
            return Ok(Err(ServiceError::UnknownReference {
                reference: super::Reference::Network,
                id: network,
            }));
        }
    };
    let full = || ServiceError::Address {
        address: None,
        problem: AddressProblem::NetworkFull,
    };
    let Some(net) = Network::parse(&cidr) else {
        return Ok(Err(full()));
    };
    let hosts = net.hosts();
    if hosts == 0 {
        return Ok(Err(full()));
    }
    let probes = (0..ADDRESS_PROBES).map(|_| rand::random::<u128>() % hosts);
    for n in probes.chain(0..hosts.min(ADDRESS_SCAN)) {
        if let Some(address) = net.host(n)
            && free(txn, &address)?
        {
            return Ok(Ok(address));
        }
    }
    Ok(Err(full()))
}

fn operate(
    txn: &mut dyn WriteTxn,
    id: Uuid,
    commands: &[instance::Command],
    expected_version: Option<u64>,
    staff: bool,
    now: DateTime<Utc>,
    provenance: &Provenance,
) -> Result<Decided, StoreError> {
    let Some(current) = txn.instance(id)? else {
        return Ok(Err(ServiceError::Domain(DomainError::NotFound)));
    };
    if let Some(expected) = expected_version
        && expected != current.version
    {
        return Ok(Err(ServiceError::VersionMismatch {
            expected,
            actual: current.version,
        }));
    }
    for command in commands {
        if let Err(e) = instance::check_lock(&current, command, staff) {
            return Ok(Err(e.into()));
        }
    }
    // A move to another network takes an address there, decided here like a creation's.
    let mut decided = Vec::with_capacity(commands.len());
    for command in commands {
        match command {
            instance::Command::ChangeNetwork {
                network_id,
                ip_address,
            } if current.spec.network_ids != [*network_id] => {
                let address = match assign_address(
                    txn,
                    *network_id,
                    ip_address.clone(),
                    &Reserved::default(),
                )? {
                    Ok(a) => a,
                    Err(e) => return Ok(Err(e)),
                };
                decided.push(instance::Command::ChangeNetwork {
                    network_id: *network_id,
                    ip_address: Some(address),
                });
            }
            other => decided.push(other.clone()),
        }
    }
    Ok(fold(Some(current), id, &decided, now, provenance))
}

/// Decides the commands in order against a local fold, so a later command sees the
/// effects of an earlier one and a refusal anywhere appends nothing.
fn fold(
    mut state: Option<Instance>,
    id: Uuid,
    commands: &[instance::Command],
    now: DateTime<Utc>,
    provenance: &Provenance,
) -> Decided {
    let mut events = Vec::new();
    for command in commands {
        for event in instance::decide(state.as_ref(), command)? {
            let version = state.as_ref().map_or(0, |s| s.version) + 1;
            state = Some(instance::evolve(state, id, &event, version, now));
            events.push(NewEvent {
                stream_id: id,
                version,
                kind: StreamKind::Instance,
                payload: Payload::Instance(event),
                at: now,
                provenance: provenance.clone(),
            });
        }
    }
    match state {
        Some(inst) => Ok((Outcome::Instance(Box::new(inst)), events)),
        None => Err(ServiceError::Domain(DomainError::NotFound)),
    }
}
