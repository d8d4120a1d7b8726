//! Item 1 and 2: the connection loop, one shape for every implementation.
//!
//! One listener on `127.0.0.1:0`, one accepting thread (task, goroutine)
//! that accepts and closes, and a client that dials `n` connections one after
//! the other; each is asked once whether MPTCP is on (client side), then
//! closed. The clock runs from the first dial to the last accept. Go's copy
//! of this loop is `perf/go/main.go`.
//!
//! [`Shape::Sequential`] is a second instrument: one thread does everything
//! (dial, status check, close; accept, close), so no hand-off between threads
//! adds its noise. It measures the same per-connection work with a few times
//! less run-to-run spread, which the 3% and 5% targets need.
//!
//! Every listener has the same backlog, [`BACKLOG`]: Go's default
//! (`net.core.somaxconn`, 4096). With std's 128, a client that keeps dialing
//! while the accepting thread waits for a core overflows the accept queue,
//! and the lost handshake costs a 1 s SYN retransmission: the figure would
//! measure the scheduler, and only for some implementations.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::Instant;

use mptcp_net::{Dialer, ListenConfig, MptcpExt};
use serde::{Deserialize, Serialize};

use crate::sys;

/// The listen backlog of every implementation (Go's default on this kernel).
pub const BACKLOG: i32 = 4096;

/// The Rust implementations of the loop (Go runs as its own program).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnImpl {
    /// `mptcp_net::Dialer::dial` / `ListenConfig::listen`, default policy.
    NetStd,
    /// mptcp-net std with keep-alive off on both sides (`set_keep_alive(None)`):
    /// the same calls as [`ConnImpl::Raw`] and the `mptcp` crate, which set none.
    NetStdNoKeepAlive,
    /// `Dialer::dial_async` / `ListenConfig::listen_async` on tokio.
    NetTokio,
    /// mptcp-net with `set_multipath_tcp(false)` on both sides.
    NetPlain,
    /// `socket(IPPROTO_MPTCP)` + `connect` + `getsockopt(TCP_IS_MPTCP)`.
    Raw,
    /// [`ConnImpl::Raw`] plus the keep-alive options mptcp-net sets by default
    /// (`SO_KEEPALIVE`, `TCP_KEEPIDLE` 15 s, `TCP_KEEPINTVL` 15 s), on the dialed
    /// socket and the listener (accepted sockets inherit them): the same calls as
    /// mptcp-net's default dial.
    RawKeepAlive,
    /// The same sockets made by hand (`SOCK_NONBLOCK`), with the keep-alive
    /// options mptcp-net sets by default, driven by tokio: the limit of any
    /// async MPTCP dial on tokio.
    RawTokio,
    /// The `mptcp` crate 0.1.5: `connect_mptcp`, `bind_mptcp`, `mptcp_status`,
    /// with its listener's backlog raised from 0 to [`BACKLOG`] (a second
    /// `listen()`): with 0, one pending connection fills the accept queue,
    /// and the next handshake waits a second for its SYN to be sent again.
    MptcpCrate,
    /// The `mptcp` crate 0.1.5 as shipped (listener backlog 0).
    MptcpCrateAsShipped,
    /// std's `TcpStream`/`TcpListener` (plain TCP) + `getsockopt(TCP_IS_MPTCP)`,
    /// the listener's backlog raised to [`BACKLOG`].
    Tcp,
}

impl ConnImpl {
    /// Every implementation, by command-line name.
    pub const ALL: [(&'static str, ConnImpl); 10] = [
        ("net-std", ConnImpl::NetStd),
        ("net-std-nokeepalive", ConnImpl::NetStdNoKeepAlive),
        ("net-tokio", ConnImpl::NetTokio),
        ("net-plain", ConnImpl::NetPlain),
        ("raw", ConnImpl::Raw),
        ("raw-keepalive", ConnImpl::RawKeepAlive),
        ("raw-tokio", ConnImpl::RawTokio),
        ("mptcp-crate", ConnImpl::MptcpCrate),
        ("mptcp-crate-as-shipped", ConnImpl::MptcpCrateAsShipped),
        ("tcp", ConnImpl::Tcp),
    ];

    /// The implementation called `name`.
    pub fn from_name(name: &str) -> Option<ConnImpl> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, i)| *i)
    }
}

