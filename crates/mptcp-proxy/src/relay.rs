//! Moving bytes between two connected sockets: splice through a pipe where the
//! kernel allows it, else a fixed-size copy; half-close carried; the first error
//! ends both directions.

use std::io;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use serde::Serialize;
use tokio::io::Interest;
use tokio::net::TcpStream;

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
    /// splice(2) through a pipe, both ways (the bytes never entered user space).
    Splice,
    /// read/write through a user-space buffer, both ways.
    Copy,
    /// One direction spliced, the other copied.
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

const MODE_SPLICE: u8 = 1;
const MODE_COPY: u8 = 2;

/// The relay's view of one direction: its byte count and how it moved them.
#[derive(Debug, Default)]
pub(crate) struct Direction {
    pub(crate) bytes: AtomicU64,
    mode: AtomicU8,
}

/// What two directions amount to.
pub(crate) fn relay_mode(a: &Direction, b: &Direction) -> Option<RelayMode> {
    let modes = [
        a.mode.load(Ordering::Relaxed),
        b.mode.load(Ordering::Relaxed),
    ];
    let splice = modes.contains(&MODE_SPLICE);
    let copy = modes.contains(&MODE_COPY);
    match (splice, copy) {
        (true, true) => Some(RelayMode::Mixed),
        (true, false) => Some(RelayMode::Splice),
        (false, true) => Some(RelayMode::Copy),
        (false, false) => None,
    }
}

/// When a byte last moved, for the idle timeout.
#[derive(Debug)]
pub(crate) struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// The instant of the last transfer (or of the start).
    pub(crate) fn last(&self) -> Instant {
        self.start + std::time::Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
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
    pub(crate) counter: &'a Counter,
    pub(crate) activity: &'a Activity,
    pub(crate) copy_buffer: usize,
    pub(crate) try_splice: bool,
}

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

    fn moved(&self, n: usize) {
        self.stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
        self.counter.inc_by(n as u64);
        self.activity.touch();
    }

    /// Relays until end of stream from `src`, then shuts down `dst`'s write side.
    pub(crate) async fn run(self) -> Result<(), RelayError> {
        // Nothing is allocated, and no pipe opened, until the first byte is
        // there: an idle connection costs two sockets and its task.
        self.src.readable().await.map_err(|e| self.src_err(e))?;
        let mut pending = Vec::new();
        let mut spliced = false;
        if self.try_splice {
            match Pipe::new() {
                Ok(pipe) => match self.splice(&pipe).await? {
                    SpliceEnd::Eof => spliced = true,
                    SpliceEnd::Unsupported(left) => pending = left,
                },
                // EMFILE and friends: this direction copies instead.
                Err(e) => tracing::debug!("no pipe for splice ({e}); copying"),
            }
        }
        if !spliced {
            self.stats.mode.store(MODE_COPY, Ordering::Relaxed);
            self.copy(pending).await?;
        }
        sys::shutdown_write(self.dst).map_err(|e| self.dst_err(e))
    }

    async fn splice(&self, pipe: &Pipe) -> Result<SpliceEnd, RelayError> {
        let mut first = true;
        loop {
            let n = loop {
                self.src.readable().await.map_err(|e| self.src_err(e))?;
                match self.src.try_io(Interest::READABLE, || {
                    sys::splice_in(self.src, pipe, SPLICE_CHUNK)
                }) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) if first && sys::splice_unsupported(&e) => {
                        tracing::debug!(
                            "splice from the {} refused ({e}); copying",
                            self.src_side.as_str()
                        );
                        return Ok(SpliceEnd::Unsupported(Vec::new()));
                    }
                    Err(e) => return Err(self.src_err(e)),
                }
            };
            if n == 0 {
                if first {
                    self.stats.mode.store(MODE_SPLICE, Ordering::Relaxed);
                }
                return Ok(SpliceEnd::Eof);
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
                    Err(e) if first && sys::splice_unsupported(&e) => {
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
                        return Ok(SpliceEnd::Unsupported(buf));
                    }
                    Err(e) => return Err(self.dst_err(e)),
                }
            }
            if first {
                self.stats.mode.store(MODE_SPLICE, Ordering::Relaxed);
                first = false;
            }
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

    async fn copy(&self, pending: Vec<u8>) -> Result<(), RelayError> {
        self.write_all(&pending).await?;
        drop(pending);
        let mut buf = vec![0u8; self.copy_buffer];
        loop {
            self.src.readable().await.map_err(|e| self.src_err(e))?;
            let n = match self.src.try_read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(self.src_err(e)),
            };
            self.write_all(&buf[..n]).await?;
        }
    }
}

enum SpliceEnd {
    Eof,
    /// splice was refused before any byte was spliced out; the bytes already
    /// taken from the source are here, to be written first.
    Unsupported(Vec<u8>),
}
