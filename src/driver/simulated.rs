//! The in-process driver: completes each pending transition after a delay, failing a
//! configurable fraction of them into `error`.

use std::time::Duration;

use tokio::sync::mpsc;
use uuid::Uuid;

use crate::domain::instance::Command;
use crate::service::{Ledger, Pending, RequestMeta, ServiceError, WriteCommand, WriteRequest};

#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub delay: Duration,
    /// Fraction in [0, 1] of transitions that fail.
    pub failure_rate: f64,
}

/// Runs until the pending channel closes.
pub async fn run(ledger: Ledger, mut rx: mpsc::UnboundedReceiver<Pending>, config: Config) {
    while let Some(pending) = rx.recv().await {
        metrics::gauge!("ledger_driver_backlog").increment(1.0);
        let ledger = ledger.clone();
        tokio::spawn(async move {
            if !config.delay.is_zero() {
                tokio::time::sleep(config.delay).await;
            }
            complete(&ledger, pending, config.failure_rate).await;
            metrics::gauge!("ledger_driver_backlog").decrement(1.0);
        });
    }
}

async fn complete(ledger: &Ledger, pending: Pending, failure_rate: f64) {
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
            request_id: Uuid::now_v7().to_string(),
            origin: "driver".into(),
            idempotency: None,
        },
        // Completes exactly the request it was told about: if anything happened to the
        // instance since, the newer request brings its own pending entry.
        expected_version: Some(pending.version),
    };
    let mut backoff = Duration::from_millis(20);
    loop {
        match ledger.submit(request.clone()).await {
            Err(ServiceError::Overloaded) | Err(ServiceError::Unavailable(_)) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Ok(_) => return,
            Err(e) => {
                tracing::debug!(instance = %pending.id, error = %e, "driver completion skipped");
                return;
            }
        }
    }
}
