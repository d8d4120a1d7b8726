//! The backend's side: queue operations, build signed datagrams.

use std::io;
use std::net::IpAddr;

use super::wire::{self, Message, Op, DEFAULT_MAX_DATAGRAM, MAX_DATAGRAM};
use super::Key;

/// Builds a backend's registry messages.
///
/// Sans-I/O: queue operations with [`add`](Publisher::add),
/// [`remove`](Publisher::remove) and [`reset`](Publisher::reset), then
/// [`flush`](Publisher::flush) them into datagrams. Each datagram carries as
/// many operations as fit in the datagram bound, in queue order, and a
/// sequence number one above the previous; the timestamp never goes back
/// within one `Publisher`, even when the wall clock does.
#[derive(Debug)]
pub struct Publisher {
    key: Key,
    backend: IpAddr,
    max_datagram: usize,
    seq: u64,
    last_ms: u64,
    queue: Vec<Op>,
}

impl Publisher {
    /// A publisher speaking for `backend` (the address the balancer knows it
    /// by), with datagrams of at most [`DEFAULT_MAX_DATAGRAM`] bytes.
    pub fn new(key: Key, backend: IpAddr) -> Self {
        Publisher {
            key,
            backend,
            max_datagram: DEFAULT_MAX_DATAGRAM,
            seq: 0,
            last_ms: 0,
            queue: Vec::new(),
        }
    }

    /// Sets the datagram bound. Fails with `InvalidInput` when not even one
    /// operation fits or it is above the UDP limit.
    pub fn with_max_datagram(mut self, bytes: usize) -> io::Result<Self> {
        if bytes > MAX_DATAGRAM || wire::ops_per_datagram(&self.backend, bytes) == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "registry datagram bound {bytes} bytes: must hold one operation ({} bytes for {}) and stay within {MAX_DATAGRAM}",
                    wire::header_len(&self.backend) + wire::OP_LEN + wire::MAC_LEN,
                    self.backend
                ),
            ));
        }
        self.max_datagram = bytes;
        Ok(self)
    }

    /// The backend this publisher speaks for.
    pub fn backend(&self) -> IpAddr {
        self.backend
    }

    /// Operations one datagram carries.
    pub fn ops_per_datagram(&self) -> usize {
        wire::ops_per_datagram(&self.backend, self.max_datagram)
    }

    /// Queues "this backend owns `token`".
    pub fn add(&mut self, token: u32) {
        self.queue.push(Op::Add(token));
    }

    /// Queues "this backend no longer owns `token`".
    pub fn remove(&mut self, token: u32) {
        self.queue.push(Op::Remove(token));
    }

    /// Queues "forget all my tokens". Operations queued before it are
    /// dropped: the reset would undo them anyway.
    pub fn reset(&mut self) {
        self.queue.clear();
        self.queue.push(Op::Reset);
    }

    /// Queues a full snapshot: `Reset` followed by `Add` of every token,
    /// what a daemon sends when it starts.
    pub fn snapshot(&mut self, tokens: impl IntoIterator<Item = u32>) {
        self.reset();
        self.queue.extend(tokens.into_iter().map(Op::Add));
    }

    /// Operations waiting for [`flush`](Publisher::flush).
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// The last sequence number used (0 before the first datagram).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Turns the queue into signed datagrams, stamped `now_ms` (Unix
    /// milliseconds; the previous stamp if the clock went back). Empty queue,
    /// no datagram.
    pub fn flush(&mut self, now_ms: u64) -> Vec<Vec<u8>> {
        let per = self.ops_per_datagram().max(1);
        let ops = std::mem::take(&mut self.queue);
        ops.chunks(per)
            .map(|chunk| self.seal(chunk.to_vec(), now_ms))
            .collect()
    }

    /// One signed datagram with no operation: tells the receiver this
    /// backend is alive without changing anything.
    pub fn heartbeat(&mut self, now_ms: u64) -> Vec<u8> {
        self.seal(Vec::new(), now_ms)
    }

    fn seal(&mut self, ops: Vec<Op>, now_ms: u64) -> Vec<u8> {
        self.seq += 1;
        self.last_ms = self.last_ms.max(now_ms);
        wire::encode(
            &Message {
                backend: self.backend,
                timestamp_ms: self.last_ms,
                seq: self.seq,
                ops,
            },
            &self.key,
        )
    }
}
