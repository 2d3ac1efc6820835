//! The in-process driver: completes each pending transition after a delay, failing a
//! configurable fraction of them into `error`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc;
use tokio::time::Instant;
use uuid::Uuid;

use crate::domain::instance::Command;
use crate::service::{Ledger, Pending, RequestMeta, WriteCommand, WriteRequest};

#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub delay: Duration,
    /// Fraction in [0, 1] of transitions that fail.
    pub failure_rate: f64,
}

/// Runs until the pending channel closes and all work is done, or until aborted. One task
/// owns the timer queue and every in-flight completion, so aborting it releases all of
/// them (and with them their handles on the writer).
pub async fn run(ledger: Ledger, mut rx: mpsc::UnboundedReceiver<Pending>, config: Config) {
    let mut due: BinaryHeap<Reverse<(Instant, u64, Pending)>> = BinaryHeap::new();
    let mut in_flight = FuturesUnordered::new();
    let mut seq = 0u64;
    let mut open = true;
    // Queued or in flight: the same transition may be reported twice (by the writer and
    // by a sweep); it is carried out once.
    let mut known: HashSet<Pending> = HashSet::new();
    loop {
        metrics::gauge!("ledger_driver_backlog")
            .set((rx.len() + due.len() + in_flight.len()) as f64);
        let next = due.peek().map(|Reverse((at, _, _))| *at);
        tokio::select! {
            msg = rx.recv(), if open => match msg {
                Some(pending) if !known.insert(pending) => {}
                Some(pending) => {
                    seq += 1;
                    due.push(Reverse((Instant::now() + config.delay, seq, pending)));
                }
                None => open = false,
            },
            _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                let now = Instant::now();
                while let Some(Reverse((at, _, pending))) = due.peek().copied() {
                    if at > now {
                        break;
                    }
                    due.pop();
                    in_flight.push(complete(ledger.clone(), pending, config.failure_rate));
                }
            },
            Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                known.remove(&done);
            },
            else => return,
        }
    }
}

/// How long a claimed transition stays with this node before another may take it over.
const CLAIM_LEASE: Duration = Duration::from_secs(30);

/// Completes (or fails) one transition, if this node wins its claim. Returns it.
async fn complete(ledger: Ledger, pending: Pending, failure_rate: f64) -> Pending {
    let store = ledger.store().clone();
    let claimed =
        tokio::task::spawn_blocking(move || store.claim(pending.id, pending.version, CLAIM_LEASE))
            .await;
    match claimed {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => {
            tracing::debug!(instance = %pending.id, "another node carries out this transition");
            return pending;
        }
        // Unclaimable now (e.g. the database is away): a later sweep finds it again.
        Ok(Err(e)) => {
            tracing::warn!(instance = %pending.id, error = %e, "driver could not claim a transition");
            return pending;
        }
        Err(_) => return pending,
    }
    let command = if failure_rate > 0.0 && rand::random::<f64>() < failure_rate {
        Command::Fail {
            reason: "simulated failure".into(),
        }
    } else {
        Command::Complete
    };
    let request = WriteRequest {
        command: WriteCommand::Instance {
            id: pending.id,
            commands: vec![command],
        },
        meta: RequestMeta {
            actor: "driver:simulated".into(),
            token_id: None,
            request_id: Uuid::now_v7().to_string(),
            origin: crate::service::DRIVER_ORIGIN.into(),
            idempotency: None,
            staff: false,
        },
        // Completes exactly the request it was told about: if anything happened to the
        // instance since, the newer request brings its own pending entry.
        expected_version: Some(pending.version),
    };
    let mut backoff = Duration::from_millis(20);
    loop {
        match ledger.submit(request.clone()).await {
            // Transient (a full disk too): retry with backoff; the driver task is aborted
            // at shutdown.
            Err(e) if e.is_transient() => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Ok(_) => return pending,
            Err(e) => {
                tracing::debug!(instance = %pending.id, error = %e, "driver completion skipped");
                return pending;
            }
        }
    }
}
