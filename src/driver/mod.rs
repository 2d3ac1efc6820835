//! Drivers complete requested transitions (`*Requested` -> `Started`, `Stopped`, ...)
//! through the same writer as every other command. The simulated driver is the default.

pub mod simulated;

use tokio::sync::mpsc;

use crate::domain::lifecycle::State;
use crate::projection::Filter;
use crate::service::{Ledger, Pending, ServiceError};

/// Finds instances left in a transitional state (e.g. by a restart) and queues them for
/// the driver again.
pub fn resume(ledger: &Ledger, tx: &mpsc::UnboundedSender<Pending>) -> Result<usize, ServiceError> {
    let snap = ledger.store().read()?;
    let mut found = 0;
    for state in State::ALL.into_iter().filter(|s| s.is_transitional()) {
        let key = Filter::State(state).index_key();
        let mut after = None;
        loop {
            let page = snap.page(std::slice::from_ref(&key), after, 1000)?;
            for id in &page.ids {
                if let Some(inst) = snap.instance(*id)? {
                    found += 1;
                    let _ = tx.send(Pending {
                        id: inst.id,
                        version: inst.version,
                    });
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    Ok(found)
}
