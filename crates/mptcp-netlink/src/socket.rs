//! The blocking netlink socket: sends a framed request ([`Op`]), feeds what comes back
//! to the sans-I/O [`Exchange`], and bounds every wait. The async driver
//! (`crate::asynk`) shares [`configure`], [`next_seq`] and [`recv_error`].

use std::io;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use crate::codec::framing::{Exchange, Op};
use crate::Error;

/// How long a request may wait for its answer: the kernel answers at once, so this only
/// bounds a wait that would otherwise never end.
pub(crate) const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// A netlink socket of the calling thread's network namespace, blocking, with a bound on
/// every wait.
#[derive(Debug)]
pub(crate) struct NlSocket {
    sock: netlink_sys::Socket,
    seq: u32,
}

impl NlSocket {
    /// Opens and binds a socket of `protocol` (`NETLINK_GENERIC`, `NETLINK_SOCK_DIAG`).
    pub fn open(protocol: isize) -> Result<Self, Error> {
        let mut sock = netlink_sys::Socket::new(protocol)
            .map_err(|e| Error::io("cannot open a netlink socket", e))?;
        configure(&mut sock)?;
        Ok(NlSocket { sock, seq: 0 })
    }

    pub fn socket(&self) -> &netlink_sys::Socket {
        &self.sock
    }

    pub fn next_seq(&mut self) -> u32 {
        next_seq(&mut self.seq)
    }

    /// Sends `op` and waits, at most [`REPLY_TIMEOUT`] in all, for its answer.
    pub fn run<R>(&mut self, mut op: Op<R>) -> Result<R, Error> {
        let seq = self.next_seq();
        op.set_seq(seq);
        self.sock
            .send(&op.request, 0)
            .map_err(|e| Error::io("cannot send a netlink request", e))?;
        let mut exchange = Exchange::new(seq);
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let datagram = self.recv_until(Some(deadline))?.ok_or_else(|| {
                Error::io(
                    "no answer from the kernel",
                    io::Error::new(io::ErrorKind::TimedOut, format!("{} timed out", op.name)),
                )
            })?;
            match exchange.feed(&datagram) {
                Ok(true) => break,
                Ok(false) => {}
                Err(failure) => return Err(Error::from_failure(op.name, failure)),
            }
        }
        (op.finish)(exchange.into_replies())
    }

    /// Receives one datagram; `Ok(None)` when `deadline` passes first.
    pub fn recv_until(&self, deadline: Option<Instant>) -> Result<Option<Vec<u8>>, Error> {
        if let Some(deadline) = deadline {
            if !wait_readable(&self.sock, deadline)? {
                return Ok(None);
            }
        }
        match self.sock.recv_from_full() {
            Ok((buf, _)) => Ok(Some(buf)),
            Err(e) => Err(recv_error(e)),
        }
    }
}

/// Binds a new socket and asks for extended acks.
pub(crate) fn configure(sock: &mut netlink_sys::Socket) -> Result<(), Error> {
    sock.bind_auto()
        .map_err(|e| Error::io("cannot bind a netlink socket", e))?;
    // Both are best effort: without them errors only lose their text, and error
    // messages carry the whole request.
    let _ = sock.set_ext_ack(true);
    let _ = sock.set_cap_ack(true);
    Ok(())
}

/// Advances a sequence counter, skipping 0 (the number of notifications).
pub(crate) fn next_seq(seq: &mut u32) -> u32 {
    *seq = seq.wrapping_add(1).max(1);
    *seq
}

/// Maps a receive error: `ENOBUFS` means the queue overflowed.
pub(crate) fn recv_error(e: io::Error) -> Error {
    if e.raw_os_error() == Some(libc::ENOBUFS) {
        Error::EventsLost
    } else {
        Error::io("cannot receive from a netlink socket", e)
    }
}

/// Waits until `fd` is readable or `deadline` passes; `Ok(false)` on timeout.
fn wait_readable(fd: impl AsFd, deadline: Instant) -> Result<bool, Error> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = Timespec {
            tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::io("cannot poll a netlink socket", e.into())),
        }
    }
}
