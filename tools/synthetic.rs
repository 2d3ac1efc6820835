//! A synthetic ledger for the benchmarks, built through the real append and projection
//! code in large transactions: a stationary process in which instances are created at a
//! steady rate among lifecycle traffic. Included by `bench_asof` and `bench_ops`.

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use instance_ledger::domain::instance::{self, Event, Sizing, StopMode};
use instance_ledger::domain::lifecycle::State;
use instance_ledger::store::envelope::{Payload, Provenance};
use instance_ledger::store::redb::RedbStore;
use instance_ledger::store::{EventStore, NewEvent, StreamKind};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

const PROJECTS: u128 = 100;
const BATCH: usize = 20_000;

fn provenance() -> Provenance {
    Provenance {
        actor: "bench".into(),
        token_id: None,
        request_id: "bench".into(),
        origin: "native".into(),
        idempotency_key: None,
    }
}

pub fn project(n: u128) -> Uuid {
    Uuid::from_u128(0x1000 + n)
}

/// The customer of projects `n`, `n + 10`, `n + 20`, ... (a tenth of the fleet).
pub fn customer(n: u128) -> Uuid {
    Uuid::from_u128(0x2000 + n)
}

fn spec(n: u64, rng: &mut StdRng) -> instance::Spec {
    let p = rng.random_range(0..PROJECTS);
    instance::Spec {
        ip_address: None,
        attributes: Default::default(),
        created_by: None,
        short_id: instance_ledger::domain::short_id::from_random(n),
        name: format!("vm-{n}"),
        hostname: Some(format!("vm-{n}")),
        description: None,
        project_id: project(p),
        customer_id: customer(p % 10),
        sizing: Sizing {
            flavor_id: Uuid::from_u128(0x3000 + (n % 5) as u128),
            vcpus: 2,
            memory_mb: 4096,
            disk_gb: 40,
        },
        image_id: Uuid::from_u128(0x4000),
        network_ids: vec![],
        ssh_key_id: None,
        security_groups: vec!["web".into()],
        availability_zone: Some(format!("az-{}", n % 3)),
        user_data: None,
        tags: [(
            "env".to_string(),
            if n.is_multiple_of(4) { "dev" } else { "prod" }.to_string(),
        )]
        .into(),
    }
}

/// A stationary process: instances are created at a steady rate among lifecycle traffic
/// (stop/start pairs, reboots, renames, occasional destroy and purge) on random live ones.
pub fn build(
    dir: &std::path::Path,
    instances: u64,
    events: u64,
) -> anyhow::Result<(RedbStore, u64)> {
    let store = RedbStore::open(dir)?;
    let mut rng = StdRng::seed_from_u64(7);
    let mut live: Vec<(Uuid, State, u64)> = Vec::new();
    let mut created = 0u64;
    let mut written = 0u64;
    let start: DateTime<Utc> = DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default();
    // Each creation is two events and a lifecycle step about 1.8: this share creates every
    // instance before the last tenth of the log.
    let create_share = instances as f64 / events as f64 * 2.0;
    let started = Instant::now();
    while written < events {
        let mut batch: Vec<NewEvent> = Vec::with_capacity(BATCH + 4);
        while batch.len() < BATCH && written + (batch.len() as u64) < events {
            let at = start + Duration::milliseconds(((written + batch.len() as u64) / 10) as i64);
            let mut push = |id: Uuid, version: u64, event: Event| {
                batch.push(NewEvent {
                    stream_id: id,
                    version,
                    kind: StreamKind::Instance,
                    payload: Payload::Instance(event),
                    at,
                    provenance: provenance(),
                });
            };
            if created < instances && (live.is_empty() || rng.random_bool(create_share.min(1.0))) {
                let id = Uuid::now_v7();
                push(id, 1, Event::Created(Box::new(spec(created, &mut rng))));
                push(id, 2, Event::Provisioned {});
                live.push((id, State::Running, 2));
                created += 1;
                continue;
            }
            let i = rng.random_range(0..live.len());
            let (id, state, version) = live[i];
            let step: Vec<(Event, State)> = match (state, rng.random_range(0..100)) {
                (State::Running, 0..=59) => vec![
                    (
                        Event::StopRequested {
                            mode: StopMode::Graceful,
                        },
                        State::Stopping,
                    ),
                    (Event::Stopped {}, State::Stopped),
                ],
                (State::Running, 60..=84) => vec![
                    (Event::RebootRequested { soft: true }, State::Rebooting),
                    (Event::Rebooted {}, State::Running),
                ],
                (State::Running, _) => vec![(
                    Event::Updated(instance::Patch {
                        name: Some(format!("vm-{}-{version}", id.simple())),
                        ..Default::default()
                    }),
                    State::Running,
                )],
                (State::Stopped, 0..=89) => vec![
                    (Event::StartRequested {}, State::Starting),
                    (Event::Started {}, State::Running),
                ],
                (State::Stopped, _) => vec![(Event::Destroyed { force: false }, State::Destroyed)],
                (State::Destroyed, _) => vec![(Event::Purged {}, State::Purged)],
                _ => vec![],
            };
            let mut v = version;
            let mut s = state;
            for (event, next) in step {
                v += 1;
                s = next;
                push(id, v, event);
            }
            if s == State::Purged {
                live.swap_remove(i);
            } else {
                live[i] = (id, s, v);
            }
        }
        let mut batch = Some(batch);
        store.write(&mut |txn| {
            for e in batch.take().unwrap_or_default() {
                txn.append(e)?;
            }
            Ok(())
        })?;
        written = store.read()?.head()?.position;
        if written % 1_000_000 < BATCH as u64 {
            eprintln!(
                "  {written} events, {created} instances, {:.0} events/s",
                written as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    Ok((store, written))
}