/// How the loop runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// An accepting thread (task, goroutine) and a dialing one.
    Threads,
    /// One thread (task) that dials, checks and closes, then accepts and
    /// closes, connection after connection.
    Sequential,
}

/// What one run of the loop reports (one JSON line on stdout).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct LoopResult {
    /// Connections made (or calls, for the status loop).
    pub count: u64,
    /// Wall time of the loop.
    pub secs: f64,
    /// How many the client saw with MPTCP on.
    pub active: u64,
}

impl LoopResult {
    /// Connections (calls) per second.
    pub fn rate(&self) -> f64 {
        self.count as f64 / self.secs
    }
}

/// Runs the loop `n` times with `imp`, in `shape`.
pub fn run(imp: ConnImpl, n: u64, shape: Shape) -> io::Result<LoopResult> {
    let l = Loop { n, shape };
    match imp {
        ConnImpl::NetStd => net_std(l, true, true),
        ConnImpl::NetStdNoKeepAlive => net_std(l, true, false),
        ConnImpl::NetPlain => net_std(l, false, true),
        ConnImpl::NetTokio => net_tokio(l),
        ConnImpl::Raw => raw(l, false),
        ConnImpl::RawKeepAlive => raw(l, true),
        ConnImpl::RawTokio => raw_tokio(l),
        ConnImpl::MptcpCrate => mptcp_crate(l, true),
        ConnImpl::MptcpCrateAsShipped => mptcp_crate(l, false),
        ConnImpl::Tcp => tcp(l),
    }
}

#[derive(Clone, Copy)]
struct Loop {
    n: u64,
    shape: Shape,
}

/// The loop around a blocking `accept` and a blocking `dial`.
fn timed(
    l: Loop,
    mut accept: impl FnMut() -> io::Result<()> + Send,
    mut dial: impl FnMut() -> io::Result<bool>,
) -> io::Result<LoopResult> {
    let n = l.n;
    let start = Instant::now();
    let mut active = 0;
    match l.shape {
        Shape::Sequential => {
            for _ in 0..n {
                active += u64::from(dial()?);
                accept()?;
            }
        }
        Shape::Threads => std::thread::scope(|scope| {
            let acceptor = scope.spawn(move || (0..n).try_for_each(|_| accept()));
            for _ in 0..n {
                active += u64::from(dial()?);
            }
            acceptor
                .join()
                .map_err(|_| io::Error::other("the accepting thread panicked"))?
        })?,
    }
    Ok(LoopResult {
        count: n,
        secs: start.elapsed().as_secs_f64(),
        active,
    })
}

fn net_std(l: Loop, mptcp: bool, keep_alive: bool) -> io::Result<LoopResult> {
    let mut config = ListenConfig::new();
    let mut dialer = Dialer::new();
    if !mptcp {
        config.set_multipath_tcp(false);
        dialer.set_multipath_tcp(false);
    }
    if !keep_alive {
        config.set_keep_alive(None);
        dialer.set_keep_alive(None);
    }
    let listener = config.set_backlog(BACKLOG).listen("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    timed(
        l,
        || listener.accept().map(drop),
        || dialer.dial(addr)?.multipath_tcp(),
    )
}

fn net_tokio(l: Loop) -> io::Result<LoopResult> {
    tokio_loop(
        l,
        || async {
            ListenConfig::new()
                .set_backlog(BACKLOG)
                .listen_async("127.0.0.1:0")
                .await
        },
        |addr| async move {
            let stream = Dialer::new().dial_async(addr).await?;
            stream.multipath_tcp()
        },
    )
}

