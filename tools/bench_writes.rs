//! Write-path benchmark: durable throughput of the ledger's writer (decide, hash chain,
//! log, stream index, projections, one commit per batch) against a bare redb baseline
//! measured in the same run on the same disk: batches of 64 raw inserts, one durable
//! commit each. Prints events/s for both and their ratio.
//!
//! Run: `cargo bench --bench bench_writes` (optional: `-- <events> <concurrency>`).

use std::sync::Arc;
use std::time::Instant;

use instance_ledger::domain::catalog::{Kind, Spec};
use instance_ledger::domain::instance::{self, Sizing};
use instance_ledger::service::{Ledger, RequestMeta, WriteCommand, WriteRequest, WriterConfig};
use instance_ledger::store::redb::RedbStore;
use redb::{Database, TableDefinition};
use uuid::Uuid;

const RAW: TableDefinition<u64, &[u8]> = TableDefinition::new("raw");

fn baseline(events: u64) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let db = Database::create(dir.path().join("raw.redb"))?;
    let value = vec![b'x'; 600];
    let started = Instant::now();
    let mut pos = 0u64;
    while pos < events {
        let txn = db.begin_write()?;
        {
            let mut t = txn.open_table(RAW)?;
            for _ in 0..64 {
                pos += 1;
                t.insert(pos, value.as_slice())?;
            }
        }
        txn.commit()?;
    }
    Ok(pos as f64 / started.elapsed().as_secs_f64())
}

fn meta() -> RequestMeta {
    RequestMeta {
        actor: "bench".into(),
        token_id: None,
        request_id: "bench".into(),
        origin: "native".into(),
        idempotency: None,
    }
}

async fn ledger(events: u64, concurrency: u64) -> anyhow::Result<(f64, f64)> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(RedbStore::open(dir.path())?);
    let (ledger, writer) = Ledger::start(store, WriterConfig::default(), None)?;
    let image = match ledger
        .submit(WriteRequest {
            command: WriteCommand::CreateResource {
                kind: Kind::Image,
                spec: Spec::Named { name: "img".into() },
            },
            meta: meta(),
            expected_version: None,
        })
        .await?
        .outcome
    {
        instance_ledger::service::Outcome::Resource(r) => r.id,
        _ => anyhow::bail!("unexpected outcome"),
    };
    let spec = instance::Spec {
        short_id: String::new(),
        name: "bench".into(),
        hostname: Some("bench".into()),
        description: None,
        project_id: Uuid::now_v7(),
        customer_id: Uuid::now_v7(),
        sizing: Sizing {
            flavor_id: Uuid::now_v7(),
            vcpus: 1,
            memory_mb: 1024,
            disk_gb: 10,
        },
        image_id: image,
        network_ids: vec![],
        ssh_key_id: None,
        security_groups: vec!["default".into()],
        availability_zone: Some("az-1".into()),
        user_data: None,
        tags: [("env".to_string(), "bench".to_string())].into(),
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (ledger, spec) = (ledger.clone(), spec.clone());
        let per_task = events / concurrency;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_task as usize);
            for _ in 0..per_task {
                let t = Instant::now();
                ledger
                    .submit(WriteRequest {
                        command: WriteCommand::CreateInstance(Box::new(spec.clone())),
                        meta: meta(),
                        expected_version: None,
                    })
                    .await?;
                latencies.push(t.elapsed().as_secs_f64());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    let rate = latencies.len() as f64 / started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    drop(ledger);
    let _ = writer.join();
    Ok((rate, p99))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let events = args.first().copied().unwrap_or(20_000);
    let concurrency = args.get(1).copied().unwrap_or(64);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let base = baseline(events)?;
    let (rate, p99) = rt.block_on(ledger(events, concurrency))?;
    let base_again = baseline(events)?;
    let base = (base + base_again) / 2.0;
    println!("baseline  bare redb, 64 inserts per durable commit: {base:>10.0} events/s");
    println!(
        "ledger    create instance, {concurrency} concurrent submitters: {rate:>10.0} events/s (p99 {:.1} ms)",
        p99 * 1000.0
    );
    println!("ratio     ledger / baseline: {:.3}", rate / base);
    Ok(())
}
