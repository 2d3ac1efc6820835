//! The node's read connections: a pool bounded at [`POSTGRES_READERS`], so a burst of
//! requests waits a moment for a connection instead of opening (and, past the idle
//! ones, closing again) one PostgreSQL backend per request, and several nodes stay
//! within the server's connection limit. Every reader connection carries a [`Permit`]
//! that frees its slot when the connection is dropped, whichever way that happens.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::Conn;
use crate::limits::POSTGRES_READERS;
use crate::store::StoreError;

/// How long a caller waits for a free connection before opening one past the bound: a
/// soft bound, so code that holds one snapshot while taking another cannot deadlock.
const WAIT_FOR_READER: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(super) struct ReaderPool {
    state: Mutex<State>,
    freed: Condvar,
}

#[derive(Default)]
struct State {
    idle: Vec<Conn>,
    /// Reader connections open now, idle or in use.
    open: usize,
}

/// One slot of the pool, held by an open reader connection.
pub(super) struct Permit {
    pool: Arc<ReaderPool>,
    /// False once the pool freed the slot itself.
    armed: bool,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(mut state) = self.pool.state.lock() {
            state.open = state.open.saturating_sub(1);
        }
        self.pool.freed.notify_one();
    }
}

/// What [`ReaderPool::take`] found.
pub(super) enum Taken {
    Idle(Box<Conn>),
    /// A slot for a new connection; the caller opens it.
    Open(Permit),
}

fn lock(pool: &ReaderPool) -> Result<MutexGuard<'_, State>, StoreError> {
    pool.state
        .lock()
        .map_err(|_| StoreError::Io("the reader pool's lock is poisoned".into()))
}

impl ReaderPool {
    /// An idle connection that is still open (with `reuse`), else a slot for a new one,
    /// waiting up to [`WAIT_FOR_READER`] for either.
    pub(super) fn take(self: &Arc<Self>, reuse: bool) -> Result<Taken, StoreError> {
        let mut dead = Vec::new();
        let taken = {
            let mut state = lock(self)?;
            let mut waited = false;
            loop {
                if reuse && let Some(mut conn) = state.idle.pop() {
                    if conn.client.is_closed() {
                        // Freed here; the connection itself is dropped outside the lock.
                        if let Some(permit) = conn.permit.as_mut() {
                            permit.armed = false;
                        }
                        state.open = state.open.saturating_sub(1);
                        dead.push(conn);
                        continue;
                    }
                    break Taken::Idle(Box::new(conn));
                }
                if state.open < POSTGRES_READERS || waited {
                    state.open += 1;
                    break Taken::Open(Permit {
                        pool: self.clone(),
                        armed: true,
                    });
                }
                let (next, timeout) = self
                    .freed
                    .wait_timeout(state, WAIT_FOR_READER)
                    .map_err(|_| StoreError::Io("the reader pool's lock is poisoned".into()))?;
                state = next;
                waited = timeout.timed_out();
            }
        };
        drop(dead);
        Ok(taken)
    }

    /// Returns a connection for reuse (a closed one just frees its slot).
    pub(super) fn give_back(&self, conn: Conn) {
        if conn.client.is_closed() {
            return;
        }
        if let Ok(mut state) = lock(self) {
            state.idle.push(conn);
        }
        self.freed.notify_one();
    }
}
