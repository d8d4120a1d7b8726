//! The system calls the relay needs beyond tokio's: `pipe2`, `splice`,
//! `SO_LINGER`, `shutdown`. All through rustix and socket2, so this crate has no
//! `unsafe` of its own.

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rustix::pipe::{self, PipeFlags, SpliceFlags};
use socket2::SockRef;

/// A non-blocking pipe used as the kernel-side buffer of one spliced direction.
#[derive(Debug)]
pub(crate) struct Pipe {
    pub(crate) read: OwnedFd,
    pub(crate) write: OwnedFd,
}

/// Bytes one splice call moves at most: the default pipe capacity (16 pages).
pub(crate) const SPLICE_CHUNK: usize = 64 * 1024;

impl Pipe {
    /// `pipe2(O_NONBLOCK | O_CLOEXEC)`.
    pub(crate) fn new() -> io::Result<Pipe> {
        let (read, write) = pipe::pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
        Ok(Pipe { read, write })
    }
}

/// Bytes of copy buffers kept for reuse per thread, at most; more are freed when
/// given back.
const BUFFERS_KEEP_BYTES: usize = 4 << 20;

/// Bulk buffers held by bursts at once, in bytes, process-wide; past it a burst
/// makes do with its route's `copy_buffer`.
pub(crate) const BULK_BUDGET: usize = 64 << 20;

static BULK_IN_USE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static BUFFERS: std::cell::RefCell<(Vec<Vec<u8>>, usize)> =
        const { std::cell::RefCell::new((Vec::new(), 0)) };
}

/// A copy buffer of `len` bytes, from this thread's pool when one of that size is
/// there (already written, so not zeroed again), else a new one; it goes back to
/// the pool of the thread that drops it.
///
/// A direction holds a buffer only during a burst; without the pool every burst
/// of a 1 KiB exchange zeroed a whole 64 KiB buffer, which was 2% of the relay's
/// CPU time at 5,000 connections a second.
pub(crate) fn take_buffer(len: usize) -> PooledBuffer {
    let pooled = BUFFERS.with(|b| {
        let (pool, bytes) = &mut *b.borrow_mut();
        let i = pool.iter().rposition(|v| v.len() == len)?;
        *bytes -= len;
        Some(pool.swap_remove(i))
    });
    PooledBuffer {
        buf: pooled.unwrap_or_else(|| vec![0; len]),
        bulk: false,
    }
}

/// A bulk buffer of `len` bytes if the process-wide [`BULK_BUDGET`] has room for
/// it, else `None`.
pub(crate) fn take_bulk_buffer(len: usize) -> Option<PooledBuffer> {
    BULK_IN_USE
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
            (used + len <= BULK_BUDGET).then_some(used + len)
        })
        .ok()?;
    let mut b = take_buffer(len);
    b.bulk = true;
    Some(b)
}

/// A buffer from [`take_buffer`] or [`take_bulk_buffer`]; dereferences to its
/// bytes.
pub(crate) struct PooledBuffer {
    buf: Vec<u8>,
    bulk: bool,
}

impl std::ops::Deref for PooledBuffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf
    }
}

impl std::ops::DerefMut for PooledBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if self.bulk {
            BULK_IN_USE.fetch_sub(buf.len(), Ordering::Relaxed);
        }
        // During thread exit the pool may be gone: the buffer is just freed.
        let _ = BUFFERS.try_with(|b| {
            if let Ok(mut b) = b.try_borrow_mut() {
                let (pool, bytes) = &mut *b;
                if *bytes + buf.len() <= BUFFERS_KEEP_BYTES {
                    *bytes += buf.len();
                    pool.push(buf);
                }
            }
        });
    }
}

/// Empty pipes kept for reuse, at most; more are closed when given back.
const POOL_KEEP: usize = 64;

static POOL: Mutex<Vec<Pipe>> = Mutex::new(Vec::new());

