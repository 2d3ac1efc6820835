//! Process wiring: configuration, opening the store, starting the writer, the driver and
//! the HTTP server, and shutting them down in order.

pub mod admin_token;
pub mod config;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use tokio::sync::mpsc;

use crate::api::{self, AppState, auth::Tokens};
use crate::driver;
use crate::ops;
use crate::service::{Ledger, WriterConfig};
use crate::store::postgres::PgStore;
use crate::store::redb::RedbStore;
use crate::store::{EventStore, ExportRange, Maintenance, ensure_current_projections};
use config::{Backend, ServeArgs, VerifyArgs};

fn install_metrics() -> anyhow::Result<metrics_exporter_prometheus::PrometheusHandle> {
    let latency = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ];
    let batch = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency)?
        .set_buckets_for_metric(Matcher::Full("ledger_batch_events".into()), &batch)?
        .install_recorder()
        .context("installing the metrics recorder")
}

/// Opens the configured backend: the redb file (checking its tail) or PostgreSQL (retrying
/// until `--postgres-wait-secs`, then applying migrations).
async fn open_store(args: &ServeArgs) -> anyhow::Result<Arc<dyn EventStore>> {
    let store = open_backend(args).await?;
    let check = store.clone();
    let rebuilt = tokio::task::spawn_blocking(move || ensure_current_projections(&*check))
        .await
        .context("rebuilding the projections")?
        .context("rebuilding the projections from the log")?;
    if let Some(events) = rebuilt {
        tracing::info!(
            events,
            version = crate::store::projection::VERSION,
            "the projections were built by other code; rebuilt them from the log"
        );
    }
    Ok(store)
}

