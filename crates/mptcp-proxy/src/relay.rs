//! Moving bytes between two connected sockets: splice through a pipe where the
//! kernel allows it, else a fixed-size copy; half-close carried; the first error
//! ends both directions.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use mptcp_metrics::prometheus::IntCounter;
use mptcp_net::MptcpExt;
use serde::Serialize;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::sys::{self, Pipe, SPLICE_CHUNK};

/// One end of a relayed connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The connection the proxy accepted.
    Client,
    /// The connection the proxy dialed.
    Upstream,
}

impl Side {
    /// `client` or `upstream`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Upstream => "upstream",
        }
    }
}

/// How a connection's bytes were moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RelayMode {
    /// splice(2) through a pipe, with [`Route::splice`](crate::Route::splice):
    /// the bulk of the bytes never entered user space (a direction's first,
    /// small bursts are copied; see the crate docs).
    Splice,
    /// read/write through a user-space buffer only: the default, and always
    /// when a side is an MPTCP socket or the kernel refuses splice.
    Copy,
    /// Some bytes spliced, some copied: one direction refused splice, or no
    /// pipe could be had for a while (descriptors ran out).
    Mixed,
}

impl RelayMode {
    /// `splice`, `copy` or `mixed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RelayMode::Splice => "splice",
            RelayMode::Copy => "copy",
            RelayMode::Mixed => "mixed",
        }
    }
}

// Bits: what a direction has done so far.
const MODE_SPLICE: u8 = 1;
const MODE_COPY: u8 = 2;
/// Copied because splice was refused or no pipe could be had.
const MODE_FALLBACK: u8 = 4;

/// The relay's view of one direction: its byte count and how it moved them.
#[derive(Debug, Default)]
pub(crate) struct Direction {
    pub(crate) bytes: AtomicU64,
    mode: AtomicU8,
    /// This direction read end of stream from its source.
    eof: AtomicBool,
    /// This direction reached end of stream and passed it on.
    done: AtomicBool,
    /// The most subflows (1 + the extra ones) [`Way::await_delivery`] saw on the
    /// destination; 0 when it did not look. The record's subflow sample at the
    /// first end of stream takes it instead of asking again.
    dst_subflows: AtomicU32,
}

impl Direction {
    /// The destination's subflow count read while holding back its end of
    /// stream, if this direction did.
    pub(crate) fn dst_subflows_seen(&self) -> Option<u32> {
        Some(self.dst_subflows.load(Ordering::Relaxed)).filter(|&n| n > 0)
    }
}

/// What two directions amount to.
pub(crate) fn relay_mode(a: &Direction, b: &Direction) -> Option<RelayMode> {
    let modes = a.mode.load(Ordering::Relaxed) | b.mode.load(Ordering::Relaxed);
    if modes & MODE_SPLICE != 0 {
        // Small bursts copied before the splicing began do not make it mixed.
        if modes & MODE_FALLBACK != 0 {
            Some(RelayMode::Mixed)
        } else {
            Some(RelayMode::Splice)
        }
    } else if modes & MODE_COPY != 0 {
        Some(RelayMode::Copy)
    } else {
        None
    }
}

/// When a byte last moved, for the idle timeout; and the wake-up of a watchdog
/// that dozes through a quiet connection (see [`Activity::doze`]).
#[derive(Debug)]
pub(crate) struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    /// Set while the watchdog sleeps past its usual tick: the next transfer wakes it.
    dozing: AtomicBool,
    wake: Notify,
    /// How many times the watchdog woke (tests).
    #[cfg(test)]
    pub(crate) naps: std::sync::atomic::AtomicU32,
}

