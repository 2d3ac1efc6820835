//! `ledgerctl`: the operator's tool. Parses the command line, runs the command from
//! `instance_ledger::ops`, and renders its report: tables for people, one JSON document
//! with `--json`, a progress bar on a terminal for long jobs. Nothing is decided here.
//!
//! Exit codes: 0 ok, 1 damage found (or a bad import file, or a failure underway),
//! 2 usage, 3 cannot open the ledger, the file or the server.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use instance_ledger::ops::{self, OpsError, Target, tail::Follow};
use instance_ledger::projection::view::InstanceView;
use instance_ledger::query::feed::FeedFilter;
use instance_ledger::query::{Envelope, Point};
use instance_ledger::store::{EventStore, ExportRange};
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(
    name = "ledgerctl",
    version,
    about = "Operator tool for instance-ledger: verify, rebuild, export/import (backend migration), history, diff, audit, stats, tail",
    after_help = "Exit codes: 0 ok, 1 damage found or the command failed, 2 usage, 3 cannot open."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Global {
    /// The embedded ledger's data directory (the server must be stopped). Default
    /// ./ledger-data.
    #[arg(
        long,
        global = true,
        env = "LEDGER_DATA_DIR",
        conflicts_with = "postgres_url"
    )]
    data_dir: Option<PathBuf>,
    /// A PostgreSQL ledger, e.g. postgres://postgres@127.0.0.1/ledger (nodes may run).
    #[arg(long, global = true, env = "LEDGER_POSTGRES_URL")]
    postgres_url: Option<String>,
    /// Print one JSON document (NDJSON for tail) instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check the hash chain, gap-free positions, per-instance versions and decoding of
    /// every event, and compare every stored projection with a rebuild from the log.
    Verify,
    /// Drop every projection and rebuild it from the log (log damage is refused).
    Rebuild,
    /// Write stored events byte for byte as NDJSON (the SHA-256 of each line is its hash).
    Export {
        /// First position to include.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Last position to include.
        #[arg(long)]
        to: Option<u64>,
        /// Only this instance's events.
        #[arg(long)]
        instance: Option<Uuid>,
        /// Write here instead of stdout.
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
    /// Append an export to an empty ledger (either backend), checking every line first.
    Import {
        file: PathBuf,
        /// The source's head hash (its digest), which the file must end at.
        #[arg(long)]
        expect_head: Option<String>,
    },
    /// An instance's timeline, or its view at a point.
    History {
        /// Instance id or short id.
        id: String,
        /// The view as of this time (RFC 3339).
        #[arg(long, conflicts_with = "at_position")]
        as_of: Option<String>,
        /// The view after this log position.
        #[arg(long)]
        at_position: Option<u64>,
    },
    /// How an instance changed between two points (positions or RFC 3339 times).
    Diff {
        id: String,
        #[arg(long)]
        from: String,
        /// Default: the head.
        #[arg(long)]
        to: Option<String>,
    },
    /// The audit trail: events matching every filter given, in log order.
    Audit {
        #[command(flatten)]
        filters: Filters,
        /// At or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// At or before this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// At most this many events.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Events, instances by state, bytes, head position and digest.
    Stats,
    /// Follow a running server's live feed; resumes after disconnects; Ctrl-C stops.
    Tail {
        /// The server, e.g. http://127.0.0.1:8080.
        #[arg(long, env = "LEDGER_URL")]
        url: String,
        /// A bearer token the server accepts.
        #[arg(long, env = "LEDGER_TOKEN", hide_env_values = true)]
        token: String,
        #[command(flatten)]
        filters: Filters,
        /// Start after this position (default: from the beginning).
        #[arg(long)]
        after: Option<u64>,
    },
}

#[derive(Debug, Args)]
struct Filters {
    /// Only this actor's events (a user id, `admin`, `driver:simulated`).
    #[arg(long)]
    actor: Option<String>,
    /// Only events of this type, e.g. StopRequested.
    #[arg(long = "type")]
    event_type: Option<String>,
    /// Only this instance's events.
    #[arg(long)]
    instance: Option<Uuid>,
    /// Only events of this project's instances.
    #[arg(long)]
    project: Option<Uuid>,
}

fn main() {
    let cli = Cli::parse();
    let json = cli.global.json;
    let code = match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            if json {
                let mut doc = json!({"ok": false, "error": e.kind(), "message": e.to_string()});
                match &e {
                    OpsError::Damage { at, detail } => {
                        doc["at"] = json!(at);
                        doc["damage"] = json!(detail);
                    }
                    OpsError::BadLine { line, detail } => {
                        doc["line"] = json!(line);
                        doc["damage"] = json!(detail);
                    }
                    _ => {}
                }
                println!("{doc}");
            } else {
                eprintln!("ledgerctl: {e}");
            }
            e.exit_code()
        }
    };
    std::process::exit(code);
}

