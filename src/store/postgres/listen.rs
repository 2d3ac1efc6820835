//! Commit wake-ups across nodes: a dedicated connection LISTENs on `ledger_commits`
//! (notified inside every append transaction, delivered at commit). The notification only
//! wakes live feeds; they read the table, which is the truth.

use std::time::Duration;

use fallible_iterator::FallibleIterator;
use postgres::NoTls;

use super::super::StoreError;
use super::{PgStore, unpos};

pub(super) const NOTIFY_CHANNEL: &str = "ledger_commits";

impl PgStore {
    /// Calls `wake(position)` whenever any node commits, from a dedicated LISTEN
    /// connection that reconnects by itself. After a reconnect it wakes with the current
    /// head, since notifications sent meanwhile are lost. Stops once `wake` returns false
    /// (nobody listens any more).
    pub(super) fn listen(&self, wake: Box<dyn Fn(u64) -> bool + Send>) -> Result<(), StoreError> {
        let config = self.config.clone();
        std::thread::Builder::new()
            .name("ledger-listen".into())
            .spawn(move || {
                loop {
                    match listen_once(&config, &*wake) {
                        Ok(()) => return,
                        Err(e) => tracing::warn!(error = %e, "the PostgreSQL commit listener lost its connection; reconnecting"),
                    }
                    std::thread::sleep(Duration::from_millis(500));
                    if !wake(0) {
                        return;
                    }
                }
            })
            .map(|_| ())
            .map_err(|e| StoreError::Io(format!("cannot start the commit listener: {e}")))
    }
}

/// Listens until `wake` says stop (Ok) or the connection fails (Err: reconnect).
fn listen_once(
    config: &postgres::Config,
    wake: &dyn Fn(u64) -> bool,
) -> Result<(), postgres::Error> {
    let mut client = config.connect(NoTls)?;
    client.batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}"))?;
    let head: i64 = client.query_one("SELECT position FROM head", &[])?.get(0);
    if !wake(unpos(head)) {
        return Ok(());
    }
    loop {
        let mut notifications = client.notifications();
        // Wakes at least every second to notice that nobody listens any more.
        let mut it = notifications.timeout_iter(Duration::from_secs(1));
        while let Some(n) = it.next()? {
            if let Ok(p) = n.payload().parse::<u64>()
                && !wake(p)
            {
                return Ok(());
            }
        }
        if !wake(0) {
            return Ok(());
        }
    }
}