impl Activity {
    pub(crate) fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            dozing: AtomicBool::new(false),
            wake: Notify::new(),
            #[cfg(test)]
            naps: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// A transfer: records its time, and wakes a dozing watchdog. SeqCst on both
    /// atomics (here and in `doze`): either the watchdog sees this time before it
    /// sleeps, or this sees it dozing and wakes it.
    pub(crate) fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::SeqCst);
        if self.dozing.load(Ordering::SeqCst) && self.dozing.swap(false, Ordering::SeqCst) {
            self.wake.notify_one();
        }
    }

    /// Sleeps until `until` (`None`: until woken), or until the next transfer
    /// when none happened since `seen` (the time of the last one the watchdog
    /// saw); returns at once when one did. An idle connection then costs its
    /// watchdog no wake-up a second, only those its idle timeout needs.
    pub(crate) async fn doze(&self, seen: Instant, until: Option<Instant>) {
        let woken = self.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        self.dozing.store(true, Ordering::SeqCst);
        if self.last() != seen {
            self.dozing.store(false, Ordering::SeqCst);
            return;
        }
        match until {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at.into()) => {}
                    () = &mut woken => {}
                }
            }
            None => woken.await,
        }
        self.dozing.store(false, Ordering::SeqCst);
    }

    /// The instant of the last transfer (or of the start).
    pub(crate) fn last(&self) -> Instant {
        self.start + std::time::Duration::from_millis(self.last_ms.load(Ordering::SeqCst))
    }
}

/// The socket that failed, and how.
#[derive(Debug)]
pub(crate) struct RelayError {
    pub(crate) side: Side,
    pub(crate) error: io::Error,
}

/// What one direction needs.
pub(crate) struct Way<'a> {
    pub(crate) src: &'a TcpStream,
    pub(crate) dst: &'a TcpStream,
    pub(crate) src_side: Side,
    pub(crate) dst_side: Side,
    pub(crate) stats: &'a Direction,
    /// The opposite direction.
    pub(crate) other: &'a Direction,
    pub(crate) counter: &'a IntCounter,
    pub(crate) activity: &'a Activity,
    pub(crate) copy_buffer: usize,
    pub(crate) bulk_buffer: usize,
    pub(crate) try_splice: bool,
    /// `dst` is an MPTCP connection (not fallen back): its end of stream waits
    /// until the peer acknowledged the bytes before it ([`Way::await_delivery`]).
    pub(crate) dst_mptcp: bool,
}

/// The longest a direction holds back its end of stream from an MPTCP peer that
/// has not acknowledged the bytes before it (then it is passed on all the same):
/// the kernel's longest retransmission timeout.
const DELIVERY_WAIT_CAP: Duration = Duration::from_secs(120);

/// The shortest and longest pauses between two looks at what an MPTCP peer
/// acknowledged while acknowledgements come in, and the longest while none do.
const DELIVERY_POLL_MIN: Duration = Duration::from_millis(1);
const DELIVERY_POLL_MAX: Duration = Duration::from_millis(250);
const DELIVERY_STALL_POLL_MAX: Duration = Duration::from_secs(1);

