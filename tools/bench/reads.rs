//! The benchmark's read scenarios: reads and as-of reads over HTTP on synthetic ledgers
//! built through the real append (`tools/synthetic.rs`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::load::{self, Req, Script, Until};
use super::node::TOKEN;
use super::{Options, Report, synthetic};

/// A synthetic ledger of `instances` / `events` under `dir` (reused if already built).
pub fn ledger_at(dir: &Path, instances: u64, events: u64) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("ledger-{instances}-{events}"));
    if path.join(instance_ledger::store::redb::FILE_NAME).exists() {
        return Ok(path);
    }
    std::fs::create_dir_all(&path)?;
    let t = Instant::now();
    let (store, written) = synthetic::build(&path, instances, events)?;
    drop(store);
    eprintln!(
        "  built {written} events ({instances} instances) in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    Ok(path)
}

/// The instances of a list answer.
fn ids_of(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    path: &str,
) -> anyhow::Result<Vec<String>> {
    let (status, body) = load::call(rt, addr, Some(TOKEN), Req::get(path.into()))?;
    anyhow::ensure!(status == 200, "{path} answered {status}: {body}");
    Ok(body["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// GET one instance and a filtered page of 100, on a server over a synthetic ledger.
pub fn reads(
    report: &mut Report,
    rt: &tokio::runtime::Runtime,
    o: &Options,
    addr: SocketAddr,
    instances: u64,
) -> anyhow::Result<()> {
    let ids = Arc::new(ids_of(rt, addr, "/v1/instances?limit=100")?);
    anyhow::ensure!(!ids.is_empty(), "the ledger lists no instance");
    let project = synthetic::project(0);
    let customer = synthetic::customer(0);
    // A project holds a hundredth of the fleet: at 10,000 instances its running ones do
    // not fill a page of 100 (58 did), at 1,000,000 they do, so that page does more work
    // at the larger size. A customer's running instances fill the page at both sizes.
    let scripts: [(&str, Script); 3] = [
        ("GET one instance", {
            let ids = ids.clone();
            Arc::new(move |_, n| Req::get(format!("/v1/instances/{}", ids[n as usize % ids.len()])))
        }),
        (
            "filtered page of 100 (project, state)",
            Arc::new(move |_, _| {
                Req::get(format!(
                    "/v1/instances?project_id={project}&state=running&limit=100"
                ))
            }),
        ),
        (
            "filtered page of 100 (customer, state)",
            Arc::new(move |_, _| {
                Req::get(format!(
                    "/v1/instances?customer_id={customer}&state=running&limit=100"
                ))
            }),
        ),
    ];
    for (what, script) in scripts {
        for conns in [1, 64] {
            let out = load::run(
                rt,
                &[addr],
                Some(TOKEN),
                conns,
                Until::Elapsed(Duration::from_secs_f64(o.secs / 2.0)),
                false,
                script.clone(),
            );
            report.http(
                "read",
                format!("{what}, {instances} instances, {conns} connections"),
                &out,
                &[],
            );
        }
    }
    Ok(())
}

/// As-of reads at a tenth of the log and at its end, on a server just started (cold),
/// then the same requests again (warm).
pub fn history(
    report: &mut Report,
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    events: u64,
) -> anyhow::Result<()> {
    let project = synthetic::project(0);
    // Instances present at both points (not purged by the end), so both answer 200.
    let early = ids_of(
        rt,
        addr,
        &format!("/v1/instances?limit=100&at_position={}", events / 10),
    )?;
    let late = ids_of(
        rt,
        addr,
        &format!("/v1/instances?limit=100&at_position={events}"),
    )?;
    let ids: Vec<String> = early.into_iter().filter(|i| late.contains(i)).collect();
    anyhow::ensure!(!ids.is_empty(), "no instance lives at both points");
    let ids = Arc::new(ids);
    for pass in ["cold", "warm"] {
        for (label, at) in [("1/10", events / 10), ("full", events)] {
            let one: Script = {
                let ids = ids.clone();
                Arc::new(move |_, n| {
                    Req::get(format!(
                        "/v1/instances/{}?at_position={at}",
                        ids[n as usize % ids.len()]
                    ))
                })
            };
            let page: Script = Arc::new(move |_, _| {
                Req::get(format!(
                    "/v1/instances?project_id={project}&state=running&limit=100&at_position={at}"
                ))
            });
            for (what, script) in [
                ("as-of one instance", one),
                ("as-of filtered page of 100", page),
            ] {
                let out = load::run(
                    rt,
                    &[addr],
                    Some(TOKEN),
                    1,
                    Until::Count(100),
                    false,
                    script,
                );
                report.http(
                    "history",
                    format!("{what} at {label} of {events} events, {pass}"),
                    &out,
                    &[],
                );
            }
        }
    }
    Ok(())
}
