//! The system calls the relay needs beyond tokio's: `pipe2`, `splice`,
//! `SO_LINGER`, `shutdown`. All through rustix and socket2, so this crate has no
//! `unsafe` of its own.

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// Bytes of copy buffers kept for reuse, at most (process-wide); more are freed
/// when given back.
const BUFFERS_KEEP_BYTES: usize = 8 << 20;

/// A kept buffer unused this long is freed by [`trim_idle_buffers`], so an idle
/// relay gives its buffers back to the system.
pub(crate) const BUFFER_IDLE: Duration = Duration::from_secs(2);

/// Bulk buffers held by bursts at once, in bytes, process-wide; past it a burst
/// makes do with its route's `copy_buffer`.
pub(crate) const BULK_BUDGET: usize = 64 << 20;

static BULK_IN_USE: AtomicUsize = AtomicUsize::new(0);

/// Buffers this large or larger are anonymous mappings of their own, not heap
/// memory, so a freed one goes back to the system. From the heap, glibc keeps
/// them: its mmap threshold follows the largest chunk freed (up to 32 MiB), so
/// after the first 1 MiB bulk buffer is freed every later one comes from the heap
/// and stays there. Measured in the chaos soak: the idle RSS of the gateway and
/// the client proxy grew 20-24% between the end of the warm-up and the end of a
/// 60 s run; with the threshold pinned, 1.7%.
const MAP_FROM: usize = 64 * 1024;

/// A buffer's bytes: heap memory, or a mapping of its own (see [`MAP_FROM`]).
enum Storage {
    Heap(Vec<u8>),
    Map(memmap2::MmapMut),
}

impl Storage {
    fn new(len: usize) -> Storage {
        if len >= MAP_FROM {
            // An mmap failure (ENOMEM) leaves the heap to try.
            if let Ok(m) = memmap2::MmapMut::map_anon(len) {
                return Storage::Map(m);
            }
        }
        Storage::Heap(vec![0; len])
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Heap(v) => v,
            Storage::Map(m) => m,
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            Storage::Heap(v) => v,
            Storage::Map(m) => m,
        }
    }
}

/// Buffers given back, oldest first, each with the moment it came back.
struct Kept {
    list: Vec<(Storage, Instant)>,
    bytes: usize,
}

static BUFFERS: Mutex<Kept> = Mutex::new(Kept {
    list: Vec::new(),
    bytes: 0,
});

/// A copy buffer of `len` bytes: a kept one of that size (already written, so not
/// zeroed again), else a new one; it is kept again when dropped.
///
/// A direction holds a buffer only during a burst; without reuse every burst of a
/// 1 KiB exchange zeroed a whole 64 KiB buffer, which was 2% of the relay's CPU
/// time at 5,000 connections a second.
pub(crate) fn take_buffer(len: usize) -> PooledBuffer {
    let kept = BUFFERS.lock().ok().and_then(|mut k| {
        let i = k.list.iter().rposition(|(b, _)| b.bytes().len() == len)?;
        k.bytes -= len;
        Some(k.list.remove(i).0)
    });
    PooledBuffer {
        buf: Some(kept.unwrap_or_else(|| Storage::new(len))),
        bulk: false,
    }
}

/// Frees the kept buffers unused for `idle` or longer.
pub(crate) fn trim_idle_buffers(idle: Duration) {
    let Some(cut) = Instant::now().checked_sub(idle) else {
        return;
    };
    let freed: Vec<(Storage, Instant)> = match BUFFERS.lock() {
        Ok(mut k) => {
            let n = k.list.iter().take_while(|(_, at)| *at <= cut).count();
            let freed: Vec<_> = k.list.drain(..n).collect();
            k.bytes -= freed.iter().map(|(b, _)| b.bytes().len()).sum::<usize>();
            freed
        }
        Err(_) => return,
    };
    // Unmapped outside the lock.
    drop(freed);
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
    /// Always `Some` until dropped.
    buf: Option<Storage>,
    bulk: bool,
}

impl std::ops::Deref for PooledBuffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.buf.as_ref().map_or(&[], Storage::bytes)
    }
}

impl std::ops::DerefMut for PooledBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.buf.as_mut().map_or(&mut [], Storage::bytes_mut)
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        let Some(buf) = self.buf.take() else { return };
        let len = buf.bytes().len();
        if self.bulk {
            BULK_IN_USE.fetch_sub(len, Ordering::Relaxed);
        }
        if let Ok(mut k) = BUFFERS.lock() {
            if k.bytes + len <= BUFFERS_KEEP_BYTES {
                k.bytes += len;
                k.list.push((buf, Instant::now()));
            }
        }
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

/// `recv(fd, buf, MSG_PEEK | MSG_DONTWAIT)`: what a socket has queued, left
/// there; `WouldBlock` if nothing.
pub(crate) fn peek(fd: impl AsFd, buf: &mut [u8]) -> io::Result<usize> {
    use rustix::net::{recv, RecvFlags};
    // (bytes copied, length of the data): the same for a stream socket.
    Ok(recv(fd, buf, RecvFlags::PEEK | RecvFlags::DONTWAIT)?.0)
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

/// `setsockopt(TCP_NOTSENT_LOWAT)` when `bytes` is set: the socket reports itself
/// writable only while fewer bytes than that wait unsent (MPTCP sockets too, at the
/// connection level, where the kernel takes it: 6.18 does). A failure is logged,
/// not fatal: the relay works without it, holding more in the send buffer.
pub(crate) fn set_notsent_lowat(socket: &impl AsFd, bytes: Option<u32>) {
    let Some(bytes) = bytes else { return };
    if let Err(e) = SockRef::from(socket).set_tcp_notsent_lowat(bytes) {
        tracing::debug!("TCP_NOTSENT_LOWAT {bytes} failed: {e}");
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
    fn buffers_unused_for_a_while_are_freed() {
        // A size no other test uses: the kept list is process-wide.
        let len = 3 * 4096 + 17;
        let count = || {
            BUFFERS
                .lock()
                .unwrap()
                .list
                .iter()
                .filter(|(b, _)| b.bytes().len() == len)
                .count()
        };
        drop(take_buffer(len));
        assert_eq!(count(), 1, "kept when given back");
        trim_idle_buffers(Duration::from_secs(3600));
        assert_eq!(count(), 1, "not idle long enough");
        std::thread::sleep(Duration::from_millis(5));
        trim_idle_buffers(Duration::from_millis(1));
        assert_eq!(count(), 0, "freed once idle");
    }

    #[test]
    fn large_buffers_are_mappings_of_their_own() {
        let b = take_buffer(MAP_FROM);
        assert!(matches!(b.buf, Some(Storage::Map(_))));
        assert_eq!(b.len(), MAP_FROM);
        assert!(b.iter().all(|&x| x == 0), "a fresh mapping is zeroed");
        let small = take_buffer(MAP_FROM - 1);
        assert!(matches!(small.buf, Some(Storage::Heap(_))));
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
