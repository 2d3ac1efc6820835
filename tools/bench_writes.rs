//! Write-path benchmark: durable throughput of the ledger's writer (decide, hash chain,
//! log, stream index, projections, one commit per batch) against a bare redb baseline
//! measured in the same run on the same disk: batches of 64 raw inserts, one durable
//! commit each. Prints events/s for both and their ratio; then the same workload on the
//! PostgreSQL backend with 1 and with 3 nodes (each node its own store connections and
//! writer, submitters spread over the nodes) on a fresh database of
//! `LEDGER_BENCH_POSTGRES_URL` (default the local server).
//!
//! Run: `cargo bench --bench bench_writes` (optional: `-- <events> <concurrency>`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use instance_ledger::domain::catalog::{Kind, Spec};
use instance_ledger::domain::instance::{self, Sizing};
use instance_ledger::service::{Ledger, RequestMeta, WriteCommand, WriteRequest, WriterConfig};
use instance_ledger::store::EventStore;
use instance_ledger::store::postgres::PgStore;
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
        staff: false,
    }
}

/// Starts one ledger (writer) per store; outside the async runtime, since starting reads
/// the store and PostgreSQL's client blocks.
fn start(stores: Vec<Arc<dyn EventStore>>) -> anyhow::Result<Nodes> {
    let mut nodes = Vec::new();
    for store in stores {
        nodes.push(Ledger::start(store, WriterConfig::default(), None)?);
    }
    Ok(nodes)
}

type Nodes = Vec<(Ledger, std::thread::JoinHandle<()>)>;

async fn ledger(nodes: Nodes, events: u64, concurrency: u64) -> anyhow::Result<(f64, f64)> {
    let ledgers: Vec<Ledger> = nodes.iter().map(|(l, _)| l.clone()).collect();
    let image = match ledgers[0]
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
        ip_address: None,
        attributes: Default::default(),
        created_by: None,
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
    for n in 0..concurrency {
        let ledger = ledgers[n as usize % ledgers.len()].clone();
        let spec = spec.clone();
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
    drop(ledgers);
    for (ledger, writer) in nodes {
        drop(ledger);
        let _ = writer.join();
    }
    Ok((rate, p99))
}

/// Creates database `name` on the benchmark server; returns its URL and a function that
/// drops it.
#[allow(clippy::type_complexity)]
fn fresh_database(name: &str) -> anyhow::Result<(String, Box<dyn FnOnce() -> anyhow::Result<()>>)> {
    let admin = std::env::var("LEDGER_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut client = postgres::Client::connect(&admin, postgres::NoTls)
        .map_err(|e| anyhow::anyhow!("connecting to {admin}: {e:?}"))?;
    // One statement each: neither may run inside a (multi-statement) transaction.
    for sql in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        client
            .batch_execute(&sql)
            .map_err(|e| anyhow::anyhow!("{sql}: {e:?}"))?;
    }
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    let url = format!("{base}/{name}");
    let name = name.to_string();
    Ok((
        url,
        Box::new(move || {
            client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .map_err(|e| anyhow::anyhow!("dropping {name}: {e:?}"))?;
            Ok(())
        }),
    ))
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
    let dir = tempfile::tempdir()?;
    let redb: Arc<dyn EventStore> = Arc::new(RedbStore::open(dir.path())?);
    let (rate, p99) = rt.block_on(ledger(start(vec![redb])?, events, concurrency))?;
    let base_again = baseline(events)?;
    let base = (base + base_again) / 2.0;
    println!("baseline  bare redb, 64 inserts per durable commit: {base:>10.0} events/s");
    println!(
        "redb      create instance, {concurrency} concurrent submitters: {rate:>10.0} events/s (p99 {:.1} ms)",
        p99 * 1000.0
    );
    println!("ratio     redb ledger / baseline: {:.3}", rate / base);

    for nodes in [1usize, 3] {
        let (url, drop_db) =
            fresh_database(&format!("ledger_bench_{}_{nodes}", std::process::id()))?;
        let mut stores: Vec<Arc<dyn EventStore>> = Vec::new();
        for _ in 0..nodes {
            stores.push(Arc::new(PgStore::connect(&url, Duration::from_secs(5))?));
        }
        let (pg_rate, pg_p99) = rt.block_on(ledger(start(stores)?, events, concurrency))?;
        drop_db()?;
        println!(
            "postgres  {nodes} node(s), {concurrency} concurrent submitters:  {pg_rate:>10.0} events/s (p99 {:.1} ms), {:.3} x redb",
            pg_p99 * 1000.0,
            pg_rate / rate
        );
    }
    Ok(())
}
