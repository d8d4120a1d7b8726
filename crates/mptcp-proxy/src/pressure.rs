//! Running out of descriptors (or socket memory), shared by every route of a
//! proxy: the accept loops pause while it lasts, dials wait for a descriptor
//! instead of failing the client at once, and the log says so once per burst.
//!
//! A freed descriptor goes to a waiting dial before a new client: the accept
//! loops do not accept while any dial waits. Otherwise accepted clients would take
//! every descriptor a dial needs, and hold them until the connect timeout.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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
    /// Dials waiting for a descriptor.
    dials_waiting: AtomicUsize,
    freed: Notify,
}

impl Default for Pressure {
    fn default() -> Self {
        Pressure {
            start: Instant::now(),
            raised: AtomicBool::new(false),
            last_hit_ms: AtomicU64::new(0),
            burst: AtomicU64::new(0),
            dials_waiting: AtomicUsize::new(0),
            freed: Notify::new(),
        }
    }
}

impl Pressure {
    /// `accept` or a dial failed for lack of descriptors or memory.
    pub(crate) fn hit(&self, what: &str, e: &io::Error) {
        self.raised.store(true, Ordering::Relaxed);
        crate::sys::drain_pipe_pool();
        let now = self.start.elapsed().as_millis() as u64 + 1;
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

    /// A connection closed: its descriptors are free.
    pub(crate) fn freed(&self) {
        self.raised.store(false, Ordering::Relaxed);
        self.freed.notify_waiters();
    }

    /// Whether new clients should wait: descriptors ran out, or a dial waits
    /// for one.
    pub(crate) fn hold_accepts(&self) -> bool {
        self.raised.load(Ordering::Relaxed) || self.dials_waiting.load(Ordering::Relaxed) > 0
    }

    /// Waits until a connection closes, or `backoff` passes.
    pub(crate) async fn wait(&self, backoff: Duration) {
        tokio::select! {
            () = self.freed.notified() => {}
            () = tokio::time::sleep(backoff) => {}
        }
    }

    /// A dial waits (for a descriptor) until `backoff` passes or a connection
    /// closes; meanwhile no client is accepted.
    pub(crate) async fn wait_to_dial(&self, backoff: Duration) {
        self.dials_waiting.fetch_add(1, Ordering::Relaxed);
        let _done = WaitingDial(&self.dials_waiting);
        self.wait(backoff).await;
    }
}

/// Counts a waiting dial out, also when its future is dropped.
struct WaitingDial<'a>(&'a AtomicUsize);

impl Drop for WaitingDial<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
