//! Running out of descriptors (or socket memory), shared by every route of a
//! proxy: the accept loops pause while it lasts, dials wait for a descriptor
//! instead of failing the client at once, and the log says so once per burst.
//!
//! A connection needs two descriptors, and the second (the dial) comes after the
//! first (the accept). With many clients waiting in the backlog, an accept loop
//! left alone would accept until no descriptor is left, and every accepted client
//! would then wait for a dial that cannot get one, until the connect timeout. So
//! during a burst of failures the accept loops take one client at a time: the
//! next accept waits until every accepted client has its upstream (or has
//! failed), and a freed descriptor goes to a waiting dial before a new client.
//! A dial waits for a descriptor only while some relayed connection may free
//! one; when all are held by clients waiting for their own dials, it fails at
//! once (the client is reset) rather than at the connect timeout.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Failures further apart than this belong to different bursts.
const BURST_GAP: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct Pressure {
    start: Instant,
    raised: AtomicBool,
    /// Milliseconds since `start` of the last failure, plus one (0: none yet).
    last_hit_ms: AtomicU64,
    /// Failures in the current burst.
    burst: AtomicU64,
    /// Accepted connections whose dial has not finished.
    dialing: AtomicUsize,
    /// Connections past their dial, not closed yet.
    relaying: AtomicUsize,
    /// A connection closed, or a dial finished.
    progress: Notify,
}

impl Default for Pressure {
    fn default() -> Self {
        Pressure {
            start: Instant::now(),
            raised: AtomicBool::new(false),
            last_hit_ms: AtomicU64::new(0),
            burst: AtomicU64::new(0),
            dialing: AtomicUsize::new(0),
            relaying: AtomicUsize::new(0),
            progress: Notify::new(),
        }
    }
}

impl Pressure {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64 + 1
    }

    /// `accept` or a dial failed for lack of descriptors or memory.
    pub(crate) fn hit(&self, what: &str, e: &io::Error) {
        self.raised.store(true, Ordering::Relaxed);
        crate::sys::drain_pipe_pool();
        let now = self.now_ms();
        let last = self.last_hit_ms.swap(now, Ordering::Relaxed);
        if last == 0 || now - last > BURST_GAP.as_millis() as u64 {
            let previous = self.burst.swap(1, Ordering::Relaxed);
            let before = if previous > 0 {
                format!(" (the previous burst had {previous} failures)")
            } else {
                String::new()
            };
            tracing::warn!(
                "{what}: {e}; pausing accepts until descriptors free up; \
                 said once per burst{before}"
            );
        } else {
            self.burst.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether a failure happened less than [`BURST_GAP`] ago.
    fn in_burst(&self) -> bool {
        let last = self.last_hit_ms.load(Ordering::Relaxed);
        last != 0 && self.now_ms() - last <= BURST_GAP.as_millis() as u64
    }

    /// A connection closed: its descriptors are free.
    pub(crate) fn freed(&self) {
        self.raised.store(false, Ordering::Relaxed);
        self.progress.notify_waiters();
    }

    /// Whether the next client should wait: descriptors ran out, or, during a
    /// burst, an accepted client still waits for its upstream.
    pub(crate) fn hold_accepts(&self) -> bool {
        self.raised.load(Ordering::Relaxed)
            || (self.in_burst() && self.dialing.load(Ordering::Relaxed) > 0)
    }

    /// Waits until a connection closes or a dial finishes, or `backoff` passes.
    pub(crate) async fn wait(&self, backoff: Duration) {
        tokio::select! {
            () = self.progress.notified() => {}
            () = tokio::time::sleep(backoff) => {}
        }
    }

    /// Whether a dial that found no descriptor should wait for one: only if
    /// some relayed connection may close and free one. Otherwise every
    /// descriptor is held by clients waiting for their own dials, and waiting
    /// would only last until the connect timeout.
    pub(crate) fn worth_waiting(&self) -> bool {
        self.relaying.load(Ordering::Relaxed) > 0
    }

    /// Counts a connection as relayed until the guard is dropped.
    pub(crate) fn relaying(self: &Arc<Self>) -> Relaying {
        self.relaying.fetch_add(1, Ordering::Relaxed);
        Relaying(Arc::clone(self))
    }

    /// Counts an accepted connection as dialing until the guard is dropped.
    pub(crate) fn dialing(self: &Arc<Self>) -> Dialing {
        self.dialing.fetch_add(1, Ordering::Relaxed);
        Dialing(Arc::clone(self))
    }
}

/// An accepted connection whose dial has not finished (see [`Pressure::dialing`]).
#[derive(Debug)]
pub(crate) struct Dialing(Arc<Pressure>);

impl Drop for Dialing {
    fn drop(&mut self) {
        self.0.dialing.fetch_sub(1, Ordering::Relaxed);
        self.0.progress.notify_waiters();
    }
}

/// A connection past its dial (see [`Pressure::relaying`]).
#[derive(Debug)]
pub(crate) struct Relaying(Arc<Pressure>);

impl Drop for Relaying {
    fn drop(&mut self) {
        self.0.relaying.fetch_sub(1, Ordering::Relaxed);
    }
}
