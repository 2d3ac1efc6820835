//! The benchmark: what a durable write, a read and an as-of read cost over real HTTP, as
//! ratios to baselines measured in the same run with the same load generator on the same
//! machine (an HTTP ceiling, the disk's sync rate, a typical PostgreSQL peer, the bare
//! store). The ledger runs as the real `ledger` binary (redb, and PostgreSQL with 1 and 3
//! nodes); memory and start-up are its own process's.
//!
//! Run: `cargo bench --bench ledger_bench` (about 8 minutes). Options after `--`:
//! `--json` (one JSON document instead of the table), `--secs S` (per measurement,
//! default 4), `--conns 1,16,64,256`, `--no-postgres`, `--read-instances N` (the smaller
//! read ledger, default 10,000), `--instances N --events N` (the large ledger for reads,
//! as-of and start-up; default 100,000 and 1,000,000; the figures use 1,000,000
//! and 10,000,000, about 40 GB and an hour to build), `--dir DIR` (keep the built ledgers
//! there; a later run with the same sizes reuses them). PostgreSQL: a fresh database on
//! `LEDGER_BENCH_POSTGRES_URL` (default the local server).

#[path = "bench/load.rs"]
mod load;
#[path = "bench/node.rs"]
mod node;
#[path = "bench/peers.rs"]
mod peers;
#[path = "bench/reads.rs"]
mod reads;
#[path = "bench/stores.rs"]
mod stores;
#[path = "synthetic.rs"]
mod synthetic;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use instance_ledger::domain::catalog::{Kind, Spec};
use instance_ledger::domain::instance::{self, Sizing};
use instance_ledger::service::{
    Ledger, Outcome as Written, RequestMeta, WriteCommand, WriteRequest, WriterConfig,
};
use instance_ledger::store::EventStore;
use instance_ledger::store::redb::RedbStore;
use load::{Req, Script, Until};
use node::{Catalog, Node, Store, TOKEN};
use serde_json::json;
use stores::{Database, compacted_bytes, file_bytes};
use uuid::Uuid;

/// Instances each connection of the lifecycle mix cycles through: enough that the driver
/// has completed an instance's last step before the connection comes back to it.
const MIX_INSTANCES: u64 = 8;
/// Events the append-alone and bare-store measurements write.
const STORE_EVENTS: u64 = 20_000;

struct Options {
    json: bool,
    secs: f64,
    conns: Vec<usize>,
    postgres: bool,
    read_instances: u64,
    instances: u64,
    events: u64,
    dir: Option<PathBuf>,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        json: false,
        secs: 4.0,
        conns: vec![1, 16, 64, 256],
        postgres: true,
        read_instances: 10_000,
        instances: 100_000,
        events: 1_000_000,
        dir: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{a} needs a value"))
        };
        match a.as_str() {
            "--json" => o.json = true,
            "--no-postgres" => o.postgres = false,
            "--secs" => o.secs = value()?.parse()?,
            "--conns" => {
                o.conns = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--read-instances" => o.read_instances = value()?.parse()?,
            "--instances" => o.instances = value()?.parse()?,
            "--events" => o.events = value()?.parse()?,
            "--dir" => o.dir = Some(value()?.into()),
            // cargo bench passes --bench to harness-less targets.
            "--bench" => {}
            other => anyhow::bail!("unknown option {other}; see the module documentation"),
        }
    }
    Ok(o)
}

/// One line of the report.
struct Row {
    section: &'static str,
    what: String,
    figures: serde_json::Map<String, serde_json::Value>,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
}

impl Report {
    fn add(&mut self, section: &'static str, what: impl Into<String>, figures: serde_json::Value) {
        let what = what.into();
        let figures = match figures {
            serde_json::Value::Object(m) => m,
            _ => Default::default(),
        };
        eprintln!(
            "  {section:<9} {what:<58} {}",
            serde_json::Value::Object(figures.clone())
        );
        self.rows.push(Row {
            section,
            what,
            figures,
        });
    }

    /// An HTTP run's figures, with its ratio to each baseline rate given.
    fn http(
        &mut self,
        section: &'static str,
        what: impl Into<String>,
        o: &load::Outcome,
        bases: &[(&str, f64)],
    ) {
        let mut f = http_figures(o);
        for (name, rate) in bases {
            f[format!("x_{name}")] = json!(round3(o.rate() / rate));
        }
        self.add(section, what, f);
    }

