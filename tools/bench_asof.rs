//! As-of benchmark: builds a ledger through the real append and projection code (large
//! transactions, same tables as the server), then measures as-of filtered list pages of
//! 100 (ids from the history intervals plus each view folded from its stream, as the API
//! answers) at several points in time. It does the same on a ledger built to 1/10 of the
//! length by the same process, and prints the ratio per point: cost should follow the
//! answer, not the length of the log.
//!
//! Both ledgers are closed after building and opened again before measuring, so each is
//! read through a fresh page cache, as after a server restart.
//!
//! Run: `cargo bench --bench bench_asof -- [instances] [events] [dir]`
//! (default 1,000,000 instances and 10,000,000 events; needs ~20 GB of disk). With `dir`
//! the ledgers are kept there and a later run with the same sizes only measures.

#[path = "synthetic.rs"]
mod synthetic;

use std::time::Instant;

use instance_ledger::domain::lifecycle::State;
use instance_ledger::projection::{Filter, index};
use instance_ledger::store::redb::RedbStore;
use instance_ledger::store::{EventStore, Snapshot};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use synthetic::{build, project};
use uuid::Uuid;

struct Stats {
    p50: f64,
    p99: f64,
}

/// Where each timed page starts.
#[derive(Clone, Copy, PartialEq)]
enum Pages {
    /// From the first id, each page continuing from the last (what a client listing the
    /// answer does).
    Walk,
    /// At a uniformly random id among those created by the point.
    Sampled,
}

/// The first and the last instance id created by `position`.
fn id_range(snap: &dyn Snapshot, position: u64) -> anyhow::Result<(u128, u128)> {
    let created = |events: Vec<instance_ledger::store::Envelope>| {
        events
            .into_iter()
            .filter(|e| e.event_type == "Created" && e.position <= position)
            .map(|e| e.stream_id.as_u128())
            .collect::<Vec<_>>()
    };
    let first = created(snap.read_all(0, 10)?).first().copied().unwrap_or(0);
    // The last creation at or before the point: look back a window at a time (the last
    // tenth of the log creates nothing).
    let mut end = position;
    let mut last = None;
    while last.is_none() && end > 0 {
        let start = end.saturating_sub(1000);
        last = created(snap.read_all(start, (end - start) as usize)?)
            .last()
            .copied();
        end = start;
    }
    Ok((first, last.unwrap_or(first).max(first)))
}

