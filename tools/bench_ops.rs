//! Operator-job throughput: builds a synthetic ledger (see `synthetic`), closes it, then
//! times on the embedded store, in this one run:
//! - the raw sequential read of the log (every stored record in order, nothing decoded):
//!   the baseline every other figure is a ratio of;
//! - `export` to a file, `rebuild` in place, `import` of that file into an empty ledger,
//!   and (with `--verify`) `verify`, each through the same `ops` code `ledgerctl` runs.
//!
//! Run: `cargo bench --bench bench_ops -- [events] [dir] [--verify]` (default 1,000,000
//! events; the README's figures are for 10,000,000, which needs ~40 GB of disk). With
//! `dir` the built ledger is kept there and reused by a later run of the same size.

#[path = "synthetic.rs"]
mod synthetic;

use std::path::Path;
use std::time::Instant;

use instance_ledger::ops;
use instance_ledger::store::redb::RedbStore;
use instance_ledger::store::{ExportRange, Maintenance};

/// Peak resident memory of this process so far, in MiB (Linux).
fn peak_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

struct Row {
    what: &'static str,
    events: u64,
    seconds: f64,
}

fn timed(what: &'static str, f: impl FnOnce() -> anyhow::Result<u64>) -> anyhow::Result<Row> {
    eprintln!("  {what} ...");
    let t = Instant::now();
    let events = f()?;
    let row = Row {
        what,
        events,
        seconds: t.elapsed().as_secs_f64(),
    };
    eprintln!(
        "  {what}: {} events in {:.1} s, peak RSS {} MiB",
        row.events,
        row.seconds,
        peak_mib()
    );
    Ok(row)
}

fn open(dir: &Path) -> anyhow::Result<RedbStore> {
    Ok(RedbStore::open(dir)?)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let events: u64 = args
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let with_verify = args.iter().any(|a| a == "--verify");
    let scratch = tempfile::tempdir()?;
    let root = args
        .iter()
        .find(|a| a.parse::<u64>().is_err() && !a.starts_with("--"))
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| scratch.path().to_path_buf());
    let source = root.join(format!("ops-{events}"));
    if !source.join("built").exists() {
        let _ = std::fs::remove_dir_all(&source);
        eprintln!("building {}: {events} events", source.display());
        let t = Instant::now();
        drop(synthetic::build(&source, events / 10, events)?);
        std::fs::write(source.join("built"), b"")?;
        eprintln!("  built in {:.0} s", t.elapsed().as_secs_f64());
    }
    let file = root.join(format!("ops-{events}.jsonl"));
    let target = root.join(format!("ops-{events}-imported"));
    let _ = std::fs::remove_dir_all(&target);
    let mut rows = Vec::new();

    let store = open(&source)?;
    rows.push(timed("raw sequential read", || {
        Ok(store.export(&ExportRange::default(), &mut std::io::sink(), &|_| {})?)
    })?);
    rows.push(timed("export (to a file)", || {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
        Ok(ops::transfer::export(
            &store,
            &ExportRange::default(),
            &mut out,
            &|_| {},
        )?)
    })?);
    rows.push(timed("rebuild", || {
        Ok(ops::check::rebuild(&store, &|_| {})?.events)
    })?);
    if with_verify {
        rows.push(timed("verify", || {
            Ok(ops::check::verify(&store, &|_| {})?.events)
        })?);
    }
    drop(store);
    rows.push(timed("import (into an empty ledger)", || {
        let store = RedbStore::open(&target)?;
        Ok(ops::transfer::import(&store, &file, None, &|_| {})?.events)
    })?);

    let baseline = rows[0].events as f64 / rows[0].seconds;
    println!("\noperator jobs on a {events}-event ledger (redb, this machine, one run)");
    println!(
        "{:<32} {:>12} {:>10} {:>14} {:>10}",
        "job", "events", "seconds", "events/s", "vs raw read"
    );
    for r in &rows {
        let rate = r.events as f64 / r.seconds;
        println!(
            "{:<32} {:>12} {:>10.1} {:>14.0} {:>9.3}x",
            r.what,
            r.events,
            r.seconds,
            rate,
            rate / baseline
        );
    }
    println!("peak RSS {} MiB", peak_mib());
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_dir_all(&target);
    Ok(())
}