    fn print_table(&self) {
        println!("| section | scenario | figures |");
        println!("|---|---|---|");
        for r in &self.rows {
            let figures: Vec<String> = r.figures.iter().map(|(k, v)| format!("{k} {v}")).collect();
            println!("| {} | {} | {} |", r.section, r.what, figures.join(", "));
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.rows
                .iter()
                .map(|r| json!({"section": r.section, "scenario": r.what, "figures": r.figures}))
                .collect(),
        )
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn creates(catalog: &Arc<Catalog>, tag: &'static str) -> Script {
    let catalog = catalog.clone();
    Arc::new(move |c, n| {
        Req::post(
            "/v1/instances".into(),
            catalog.create_body(&format!("{tag}-{c}-{n}")),
        )
    })
}

/// Creates `MIX_INSTANCES` instances per connection for the lifecycle mix.
fn mix_fleet(
    rt: &tokio::runtime::Runtime,
    targets: &[SocketAddr],
    catalog: &Arc<Catalog>,
    conns: usize,
) -> anyhow::Result<Vec<Vec<String>>> {
    let made = load::run(
        rt,
        targets,
        Some(TOKEN),
        conns,
        Until::Count(MIX_INSTANCES),
        true,
        creates(catalog, "mix"),
    );
    let mut ids = vec![Vec::new(); conns];
    for (c, body) in made.bodies {
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        if let Some(id) = v["id"].as_str() {
            ids[c].push(id.to_string());
        }
    }
    anyhow::ensure!(
        ids.iter().all(|i| i.len() == MIX_INSTANCES as usize),
        "the mix's fleet was not fully created"
    );
    // The driver brings them to running at once; give it the moment it needs.
    std::thread::sleep(Duration::from_millis(500));
    Ok(ids)
}

/// Each connection cycles over its own instances; each instance goes stop, resize,
/// start, reboot, rename, and so on, continuing where the previous run left it.
fn mix(catalog: &Arc<Catalog>, ids: Vec<Vec<String>>) -> Script {
    let steps: Arc<Vec<Vec<AtomicU64>>> = Arc::new(
        ids.iter()
            .map(|i| i.iter().map(|_| AtomicU64::new(0)).collect())
            .collect(),
    );
    let catalog = catalog.clone();
    Arc::new(move |c, n| {
        let k = (n % MIX_INSTANCES) as usize;
        let id = &ids[c][k];
        let step = steps[c][k].fetch_add(1, Ordering::Relaxed);
        let path = format!("/v1/instances/{id}");
        match step % 5 {
            0 => Req::post(format!("{path}/stop"), String::new()),
            1 => {
                let flavor = if (step / 5).is_multiple_of(2) {
                    &catalog.large
                } else {
                    &catalog.small
                };
                Req::post(
                    format!("{path}/resize"),
                    json!({"flavor_id": flavor}).to_string(),
                )
            }
            2 => Req::post(format!("{path}/start"), String::new()),
            3 => Req::post(format!("{path}/reboot"), String::new()),
            _ => Req {
                method: "PATCH",
                path,
                body: Some(json!({"name": format!("mix-{c}-{k}-{step}")}).to_string()),
            },
        }
    })
}

/// Creates and the lifecycle mix at every connection count against `targets`, with the
/// stored bytes per event of each by every measure of `sizes` (a name, and a reading of
/// the store's size). Returns the head position at the end.
#[allow(clippy::too_many_arguments)]
fn write_scenarios(
    report: &mut Report,
    rt: &tokio::runtime::Runtime,
    o: &Options,
    label: &str,
    targets: &[SocketAddr],
    sizes: &[(&str, &dyn Fn() -> u64)],
    ceiling: &[f64],
    peer: &[f64],
) -> anyhow::Result<u64> {
    let catalog = Arc::new(Catalog::create(rt, targets[0])?);
    let run = |script: Script, conns: usize| {
        load::run(
            rt,
            targets,
            Some(TOKEN),
            conns,
            Until::Elapsed(Duration::from_secs_f64(o.secs)),
            false,
            script,
        )
    };
    let (bytes0, head0) = (read_sizes(sizes), node::head(rt, targets[0])?);
    for (i, &conns) in o.conns.iter().enumerate() {
        let out = run(creates(&catalog, "c"), conns);
        let mut base = vec![("ceiling", ceiling[i])];
        if let Some(p) = peer.get(i) {
            base.push(("peer", *p));
        }
        report.http(
            "write",
            format!("{label}: creates, {conns} connections"),
            &out,
            &base,
        );
    }
    // The driver's completions of the creates land shortly after.
    std::thread::sleep(Duration::from_millis(500));
    let (bytes1, head1) = (read_sizes(sizes), node::head(rt, targets[0])?);
    let max = o.conns.iter().copied().max().unwrap_or(1);
    let ids = mix_fleet(rt, targets, &catalog, max)?;
    // Idle for a moment, as before each reading: the embedded store folds its journal in.
    std::thread::sleep(Duration::from_millis(500));
    let (bytes2, head2) = (read_sizes(sizes), node::head(rt, targets[0])?);
    let script = mix(&catalog, ids);
    for &conns in &o.conns {
        let out = run(script.clone(), conns);
        report.http(
            "write",
            format!("{label}: lifecycle mix, {conns} connections"),
            &out,
            &[],
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    let (bytes3, head3) = (read_sizes(sizes), node::head(rt, targets[0])?);
    let per = |b: u64, a: u64, hb: u64, ha: u64| {
        round3((b.saturating_sub(a)) as f64 / (hb.saturating_sub(ha)).max(1) as f64)
    };
    for (i, (measure, _)) in sizes.iter().enumerate() {
        report.add(
            "size",
            format!("{label}: stored bytes per event, {measure}"),
            json!({
                "creates": per(bytes1[i], bytes0[i], head1, head0),
                "creates_events": head1 - head0,
                "lifecycle_mix": per(bytes3[i], bytes2[i], head3, head2),
                "mix_events": head3 - head2,
                "whole_run": per(bytes3[i], 0, head3, 0),
            }),
        );
    }
    Ok(head3)
}

fn read_sizes(sizes: &[(&str, &dyn Fn() -> u64)]) -> Vec<u64> {
    sizes.iter().map(|(_, size)| size()).collect()
}

fn http_figures(o: &load::Outcome) -> serde_json::Value {
    json!({
        "req_s": o.rate().round(),
        "p50_ms": round3(o.quantile_ms(0.5)),
        "p99_ms": round3(o.quantile_ms(0.99)),
        "p999_ms": round3(o.quantile_ms(0.999)),
        "non_2xx": round3(o.non_2xx_share()),
    })
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

/// The append alone, no HTTP: 64 submitters creating through the writer on redb.
/// Returns events/s and the stored bytes of one create (for the bare store's baseline).
fn append_alone(rt: &tokio::runtime::Runtime, dir: &Path) -> anyhow::Result<(f64, Vec<u8>)> {
    let store = Arc::new(RedbStore::open(dir)?);
    let (ledger, writer) = Ledger::start(store.clone(), WriterConfig::default(), None)?;
    let submit = {
        let ledger = ledger.clone();
        move |command| {
            let ledger = ledger.clone();
            async move {
                ledger
                    .submit(WriteRequest {
                        command,
                        meta: meta(),
                        expected_version: None,
                    })
                    .await
            }
        }
    };
    let image = match rt
        .block_on(submit(WriteCommand::CreateResource {
            kind: Kind::Image,
            spec: Spec::Named { name: "img".into() },
        }))?
        .outcome
    {
        Written::Resource(r) => r.id,
        _ => anyhow::bail!("unexpected outcome"),
    };
    let spec = move |n: u64| instance::Spec {
        ip_address: None,
        attributes: Default::default(),
        created_by: None,
        short_id: String::new(),
        name: format!("bench-{n}"),
        hostname: Some(format!("bench-{n}")),
        description: None,
        project_id: Uuid::from_u128(1),
        customer_id: Uuid::from_u128(2),
        sizing: Sizing {
            flavor_id: Uuid::from_u128(3),
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
        tags: [("env".to_string(), "prod".to_string())].into(),
    };
    let submitters = 64;
    let started = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..submitters)
            .map(|t| {
                let submit = submit.clone();
                tokio::spawn(async move {
                    for n in 0..STORE_EVENTS / submitters {
                        submit(WriteCommand::CreateInstance(Box::new(spec(
                            t * 1_000_000 + n,
                        ))))
                        .await?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for t in tasks {
            t.await??;
        }
        anyhow::Ok(())
    })?;
    let rate = (STORE_EVENTS / submitters * submitters) as f64 / started.elapsed().as_secs_f64();
    drop(submit);
    drop(ledger);
    let _ = writer.join();
    let sample = store
        .read()?
        .read_all(1, 1)?
        .first()
        .map(serde_json::to_vec)
        .transpose()?
        .unwrap_or_default();
    // The stored record is the hash and then these bytes.
    let mut record = vec![0u8; 32];
    record.extend_from_slice(&sample);
    Ok((rate, record))
}

/// Creates against a baseline server at every connection count; returns the rates.
/// With `ceiling`, each run is also given as a ratio to the ceiling at the same count.
fn http_baseline(
    report: &mut Report,
    rt: &tokio::runtime::Runtime,
    o: &Options,
    addr: SocketAddr,
    label: &str,
    ceiling: &[f64],
) -> Vec<f64> {
    // The baselines check nothing the body refers to: any ids will do.
    let catalog = Arc::new(Catalog {
        project: Uuid::from_u128(1).to_string(),
        small: Uuid::from_u128(2).to_string(),
        large: Uuid::from_u128(3).to_string(),
        image: Uuid::from_u128(4).to_string(),
    });
    let mut rates = Vec::new();
    for (i, &conns) in o.conns.iter().enumerate() {
        let out = load::run(
            rt,
            &[addr],
            None,
            conns,
            Until::Elapsed(Duration::from_secs_f64(o.secs)),
            false,
            creates(&catalog, "c"),
        );
        let bases: Vec<(&str, f64)> = ceiling
            .get(i)
            .map(|c| ("ceiling", *c))
            .into_iter()
            .collect();
        report.http(
            "baseline",
            format!("{label}, {conns} connections"),
            &out,
            &bases,
        );
        rates.push(out.rate());
    }
    rates
}

fn main() -> anyhow::Result<()> {
    let o = options()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let scratch = tempfile::tempdir()?;
    let keep = o
        .dir
        .clone()
        .unwrap_or_else(|| scratch.path().to_path_buf());
    let mut report = Report::default();
    eprintln!("ledger_bench: {} s per measurement", o.secs);

    // Baselines without HTTP.
    let (syncs, sync_ms) = peers::disk(scratch.path(), 2.0)?;
    report.add(
        "baseline",
        "disk: 512 B append + fdatasync",
        json!({"syncs_s": syncs.round(), "p50_ms": round3(sync_ms)}),
    );
    let (append, record) = append_alone(&rt, &scratch.path().join("append"))?;
    let store = peers::bare_redb(scratch.path(), STORE_EVENTS, &record)?;
    report.add(
        "baseline",
        format!(
            "store: bare redb, {} B records, 64 per durable commit",
            record.len()
        ),
        json!({"events_s": store.round()}),
    );
    // A creation's new keys (name, host name, its claim) and short id land at random.
    let (entries, per_commit) = (300_000, 171);
    let (random, appended) = peers::random_vs_appended(scratch.path(), entries, per_commit, 300)?;
    report.add(
        "baseline",
        format!("store: bare redb, {per_commit} inserts per durable commit into {entries} entries, random 16-byte keys vs appended"),
        json!({"random_ms": round3(random), "appended_ms": round3(appended), "x_appended": round3(random / appended)}),
    );
    report.add(
        "write",
        "redb: append alone (writer, no HTTP), 64 submitters",
        json!({"events_s": append.round(), "x_store": round3(append / store)}),
    );

    // HTTP baselines at every connection count.
    let ceiling = {
        let server = peers::ceiling()?;
        http_baseline(
            &mut report,
            &rt,
            &o,
            server.addr,
            "ceiling: bare actix-web parsing the body",
            &[],
        )
    };
    let peer = if o.postgres {
        let db = Database::fresh(&format!("ledger_bench_peer_{}", std::process::id()))?;
        let server = peers::peer(&db.url)?;
        let label = format!(
            "typical peer: one PostgreSQL insert per request, pool of {}",
            peers::PEER_POOL
        );
        http_baseline(&mut report, &rt, &o, server.addr, &label, &ceiling)
    } else {
        Vec::new()
    };

    // The ledger on redb.
    {
        let dir = scratch.path().join("redb");
        let node = Node::start(&rt, Store::Redb(&dir))?;
        let file = || file_bytes(&dir);
        // Between phases the server is idle, so a copy of its file is a committed state.
        let compacted = || compacted_bytes(&dir).map_or(0, |(bytes, _)| bytes);
        let sizes: [(&str, &dyn Fn() -> u64); 2] = [
            ("file growth (with the free pages of copy-on-write)", &file),
            ("compacted (without free pages)", &compacted),
        ];
        let events = write_scenarios(
            &mut report,
            &rt,
            &o,
            "redb",
            &[node.addr],
            &sizes,
            &ceiling,
            &peer,
        )?;
        report.add(
            "memory",
            "redb: peak RSS over the write scenarios",
            json!({"mib": node.peak_rss_mib().round()}),
        );
        node.stop()?;
        let (_, tables) = compacted_bytes(&dir)?;
        let per_event = |b: u64| round3(b as f64 / events.max(1) as f64);
        // Where the bytes go: the log's own, and each projection's.
        let by_table: serde_json::Map<String, serde_json::Value> = tables
            .into_iter()
            .filter(|(_, b)| *b > 0)
            .map(|(name, b)| (name, per_event(b).into()))
            .collect();
        report.add(
            "size",
            "redb: bytes per event of the whole run, by table",
            serde_json::Value::Object(by_table),
        );
    }
    // The ledger on PostgreSQL, one node and three.
    if o.postgres {
        for nodes in [1usize, 3] {
            let db = Database::fresh(&format!("ledger_bench_{}_{nodes}", std::process::id()))?;
            let mut running = Vec::new();
            for n in 0..nodes {
                let log_dir = scratch.path().join(format!("pg-{nodes}-{n}"));
                running.push(Node::start(
                    &rt,
                    Store::Postgres {
                        url: &db.url,
                        log_dir: &log_dir,
                    },
                )?);
            }
            let targets: Vec<SocketAddr> = running.iter().map(|n| n.addr).collect();
            let size = || db.size().unwrap_or(0);
            let sizes: [(&str, &dyn Fn() -> u64); 1] = [("database size", &size)];
            let label = format!("postgres, {nodes} node{}", if nodes > 1 { "s" } else { "" });
            write_scenarios(
                &mut report,
                &rt,
                &o,
                &label,
                &targets,
                &sizes,
                &ceiling,
                &peer,
            )?;
            let rss: Vec<f64> = running.iter().map(|n| n.peak_rss_mib().round()).collect();
            report.add(
                "memory",
                format!("{label}: peak RSS per node"),
                json!({"mib": rss}),
            );
            for n in running {
                n.stop()?;
            }
        }
    }

    // Reads, as-of reads and start-up on synthetic ledgers built through the real append.
    let small = reads::ledger_at(&keep, o.read_instances, o.read_instances * 10)?;
    let large = reads::ledger_at(&keep, o.instances, o.events)?;
    for (path, instances) in [(&small, o.read_instances), (&large, o.instances)] {
        let node = Node::start(&rt, Store::Redb(path))?;
        reads::reads(&mut report, &rt, &o, node.addr, instances)?;
        report.add(
            "memory",
            format!("redb: peak RSS, reads at {instances} instances"),
            json!({"mib": node.peak_rss_mib().round()}),
        );
        node.stop()?;
    }
    {
        let node = Node::start(&rt, Store::Redb(&large))?;
        report.add(
            "startup",
            format!(
                "redb: start-up at {} events (until /healthz answers)",
                o.events
            ),
            json!({"secs": round3(node.startup.as_secs_f64())}),
        );
        reads::history(&mut report, &rt, node.addr, o.events)?;
        report.add(
            "memory",
            format!(
                "redb: peak RSS, reads and as-of at {} instances",
                o.instances
            ),
            json!({"mib": node.peak_rss_mib().round()}),
        );
        node.stop()?;
    }

    if o.json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
    } else {
        println!(
            "\nledger_bench on {} cores, {}",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
        );
        report.print_table();
    }
    Ok(())
}