impl Way<'_> {
    fn src_err(&self, error: io::Error) -> RelayError {
        RelayError {
            side: self.src_side,
            error,
        }
    }

    fn dst_err(&self, error: io::Error) -> RelayError {
        RelayError {
            side: self.dst_side,
            error,
        }
    }

    /// Bytes written to the destination (an MPTCP connection) that its peer has
    /// not acknowledged at the data level, noting its subflows as it goes;
    /// `None` when `MPTCP_INFO` cannot be read (a fallen-back or closed
    /// connection).
    fn unacknowledged(&self) -> Option<u64> {
        let info = self.dst.mptcp_info().ok()??;
        self.stats
            .dst_subflows
            .fetch_max(u32::from(info.subflows) + 1, Ordering::Relaxed);
        Some(info.bytes_unacked())
    }

    fn moved(&self, n: usize) {
        self.stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
        self.counter.inc_by(n as u64);
        self.activity.touch();
    }

    /// Relays until end of stream from `src`, then shuts down `dst`'s write side.
    ///
    /// Each wake-up moves bytes until the source has no more (a burst); a buffer
    /// (copy) or a pipe (splice) is held only during a burst, so an idle
    /// direction holds neither. A direction copies through its `copy_buffer`
    /// until one read fills it: from then on it is a bulk transfer, and each
    /// burst copies through a `bulk_buffer` (while the process-wide bulk budget
    /// has room), or splices when splice is on. Fewer, larger reads and writes
    /// are what MPTCP sockets need most: each `recvmsg` and `sendmsg` on one has a
    /// high fixed cost.
    pub(crate) async fn run(self) -> Result<(), RelayError> {
        let mut splice = self.try_splice;
        let mut bulk = false;
        loop {
            self.src.readable().await.map_err(|e| self.src_err(e))?;
            if splice && bulk {
                match sys::take_pipe() {
                    Ok(pipe) => match self.splice_burst(&pipe).await? {
                        Burst::Eof => {
                            sys::give_pipe(pipe);
                            break;
                        }
                        Burst::Idle | Burst::Bulk => {
                            sys::give_pipe(pipe);
                            continue;
                        }
                        Burst::Unsupported(pending) => {
                            // The pipe is empty again: its bytes are in `pending`.
                            sys::give_pipe(pipe);
                            splice = false;
                            self.stats.mode.fetch_or(MODE_FALLBACK, Ordering::Relaxed);
                            self.write_all(&pending).await?;
                        }
                    },
                    // EMFILE and friends: this burst is copied.
                    Err(e) => {
                        tracing::debug!("no pipe for splice ({e}); copying");
                        self.stats.mode.fetch_or(MODE_FALLBACK, Ordering::Relaxed);
                    }
                }
            }
            let buf = if bulk && self.bulk_buffer > self.copy_buffer {
                sys::take_bulk_buffer(self.bulk_buffer)
            } else {
                None
            };
            let buf = buf.unwrap_or_else(|| sys::take_buffer(self.copy_buffer));
            match self.copy_burst(buf, !bulk).await? {
                Burst::Eof => break,
                Burst::Bulk => bulk = true,
                _ => {}
            }
        }
        self.stats.eof.store(true, Ordering::Release);
        self.await_delivery().await;
        self.stats.done.store(true, Ordering::Release);
        if self.other.done.load(Ordering::Acquire) {
            // Both ways are finished and both sockets are about to be closed,
            // which sends the FIN anyway: one system call fewer per connection.
            return Ok(());
        }
        sys::shutdown_write(self.dst).map_err(|e| self.dst_err(e))
    }

    /// Before an MPTCP connection's end of stream (our DATA_FIN, by `shutdown`
    /// or `close`): waits until the peer acknowledged every byte written to it,
    /// or [`DELIVERY_WAIT_CAP`]. The kernel (6.18 included) takes new subflows
    /// only while an MPTCP connection is established both ways: once this side
    /// has sent its DATA_FIN it neither accepts an MP_JOIN (the join's third ACK
    /// is refused) nor opens one, and it closes the connection as
    /// soon as its last subflow goes. So bytes written just before the FIN, over
    /// a path that failed meanwhile, could reach the peer only if that very path
    /// came back: the connection could not be repaired over another one, which
    /// is what MPTCP is for (the chaos soak's "failed after a blackout": an
    /// answer and the FIN behind it stranded for a minute while the client's
    /// new subflows were refused; `perf/proxy/data_fin_join.sh`). Held back until the bytes are acknowledged,
    /// the FIN costs one round trip more; a connection whose paths are all gone
    /// waits here until the idle timeout (the watchdog) or the cap ends it.
    async fn await_delivery(&self) {
        if !self.dst_mptcp || self.stats.bytes.load(Ordering::Relaxed) == 0 {
            // Nothing relayed this way: nothing worth a system call (a
            // handshake reply written before the relay began is not waited for).
            return;
        }
        // The other direction read end of stream from our destination: that
        // peer sent its DATA_FIN, so its connection takes no new subflow
        // whatever we do; holding ours back would only delay the close. (The
        // second direction to end never waits: one look a connection.)
        let peer_done = || self.other.eof.load(Ordering::Acquire);
        if peer_done() {
            return;
        }
        let Some(mut left) = self.unacknowledged().filter(|&n| n > 0) else {
            return;
        };
        let start = Instant::now();
        let mut looked = start;
        let mut pause = DELIVERY_POLL_MIN;
        loop {
            if start.elapsed() >= DELIVERY_WAIT_CAP {
                tracing::debug!(
                    "the {} had not acknowledged {left} bytes after {DELIVERY_WAIT_CAP:?}; ending the stream all the same",
                    self.dst_side.as_str()
                );
                return;
            }
            tokio::time::sleep(pause).await;
            let now = Instant::now();
            if peer_done() {
                return;
            }
            let Some(n) = self.unacknowledged().filter(|&n| n > 0) else {
                return;
            };
            pause = if n < left {
                // Acknowledgements come in: look again about when, at this
                // pace, the last byte is in (a bulk upload's FIN is not held
                // back much longer than its bytes took).
                let estimate = (now - looked).mul_f64(n as f64 / (left - n) as f64);
                estimate.clamp(DELIVERY_POLL_MIN, DELIVERY_POLL_MAX)
            } else {
                // Nothing moves (a path failed): look less and less often.
                (pause * 2).clamp(DELIVERY_POLL_MIN, DELIVERY_STALL_POLL_MAX)
            };
            (left, looked) = (n, now);
        }
    }

    fn spliced_before(&self) -> bool {
        self.stats.mode.load(Ordering::Relaxed) & MODE_SPLICE != 0
    }

    /// Splices until the source would block or ends.
    async fn splice_burst(&self, pipe: &Pipe) -> Result<Burst, RelayError> {
        loop {
            let n = match self.src.try_io(Interest::READABLE, || {
                sys::splice_in(self.src, pipe, SPLICE_CHUNK)
            }) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Burst::Idle),
                Err(e) if !self.spliced_before() && sys::splice_unsupported(&e) => {
                    tracing::debug!(
                        "splice from the {} refused ({e}); copying",
                        self.src_side.as_str()
                    );
                    return Ok(Burst::Unsupported(Vec::new()));
                }
                Err(e) => return Err(self.src_err(e)),
            };
            if n == 0 {
                return Ok(Burst::Eof);
            }
            let mut left = n;
            while left > 0 {
                self.dst.writable().await.map_err(|e| self.dst_err(e))?;
                match self
                    .dst
                    .try_io(Interest::WRITABLE, || sys::splice_out(pipe, self.dst, left))
                {
                    Ok(m) => {
                        left -= m;
                        self.moved(m);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) if !self.spliced_before() && sys::splice_unsupported(&e) => {
                        // The bytes are in the pipe: take them out to copy them.
                        let mut buf = vec![0; left];
                        let mut got = 0;
                        while got < left {
                            match sys::read_pipe(pipe, &mut buf[got..]) {
                                Ok(0) => break,
                                Ok(m) => got += m,
                                Err(e) => return Err(self.src_err(e)),
                            }
                        }
                        buf.truncate(got);
                        return Ok(Burst::Unsupported(buf));
                    }
                    Err(e) => return Err(self.dst_err(e)),
                }
            }
            self.stats.mode.fetch_or(MODE_SPLICE, Ordering::Relaxed);
        }
    }

    async fn write_all(&self, mut data: &[u8]) -> Result<(), RelayError> {
        while !data.is_empty() {
            self.dst.writable().await.map_err(|e| self.dst_err(e))?;
            match self.dst.try_write(data) {
                Ok(m) => {
                    data = &data[m..];
                    self.moved(m);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(self.dst_err(e)),
            }
        }
        Ok(())
    }

    /// Copies until the source would block or ends, through a buffer that lives
    /// as long as the burst; with `watch_bulk`, stops after a read that filled
    /// the buffer ([`Burst::Bulk`]).
    async fn copy_burst(
        &self,
        mut buf: sys::PooledBuffer,
        watch_bulk: bool,
    ) -> Result<Burst, RelayError> {
        loop {
            // A read that fills less than the buffer has drained the socket: say
            // WouldBlock to tokio so that it clears the readiness now, sparing the
            // read that would only return EAGAIN. (tokio's own reads do the same;
            // the readiness tick keeps a wake-up that came meanwhile, and a
            // closed read side is never cleared.) Not done for splice: a pipe
            // can fill before the socket is drained.
            let mut drained = 0;
            let read = self.src.try_io(Interest::READABLE, || {
                let n = sys::read(self.src, &mut buf)?;
                if n > 0 && n < buf.len() {
                    drained = n;
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(n)
            });
            let (n, idle) = match read {
                Ok(0) => return Ok(Burst::Eof),
                Ok(n) => (n, false),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && drained > 0 => (drained, true),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Burst::Idle),
                Err(e) => return Err(self.src_err(e)),
            };
            self.stats.mode.fetch_or(MODE_COPY, Ordering::Relaxed);
            self.write_all(&buf[..n]).await?;
            if idle {
                return Ok(Burst::Idle);
            }
            if watch_bulk && n == buf.len() {
                // The readiness is still set: the caller splices the rest.
                return Ok(Burst::Bulk);
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Burst {
    /// End of stream from the source.
    Eof,
    /// The source has nothing more for now.
    Idle,
    /// A read filled the copy buffer: a bulk transfer, worth splicing.
    Bulk,
    /// splice was refused before this direction ever spliced; the bytes
    /// already taken from the source are here, to be written first.
    Unsupported(Vec<u8>),
}