fn target(g: &Global) -> Target {
    match (&g.postgres_url, &g.data_dir) {
        (Some(url), _) => Target::Postgres(url.clone()),
        (None, Some(dir)) => Target::DataDir(dir.clone()),
        (None, None) => Target::DataDir(PathBuf::from("./ledger-data")),
    }
}

fn time(name: &str, raw: &str) -> Result<chrono::DateTime<chrono::Utc>, OpsError> {
    match Point::time(name, raw).map_err(OpsError::Usage)? {
        Point::Time(t) => Ok(t),
        Point::Position(_) | Point::Earlier(..) => {
            Err(OpsError::Usage(format!("{name} must be a time")))
        }
    }
}

fn run(cli: Cli) -> Result<(), OpsError> {
    match cli.command {
        Command::Tail {
            url,
            token,
            filters,
            after,
        } => tail(&cli.global, &url, &token, &filters, after),
        offline => run_offline(&cli.global, offline),
    }
}

/// The commands that open a ledger themselves.
fn run_offline(g: &Global, command: Command) -> Result<(), OpsError> {
    let target = target(g);
    let create = matches!(command, Command::Import { .. });
    let store = target.open(create)?;
    let store = &*store;
    match command {
        Command::Verify => {
            let bar = progress(g, store, "verify");
            let v = ops::check::verify(store, &|p| bar.set_position(p))?;
            bar.finish_and_clear();
            if g.json {
                print_json(json!({"ok": true, "verified": v}));
            } else {
                println!(
                    "ok: {} events verified: chain, positions, versions and decoding; every projection equals a rebuild",
                    v.events
                );
                table(
                    &["", ""],
                    &[
                        vec!["head position".into(), v.head_position.to_string()],
                        vec!["head hash".into(), v.head_hash],
                        vec!["state hash".into(), v.state_hash],
                        vec!["instances".into(), v.instances.to_string()],
                        vec!["index entries".into(), v.index_entries.to_string()],
                    ],
                );
            }
        }
        Command::Rebuild => {
            let bar = progress(g, store, "rebuild");
            let r = ops::check::rebuild(store, &|p| bar.set_position(p))?;
            bar.finish_and_clear();
            if g.json {
                print_json(json!({"ok": true, "rebuilt": r}));
            } else {
                println!(
                    "ok: rebuilt every projection from {} events (projection version {})",
                    r.events, r.projection_version
                );
            }
        }
        Command::Export {
            from,
            to,
            instance,
            output,
        } => {
            let range = ExportRange {
                from,
                to,
                stream: instance,
            };
            let bar = progress(g, store, "export");
            let n = match &output {
                Some(path) => {
                    let file = std::fs::File::create(path).map_err(|e| {
                        OpsError::Open(format!("cannot create {}: {e}", path.display()))
                    })?;
                    let mut out = std::io::BufWriter::new(file);
                    let n =
                        ops::transfer::export(store, &range, &mut out, &|p| bar.set_position(p))?;
                    out.into_inner()
                        .map_err(|e| OpsError::Failed(e.to_string()))?
                        .sync_all()
                        .map_err(|e| OpsError::Failed(e.to_string()))?;
                    n
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut out = std::io::BufWriter::new(stdout.lock());
                    ops::transfer::export(store, &range, &mut out, &|p| bar.set_position(p))?
                }
            };
            bar.finish_and_clear();
            // The events went to stdout unless -o was given: the summary goes to stderr.
            if g.json && output.is_some() {
                print_json(json!({"ok": true, "exported": n}));
            } else {
                eprintln!("exported {n} events");
            }
        }
        Command::Import { file, expect_head } => {
            let bar = if g.json || !std::io::stderr().is_terminal() {
                ProgressBar::hidden()
            } else {
                bar_of(0, "import")
            };
            let r = ops::transfer::import(store, &file, expect_head.as_deref(), &|p| {
                bar.set_position(p)
            })?;
            bar.finish_and_clear();
            if g.json {
                print_json(json!({"ok": true, "imported": r}));
            } else {
                println!("ok: imported {} events into {target}", r.events);
                table(
                    &["", ""],
                    &[
                        vec!["head position".into(), r.head_position.to_string()],
                        vec!["head hash".into(), r.head_hash],
                        vec!["state hash".into(), r.state_hash],
                    ],
                );
            }
        }
        Command::History {
            id,
            as_of,
            at_position,
        } => {
            let point = match (as_of, at_position) {
                (Some(t), _) => Some(Point::Time(time("--as-of", &t)?)),
                (None, Some(p)) => Some(Point::Position(p)),
                (None, None) => None,
            };
            match point {
                None => events_out(g, &ops::inspect::timeline(store, &id)?),
                Some(point) => {
                    let (position, inst) = ops::inspect::view_at(store, &id, point)?;
                    let view = serde_json::to_value(InstanceView::from(&inst))
                        .map_err(|e| OpsError::Failed(e.to_string()))?;
                    if g.json {
                        print_json(json!({"position": position, "instance": view}));
                    } else {
                        println!("{id} after position {position}:");
                        fields_out(&view);
                    }
                }
            }
        }
        Command::Diff { id, from, to } => {
            let from = Point::either("--from", &from).map_err(OpsError::Usage)?;
            let to = to
                .map(|t| Point::either("--to", &t))
                .transpose()
                .map_err(OpsError::Usage)?;
            let d = ops::inspect::diff(store, &id, from, to)?;
            let view = |i: &Option<_>| {
                i.as_ref()
                    .map(|i| serde_json::to_value(InstanceView::from(i)).unwrap_or(Value::Null))
                    .unwrap_or(Value::Null)
            };
            let (before, after) = (view(&d.from), view(&d.to));
            if g.json {
                print_json(json!({
                    "from_position": d.from_position,
                    "to_position": d.to_position,
                    "from": before,
                    "to": after,
                    "events": d.events.iter().map(envelope_json).collect::<Vec<_>>(),
                }));
            } else {
                println!(
                    "{id} from position {} to {}: {} events",
                    d.from_position,
                    d.to_position,
                    d.events.len()
                );
                events_out(g, &d.events);
                let mut rows = Vec::new();
                let empty = serde_json::Map::new();
                let b = before.as_object().unwrap_or(&empty);
                let a = after.as_object().unwrap_or(&empty);
                let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let (x, y) = (b.get(k), a.get(k));
                    if x != y {
                        rows.push(vec![k.clone(), cell(x), cell(y)]);
                    }
                }
                println!();
                table(&["field", "from", "to"], &rows);
            }
        }
        Command::Audit {
            filters,
            since,
            until,
            limit,
        } => {
            let filter = FeedFilter {
                instance_id: filters.instance,
                project_id: filters.project,
                event_type: filters.event_type,
                actor: filters.actor,
                request_id: None,
                since: since.map(|t| time("--since", &t)).transpose()?,
                until: until.map(|t| time("--until", &t)).transpose()?,
            };
            events_out(g, &ops::inspect::audit(store, &filter, limit)?);
        }
        Command::Stats => {
            let s = ops::inspect::stats(store)?;
            if g.json {
                print_json(json!({"stats": s}));
            } else {
                table(
                    &["", ""],
                    &[
                        vec!["events".into(), s.events.to_string()],
                        vec!["head position".into(), s.head_position.to_string()],
                        vec!["head hash".into(), s.head_hash],
                        vec!["state hash".into(), s.state_hash],
                        vec![
                            "last event at".into(),
                            s.last_event_at.map_or("-".into(), |t| t.to_rfc3339()),
                        ],
                        vec![
                            "bytes".into(),
                            s.bytes.map_or("-".into(), |b| b.to_string()),
                        ],
                        vec![
                            "projection version".into(),
                            s.projection_version.to_string(),
                        ],
                    ],
                );
                println!();
                let rows: Vec<Vec<String>> = s
                    .instances
                    .iter()
                    .map(|(state, n)| vec![state.as_str().to_string(), n.to_string()])
                    .collect();
                table(&["state", "instances"], &rows);
            }
        }
        Command::Tail { .. } => {
            return Err(OpsError::Usage("tail follows a server: give --url".into()));
        }
    }
    Ok(())
}