/// Times `rounds` pages, then the very same pages again: the first pass reads through
/// whatever the caches hold (cold), the second measures the work itself (warm).
fn measure(
    store: &RedbStore,
    position: u64,
    filters: &[Filter],
    rounds: usize,
    pages: Pages,
) -> anyhow::Result<[Stats; 2]> {
    let snap = store.read()?;
    let (first, last) = id_range(&*snap, position)?;
    let mut keys: Vec<_> = filters.iter().map(Filter::index_key).collect();
    if keys.is_empty() {
        keys.push(index::all_instances());
    }
    keys.sort();
    let mut passes = Vec::with_capacity(2);
    for _ in 0..2 {
        let mut rng = StdRng::seed_from_u64(position);
        let mut times = Vec::with_capacity(rounds);
        let mut cursor = None;
        for _ in 0..rounds {
            if pages == Pages::Sampled {
                cursor = Some(Uuid::from_u128(rng.random_range(first..=last)));
            }
            let t = Instant::now();
            let page = snap.page_at(&keys, position, cursor, 100)?;
            for id in &page.ids {
                std::hint::black_box(snap.instance_at(*id, position)?);
            }
            // Only full pages compare like with like (a small answer ends in a short one).
            if page.ids.len() == 100 {
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            // Walk forward through the answer, wrapping to the start.
            cursor = page.next;
        }
        times.sort_by(f64::total_cmp);
        if times.is_empty() {
            anyhow::bail!("no full page at position {position}");
        }
        passes.push(Stats {
            p50: times[times.len() / 2],
            p99: times[(times.len() * 99 / 100).min(times.len() - 1)],
        });
    }
    let warm = passes.pop().unwrap_or(Stats { p50: 0.0, p99: 0.0 });
    let cold = passes.pop().unwrap_or(Stats { p50: 0.0, p99: 0.0 });
    Ok([cold, warm])
}

fn main() -> anyhow::Result<()> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let instances = args.first().copied().unwrap_or(1_000_000);
    let events = args.get(1).copied().unwrap_or(10_000_000);
    let scratch = tempfile::tempdir()?;
    let root = match std::env::args().nth(3) {
        Some(dir) => std::path::PathBuf::from(dir),
        None => scratch.path().to_path_buf(),
    };
    let full_dir = root.join(format!("full-{instances}-{events}"));
    let tenth_dir = root.join(format!("tenth-{}-{}", instances / 10, events / 10));
    for (dir, n, e) in [
        (&full_dir, instances, events),
        (&tenth_dir, instances / 10, events / 10),
    ] {
        if dir.join("built").exists() {
            eprintln!("reusing {}", dir.display());
            continue;
        }
        let _ = std::fs::remove_dir_all(dir);
        eprintln!("building {}: {n} instances, {e} events", dir.display());
        let t = Instant::now();
        drop(build(dir, n, e)?);
        std::fs::write(dir.join("built"), b"")?;
        eprintln!("  built in {:.0} s", t.elapsed().as_secs_f64());
    }
    let full = RedbStore::open(&full_dir)?;
    let full_len = full.read()?.head()?.position;
    let tenth = RedbStore::open(&tenth_dir)?;
    let tenth_len = tenth.read()?.head()?.position;

    // Single-filter pages are the criterion: their total is one lookup. A two-filter page
    // also counts the whole intersection for its exact `total`, which grows with the
    // answer; it is reported, not judged.
    let queries: Vec<(&str, Vec<Filter>, bool)> = vec![
        ("state=running", vec![Filter::State(State::Running)], true),
        ("project_id=P", vec![Filter::ProjectId(project(7))], true),
        (
            "tag=env:dev",
            vec![Filter::Tag("env".into(), "dev".into())],
            true,
        ),
        (
            "state=stopped&tag=env:prod",
            vec![
                Filter::State(State::Stopped),
                Filter::Tag("env".into(), "prod".into()),
            ],
            false,
        ),
    ];
    // Worst single-filter p50 ratio: [walk, sampled] x [cold, warm].
    let mut worst = [[0.0f64; 2]; 2];
    for (pages, title) in [
        (Pages::Walk, "walking the answer from its first page"),
        (
            Pages::Sampled,
            "pages starting at random points of the answer",
        ),
    ] {
        println!("\nas-of filtered list, page of 100 (ids + views), {title}; p50 / p99 in ms");
        println!(
            "{:<27} {:>5} | {:>15} {:>15} {:>6} | {:>15} {:>15} {:>6}",
            "query", "point", "full cold", "1/10 cold", "ratio", "full warm", "1/10 warm", "ratio"
        );
        for (name, filters, judged) in &queries {
            // Two-filter pages also count their whole intersection: fewer rounds.
            let rounds = if *judged { 200 } else { 6 };
            for share in [0.25, 0.5, 0.75, 1.0] {
                let a = measure(
                    &full,
                    (full_len as f64 * share) as u64,
                    filters,
                    rounds,
                    pages,
                )?;
                let b = measure(
                    &tenth,
                    (tenth_len as f64 * share) as u64,
                    filters,
                    rounds,
                    pages,
                )?;
                let ratio = [a[0].p50 / b[0].p50, a[1].p50 / b[1].p50];
                if *judged {
                    let w = &mut worst[(pages == Pages::Sampled) as usize];
                    w[0] = w[0].max(ratio[0]);
                    w[1] = w[1].max(ratio[1]);
                }
                println!(
                    "{:<27} {:>4.0}% | {:>6.2} / {:>6.2} {:>6.2} / {:>6.2} {:>6.2} | {:>6.2} / {:>6.2} {:>6.2} / {:>6.2} {:>6.2}",
                    name,
                    share * 100.0,
                    a[0].p50,
                    a[0].p99,
                    b[0].p50,
                    b[0].p99,
                    ratio[0],
                    a[1].p50,
                    a[1].p99,
                    b[1].p50,
                    b[1].p99,
                    ratio[1]
                );
            }
        }
    }
    println!(
        "\nfull ledger: {full_len} events; 1/10 ledger: {tenth_len} events; worst single-filter p50 ratio \
         (target <= 1.5): walking {:.2} cold, {:.2} warm; sampled {:.2} cold, {:.2} warm",
        worst[0][0], worst[0][1], worst[1][0], worst[1][1]
    );
    Ok(())
}