/// An empty pipe: a pooled one, else a new one.
///
/// A spliced direction holds a pipe only while bytes flow and gives it back
/// before it waits for more, so idle connections hold no pipe and the number of
/// pipes follows the number of busy directions, not of connections.
pub(crate) fn take_pipe() -> io::Result<Pipe> {
    let pooled = POOL.lock().ok().and_then(|mut p| p.pop());
    match pooled {
        Some(p) => Ok(p),
        None => Pipe::new(),
    }
}

/// Gives back a pipe that is **empty** (every byte spliced out).
pub(crate) fn give_pipe(pipe: Pipe) {
    if let Ok(mut p) = POOL.lock() {
        if p.len() < POOL_KEEP {
            p.push(pipe);
        }
    }
}

/// Closes every pooled pipe: descriptors ran out, and dials need them more.
pub(crate) fn drain_pipe_pool() {
    let drained = POOL.lock().map(|mut p| std::mem::take(&mut *p));
    drop(drained);
}

const FLAGS: SpliceFlags = SpliceFlags::MOVE.union(SpliceFlags::NONBLOCK);

/// `splice(fd, NULL, pipe_w, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)`:
/// socket to pipe. `Ok(0)` is end of stream.
pub(crate) fn splice_in(src: impl AsFd, pipe: &Pipe, len: usize) -> io::Result<usize> {
    Ok(pipe::splice(src, None, &pipe.write, None, len, FLAGS)?)
}

/// `splice(pipe_r, NULL, fd, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)`:
/// pipe to socket.
pub(crate) fn splice_out(pipe: &Pipe, dst: impl AsFd, len: usize) -> io::Result<usize> {
    Ok(pipe::splice(&pipe.read, None, dst, None, len, FLAGS)?)
}

/// `read(fd, buf)` on a socket.
pub(crate) fn read(fd: impl AsFd, buf: &mut [u8]) -> io::Result<usize> {
    Ok(rustix::io::read(fd, buf)?)
}

/// `read(pipe_r, buf)`: what a pipe still holds when splice out is refused.
pub(crate) fn read_pipe(pipe: &Pipe, buf: &mut [u8]) -> io::Result<usize> {
    Ok(rustix::io::read(&pipe.read, buf)?)
}

/// `setsockopt(SO_LINGER, {on, 0})`: the coming `close()` sends a RST instead of
/// a FIN.
pub(crate) fn set_reset_on_close(socket: &impl AsFd) {
    if let Err(e) = SockRef::from(socket).set_linger(Some(Duration::ZERO)) {
        tracing::debug!("SO_LINGER 0 failed: {e}");
    }
}

/// `shutdown(SHUT_WR)`: send our FIN, keep receiving. A socket that is already
/// gone (`ENOTCONN`) is not an error here.
pub(crate) fn shutdown_write(socket: &impl AsFd) -> io::Result<()> {
    match SockRef::from(socket).shutdown(Shutdown::Write) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Ok(()),
        r => r,
    }
}

/// Errors that say "splice cannot be used on this pair of sockets" rather than
/// "the connection failed".
pub(crate) fn splice_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::EOPNOTSUPP | libc::ENOSYS)
    )
}

/// `accept()` errors from running out of descriptors or memory: back off.
pub(crate) fn resource_exhausted(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_buffers_stay_within_the_budget_and_free_it_when_dropped() {
        let len = 4 << 20;
        let mut held = Vec::new();
        while let Some(b) = take_bulk_buffer(len) {
            assert_eq!(b.len(), len);
            held.push(b);
            assert!(held.len() <= BULK_BUDGET / len, "past the budget");
        }
        assert_eq!(held.len(), BULK_BUDGET / len);
        assert!(take_bulk_buffer(len).is_none());
        held.pop();
        let again = take_bulk_buffer(len).expect("room again after a drop");
        drop(again);
        drop(held);
        assert_eq!(BULK_IN_USE.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_pooled_buffer_is_reused_without_a_new_allocation() {
        let mut b = take_buffer(4096);
        b[0] = 7;
        let at = b.as_ptr();
        drop(b);
        let b = take_buffer(4096);
        assert_eq!(b.as_ptr(), at, "the pooled buffer came back");
        assert_eq!(b.len(), 4096);
    }
}