fn tail(
    g: &Global,
    url: &str,
    token: &str,
    filters: &Filters,
    after: Option<u64>,
) -> Result<(), OpsError> {
    let mut query = Vec::new();
    let mut add = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            query.push((k.to_string(), v));
        }
    };
    add("actor", filters.actor.clone());
    add("type", filters.event_type.clone());
    add("instance_id", filters.instance.map(|i| i.to_string()));
    add("project_id", filters.project.map(|p| p.to_string()));
    let follow = Follow {
        url: url.to_string(),
        token: token.to_string(),
        filters: query,
        after,
    };
    let json = g.json;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| OpsError::Failed(e.to_string()))?;
    runtime.block_on(async move {
        let stdout = std::io::stdout();
        let mut on_event = |e: ops::tail::FeedEvent| {
            let mut out = stdout.lock();
            let line = if json {
                e.data
            } else {
                let v: Value = serde_json::from_str(&e.data).unwrap_or(Value::Null);
                format!(
                    "{:>8}  {}  {:<22} {}  {}",
                    e.id,
                    v["at"].as_str().unwrap_or("-"),
                    e.event,
                    v["stream_id"].as_str().unwrap_or("-"),
                    v["actor"].as_str().unwrap_or("-"),
                )
            };
            // A closed pipe (`| head`) ends the tail quietly.
            writeln!(out, "{line}")
                .and_then(|()| out.flush())
                .map_err(|e| OpsError::Failed(format!("writing the feed: {e}")))
        };
        let mut on_notice = |m: String| eprintln!("ledgerctl: {m}");
        tokio::select! {
            r = ops::tail::follow(&follow, &mut on_event, &mut on_notice) => match r {
                Err(OpsError::Failed(m)) if m.contains("Broken pipe") => Ok(()),
                other => other,
            },
            _ = tokio::signal::ctrl_c() => Ok(()),
            _ = terminated() => Ok(()),
        }
    })
}

