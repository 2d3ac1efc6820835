//! Which queued requests share one commit: the writer takes the first request, then
//! everything queued behind it up to the batch limit; a batch of driver completions only
//! waits a moment for a client request to ride with. Owns the writer's end of the queue;
//! it never decides or writes anything.

use tokio::sync::mpsc;

use super::{DRIVER_ORIGIN, Job};
use crate::limits::BACKGROUND_LINGER;

/// The writer's end of the request queue, handing out one batch at a time.
pub(super) struct Batches {
    rx: mpsc::Receiver<Job>,
    limit: usize,
    /// Only for the linger's timer: the writer is a thread of its own, not a task. Without
    /// it (it could not be built) batches do not linger.
    timer: Option<tokio::runtime::Runtime>,
}

impl Batches {
    pub(super) fn new(rx: mpsc::Receiver<Job>, limit: usize) -> Batches {
        let timer = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .ok();
        Batches { rx, limit, timer }
    }

    /// The next batch, blocking until there is a request; `None` once every sender is
    /// gone. A completion is queued the moment the request it completes is answered, so
    /// alone it would take a commit of its own and the client's next request would wait
    /// behind it; held up to [`BACKGROUND_LINGER`] it shares that request's commit.
    pub(super) fn next_batch(&mut self) -> Option<Vec<Job>> {
        let mut jobs = vec![self.rx.blocking_recv()?];
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
        Some(jobs)
    }

    /// How many requests wait behind the batch just taken.
    pub(super) fn queued(&self) -> usize {
        self.rx.len()
    }

    /// Adds what is queued now to the batch, up to its limit.
    fn drain(&mut self, jobs: &mut Vec<Job>) {
        while jobs.len() < self.limit {
            match self.rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
    }
}