fn raw_tokio(l: Loop) -> io::Result<LoopResult> {
    tokio_loop(
        l,
        || async {
            let (fd, _) = sys::listen_loopback(sys::IPPROTO_MPTCP, BACKLOG, true)?;
            sys::set_keep_alive(fd.as_fd(), 15)?;
            tokio::net::TcpListener::from_std(TcpListener::from(fd))
        },
        |addr| async move {
            let fd = sys::socket_nonblocking(sys::IPPROTO_MPTCP)?;
            // The calls mptcp-net's default dial makes: like with like.
            sys::set_keep_alive(fd.as_fd(), 15)?;
            let socket = tokio::net::TcpSocket::from_std_stream(TcpStream::from(fd));
            let stream = socket.connect(addr).await?;
            sys::is_mptcp(stream.as_fd())
        },
    )
}

/// The loop on tokio's multi-thread runtime: an accepting task and a client
/// task (as Go's main goroutine is one: `block_on` runs outside the workers,
/// and each of its wake-ups would cross threads), or one task for both.
fn tokio_loop<L, LF, D, DF>(l: Loop, listen: L, dial: D) -> io::Result<LoopResult>
where
    L: FnOnce() -> LF,
    LF: std::future::Future<Output = io::Result<tokio::net::TcpListener>>,
    D: Fn(SocketAddr) -> DF + Send + 'static,
    DF: std::future::Future<Output = io::Result<bool>> + Send,
{
    let n = l.n;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = listen().await?;
        let addr = listener.local_addr()?;
        let start = Instant::now();
        let active = match l.shape {
            Shape::Sequential => {
                let one = tokio::spawn(async move {
                    let mut active = 0;
                    for _ in 0..n {
                        active += u64::from(dial(addr).await?);
                        drop(listener.accept().await?);
                    }
                    io::Result::Ok(active)
                });
                one.await.map_err(io::Error::other)??
            }
            Shape::Threads => {
                let acceptor = tokio::spawn(async move {
                    for _ in 0..n {
                        drop(listener.accept().await?);
                    }
                    io::Result::Ok(())
                });
                let client = tokio::spawn(async move {
                    let mut active = 0;
                    for _ in 0..n {
                        active += u64::from(dial(addr).await?);
                    }
                    io::Result::Ok(active)
                });
                let active = client.await.map_err(io::Error::other)??;
                acceptor.await.map_err(io::Error::other)??;
                active
            }
        };
        Ok(LoopResult {
            count: n,
            secs: start.elapsed().as_secs_f64(),
            active,
        })
    })
}

fn raw(l: Loop, keep_alive: bool) -> io::Result<LoopResult> {
    let (listener, addr) = sys::listen_loopback(sys::IPPROTO_MPTCP, BACKLOG, false)?;
    if keep_alive {
        sys::set_keep_alive(listener.as_fd(), 15)?;
    }
    timed(
        l,
        || sys::accept(listener.as_fd()).map(drop),
        || {
            let fd = sys::socket(sys::IPPROTO_MPTCP)?;
            if keep_alive {
                sys::set_keep_alive(fd.as_fd(), 15)?;
            }
            sys::connect(fd.as_fd(), addr)?;
            sys::is_mptcp(fd.as_fd())
        },
    )
}

fn mptcp_crate(l: Loop, fix_backlog: bool) -> io::Result<LoopResult> {
    use mptcp::{MptcpListenerExt, MptcpStatus, MptcpStreamExt};
    let listener = TcpListener::bind_mptcp("127.0.0.1:0")?.into_socket();
    if fix_backlog {
        socket2::SockRef::from(&listener).listen(BACKLOG)?;
    }
    let addr = listener.local_addr()?;
    timed(
        l,
        || listener.accept().map(drop),
        || {
            let stream = TcpStream::connect_mptcp(addr)?.into_socket();
            Ok(matches!(
                mptcp::MptcpExt::mptcp_status(&stream),
                MptcpStatus::Mptcp {
                    has_fallback: false
                }
            ))
        },
    )
}

fn tcp(l: Loop) -> io::Result<LoopResult> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    socket2::SockRef::from(&listener).listen(BACKLOG)?;
    let addr: SocketAddr = listener.local_addr()?;
    timed(
        l,
        || listener.accept().map(drop),
        || sys::is_mptcp(TcpStream::connect(addr)?.as_fd()),
    )
}