/// SIGTERM (a service manager stopping the tail): as clean an end as Ctrl-C.
async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            term.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

/// A progress bar over the log's positions, drawn only on a terminal and never with
/// `--json`.
fn progress(g: &Global, store: &dyn EventStore, what: &str) -> ProgressBar {
    if g.json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    bar_of(ops::check::head_position(store), what)
}

fn bar_of(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let template = if total > 0 {
        "{prefix} [{bar:40}] {pos}/{len} events, {per_sec}, ETA {eta}"
    } else {
        "{prefix} {pos} events, {per_sec}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(what.to_string());
    bar
}

fn print_json(v: Value) {
    println!("{v}");
}

fn envelope_json(e: &Envelope) -> Value {
    serde_json::to_value(e).unwrap_or(Value::Null)
}

fn events_out(g: &Global, events: &[Envelope]) {
    if g.json {
        print_json(Value::Array(events.iter().map(envelope_json).collect()));
        return;
    }
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                e.position.to_string(),
                e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                e.event_type.clone(),
                e.stream_id.to_string(),
                e.version.to_string(),
                e.actor.clone(),
                e.origin.clone(),
            ]
        })
        .collect();
    table(
        &[
            "position", "at", "type", "stream", "version", "actor", "origin",
        ],
        &rows,
    );
}

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn fields_out(view: &Value) {
    let rows: Vec<Vec<String>> = view
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| vec![k.clone(), cell(Some(v))])
                .collect()
        })
        .unwrap_or_default();
    table(&["field", "value"], &rows);
}

/// Left-aligned columns, two spaces apart; a header line unless every header is empty.
fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, c) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if headers.iter().any(|h| !h.is_empty()) {
        let _ = writeln!(
            out,
            "{}",
            line(headers.iter().map(|h| h.to_uppercase()).collect())
        );
    }
    for row in rows {
        let _ = writeln!(out, "{}", line(row.clone()));
    }
}