async fn open_backend(args: &ServeArgs) -> anyhow::Result<Arc<dyn EventStore>> {
    match args.backend {
        Backend::Redb => {
            let store = RedbStore::open_with_cache(&args.data_dir, args.cache_mb)
                .with_context(|| format!("opening the ledger in {}", args.data_dir.display()))?;
            store.set_checkpoint_bytes(args.journal_kib.saturating_mul(1 << 10));
            let head = store.check_tail().context(
                "the ledger's last event does not match its recorded head; run `ledger verify` and restore from a copy if it fails",
            )?;
            tracing::info!(path = %store.path().display(), position = head.position, "store open");
            Ok(Arc::new(store))
        }
        Backend::Postgres => {
            let url = args
                .postgres_url
                .clone()
                .context("--backend postgres needs --postgres-url (or LEDGER_POSTGRES_URL)")?;
            let wait = Duration::from_secs(args.postgres_wait_secs);
            let store = tokio::task::spawn_blocking(move || PgStore::connect(&url, wait))
                .await
                .context("connecting to PostgreSQL")?
                .context("opening the ledger on PostgreSQL")?;
            tracing::info!("store open on PostgreSQL");
            Ok(Arc::new(store))
        }
    }
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let store = open_store(&args).await?;
    let token = admin_token::load_or_create(&args.data_dir)?;
    let handle = install_metrics()?;
    let upkeep = handle.clone();
    let upkeep_task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });

    let (pending_tx, pending_rx) = mpsc::unbounded_channel();
    let writer_config = WriterConfig {
        queue_capacity: args.queue_capacity as usize,
        batch_limit: args.batch_limit as usize,
    };
    // Both read the store, which may block (PostgreSQL): off the async thread.
    let resume_tx = pending_tx.clone();
    let (ledger, writer, resumed) = tokio::task::spawn_blocking(move || {
        let (ledger, writer) = Ledger::start(store, writer_config, Some(resume_tx.clone()))?;
        let resumed = driver::resume(&ledger, &resume_tx)?;
        Ok::<_, anyhow::Error>((ledger, writer, resumed))
    })
    .await
    .context("starting the writer")??;
    if resumed > 0 {
        tracing::info!(resumed, "picked up pending transitions");
    }
    // Several nodes share a PostgreSQL ledger: each one also sweeps for pending transitions
    // no node is carrying out (their node died); claims keep it to one driver each.
    let sweep_task = (args.backend == Backend::Postgres).then(|| {
        let (ledger, tx) = (ledger.clone(), pending_tx.clone());
        let every = Duration::from_secs(args.driver_sweep_secs);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let (ledger, tx) = (ledger.clone(), tx.clone());
                let swept = tokio::task::spawn_blocking(move || driver::resume(&ledger, &tx));
                if let Ok(Err(e)) = swept.await {
                    tracing::warn!(error = %e, "driver sweep failed");
                }
            }
        })
    });
    drop(pending_tx);
    let driver_running = Arc::new(AtomicBool::new(true));
    let driver_flag = driver_running.clone();
    let driver_ledger = ledger.clone();
    let driver_config = driver::simulated::Config {
        delay: Duration::from_millis(args.driver_delay_ms),
        failure_rate: args.driver_failure_rate,
    };
    let driver_task = tokio::spawn(async move {
        driver::simulated::run(driver_ledger, pending_rx, driver_config).await;
        driver_flag.store(false, Ordering::Relaxed);
    });

    let state = web::Data::new(AppState {
        ledger: ledger.clone(),
        tokens: Tokens::new(&token),
        metrics: Some(handle),
        driver_running,
        dialects: api::Dialects {
            wakame_terminated: Duration::from_secs(args.wakame_terminated_secs),
        },
    });
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(from_fn(api::telemetry::observe))
            .configure(api::configure)
            .default_service(web::to(api::no_route))
    })
    .client_request_timeout(crate::limits::CLIENT_REQUEST_TIMEOUT)
    .keep_alive(crate::limits::KEEP_ALIVE)
    .client_disconnect_timeout(crate::limits::CLIENT_DISCONNECT_TIMEOUT)
    .max_connections(crate::limits::CONNECTIONS_PER_WORKER)
    .shutdown_timeout(10);
    if let Some(workers) = args.workers {
        server = server.workers(workers.max(1));
    }
    let server = server
        .bind(args.listen)
        .with_context(|| format!("binding {}", args.listen))?;
    for addr in server.addrs() {
        tracing::info!(%addr, "listening");
        // A plain line on stdout too, for scripts and tests that start the binary.
        println!("listening on http://{addr}");
    }
    // actix-web stops gracefully on SIGINT and SIGTERM: in-flight requests finish.
    server.run().await.context("HTTP server failed")?;

    tracing::info!("shutting down");
    driver_task.abort();
    if let Some(task) = sweep_task {
        task.abort();
    }
    upkeep_task.abort();
    drop(ledger);
    // The writer drains what was queued, then exits once the last handle is gone.
    let joined = tokio::time::timeout(
        Duration::from_secs(15),
        tokio::task::spawn_blocking(move || writer.join()),
    )
    .await;
    if joined.is_err() {
        tracing::warn!(
            "the writer did not stop within 15 s; exiting anyway (nothing unacknowledged is lost)"
        );
    }
    Ok(())
}

/// The ledger an offline command works on.
fn target(args: &VerifyArgs) -> anyhow::Result<ops::Target> {
    Ok(match args.backend {
        Backend::Redb => ops::Target::DataDir(args.data_dir.clone()),
        Backend::Postgres => ops::Target::Postgres(
            args.postgres_url
                .clone()
                .context("--backend postgres needs --postgres-url (or LEDGER_POSTGRES_URL)")?,
        ),
    })
}

/// `ledger export`: the same code as `ledgerctl export`, the whole log to stdout.
pub fn export(args: VerifyArgs) -> anyhow::Result<()> {
    let store = target(&args)?.open(false)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let n = ops::transfer::export(&*store, &ExportRange::default(), &mut out, &|_| {})?;
    tracing::info!(events = n, "exported");
    Ok(())
}

/// `ledger verify`: the same code as `ledgerctl verify`.
pub fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let store = target(&args)?.open(false)?;
    let v = ops::check::verify(&*store, &|_| {})?;
    println!(
        "ok: {} events, hash chain intact up to position {} ({}); {} instances and {} index entries match a rebuild from the log",
        v.events, v.head_position, v.head_hash, v.instances, v.index_entries
    );
    Ok(())
}
