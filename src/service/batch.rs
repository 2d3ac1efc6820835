//! Which queued requests share one commit: the writer takes the first request, then
//! everything queued behind it up to the batch limit, and once more what queued while
//! the store took its write lock; a batch of driver completions only waits a moment for
//! a client request to ride with; a writer idle for a moment after a commit is told so,
//! to let the store settle. Owns the writer's end of the queue; it never decides or
//! writes anything.

use tokio::sync::mpsc;

use super::{DRIVER_ORIGIN, Job};
use crate::limits::{BACKGROUND_LINGER, WRITER_IDLE};

/// The writer's end of the request queue, handing out one batch at a time.
pub(super) struct Batches {
    rx: mpsc::Receiver<Job>,
    limit: usize,
    /// Only for the linger's timer: the writer is a thread of its own, not a task. Without
    /// it (it could not be built) batches do not linger.
    timer: Option<tokio::runtime::Runtime>,
}

/// What the writer does next.
pub(super) enum Next {
    Batch(Vec<Job>),
    /// Nothing came for [`WRITER_IDLE`] after a commit.
    Idle,
    /// Every sender is gone.
    Closed,
}

impl Batches {
    pub(super) fn new(rx: mpsc::Receiver<Job>, limit: usize) -> Batches {
        let timer = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .ok();
        Batches { rx, limit, timer }
    }

    /// The next batch, blocking until there is a request, or [`Next::Idle`] when
    /// `committed` (since the writer last settled) and nothing comes for [`WRITER_IDLE`].
    /// A completion is queued the moment the request it completes is answered, so
    /// alone it would take a commit of its own and the client's next request would wait
    /// behind it; held up to [`BACKGROUND_LINGER`] it shares that request's commit.
    pub(super) fn next(&mut self, committed: bool) -> Next {
        let first = match (committed, &self.timer) {
            (true, Some(timer)) => {
                let rx = &mut self.rx;
                match timer.block_on(async { tokio::time::timeout(WRITER_IDLE, rx.recv()).await }) {
                    Err(_) => return Next::Idle,
                    Ok(job) => job,
                }
            }
            _ => self.rx.blocking_recv(),
        };
        let Some(first) = first else {
            return Next::Closed;
        };
        let mut jobs = vec![first];
        self.drain(&mut jobs);
        let background = jobs
            .iter()
            .all(|job| job.request.meta.origin == DRIVER_ORIGIN);
        if let (true, Some(timer)) = (background, &self.timer) {
            let rx = &mut self.rx;
            let next =
                timer.block_on(async { tokio::time::timeout(BACKGROUND_LINGER, rx.recv()).await });
            if let Ok(Some(job)) = next {
                jobs.push(job);
                self.drain(&mut jobs);
            }
        }
        Next::Batch(jobs)
    }

    /// How many requests wait behind the batch just taken.
    pub(super) fn queued(&self) -> usize {
        self.rx.len()
    }

    /// Adds what is queued now to the batch, up to its limit. The writer calls it again
    /// once the store holds its write lock, for what came while it waited.
    pub(super) fn drain(&mut self, jobs: &mut Vec<Job>) {
        while jobs.len() < self.limit {
            match self.rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
    }
}
