//! Item 3: bulk throughput of one connection on loopback.
//!
//! The client writes 128 KiB blocks for a fixed time, then closes; the
//! server reads until EOF. The figure is the receiver's: bytes read over the
//! time from accept to EOF.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use mptcp_net::{Dialer, ListenConfig, MptcpExt};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::sys;

/// Size of each write and read.
pub const BLOCK: usize = 128 * 1024;

/// The implementations of the transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BulkImpl {
    /// mptcp-net on std streams.
    NetStd,
    /// mptcp-net on tokio.
    NetTokio,
    /// `read(2)`/`write(2)` on a raw MPTCP socket.
    Raw,
    /// Raw MPTCP sockets (`SOCK_NONBLOCK`) driven by tokio: the async limit.
    RawTokio,
    /// std's plain TCP.
    Tcp,
}

impl BulkImpl {
    /// Every implementation, by command-line name.
    pub const ALL: [(&'static str, BulkImpl); 5] = [
        ("net-std", BulkImpl::NetStd),
        ("net-tokio", BulkImpl::NetTokio),
        ("raw", BulkImpl::Raw),
        ("raw-tokio", BulkImpl::RawTokio),
        ("tcp", BulkImpl::Tcp),
    ];

    /// The implementation called `name`.
    pub fn from_name(name: &str) -> Option<BulkImpl> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, i)| *i)
    }
}

/// What one transfer reports (one JSON line on stdout).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct BulkResult {
    /// Bytes the receiver read.
    pub bytes: u64,
    /// Receiver's time from accept to EOF.
    pub secs: f64,
    /// MPTCP was on at the sender when the transfer began.
    pub active: bool,
}

impl BulkResult {
    /// Receiver throughput, Gbit/s.
    pub fn gbit_per_s(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.secs / 1e9
    }
}

/// Sends for `duration` with `imp` and reports the receiver's view.
pub fn run(imp: BulkImpl, duration: Duration) -> io::Result<BulkResult> {
    match imp {
        BulkImpl::NetStd => {
            let listener = ListenConfig::new().listen("127.0.0.1:0")?;
            let addr = listener.local_addr()?;
            transfer(
                || {
                    let (mut stream, _) = listener.accept()?;
                    drain(|buf| stream.read(buf))
                },
                || {
                    let mut stream = Dialer::new().dial(addr)?;
                    let active = stream.multipath_tcp()?;
                    send_for(duration, |buf| stream.write(buf))?;
                    Ok(active)
                },
            )
        }
        BulkImpl::Raw => {
            let (listener, addr) = sys::listen_loopback(sys::IPPROTO_MPTCP, 128, false)?;
            transfer(
                || {
                    let fd = sys::accept(listener.as_fd())?;
                    drain(|buf| sys::read(fd.as_fd(), buf))
                },
                || {
                    let fd = sys::socket(sys::IPPROTO_MPTCP)?;
                    sys::connect(fd.as_fd(), addr)?;
                    let active = sys::is_mptcp(fd.as_fd())?;
                    send_for(duration, |buf| sys::write(fd.as_fd(), buf))?;
                    Ok(active)
                },
            )
        }
        BulkImpl::Tcp => {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let addr = listener.local_addr()?;
            transfer(
                || {
                    let (mut stream, _) = listener.accept()?;
                    drain(|buf| stream.read(buf))
                },
                || {
                    let mut stream = TcpStream::connect(addr)?;
                    let active = sys::is_mptcp(stream.as_fd())?;
                    send_for(duration, |buf| stream.write(buf))?;
                    Ok(active)
                },
            )
        }
        BulkImpl::NetTokio => tokio_transfer(
            duration,
            || async { ListenConfig::new().listen_async("127.0.0.1:0").await },
            |addr| async move {
                let stream = Dialer::new().dial_async(addr).await?;
                let active = stream.multipath_tcp()?;
                Ok((stream, active))
            },
        ),
        BulkImpl::RawTokio => tokio_transfer(
            duration,
            || async {
                let (fd, _) = sys::listen_loopback(sys::IPPROTO_MPTCP, 128, true)?;
                tokio::net::TcpListener::from_std(TcpListener::from(fd))
            },
            |addr| async move {
                let fd = sys::socket_nonblocking(sys::IPPROTO_MPTCP)?;
                let stream = tokio::net::TcpSocket::from_std_stream(TcpStream::from(fd))
                    .connect(addr)
                    .await?;
                let active = sys::is_mptcp(stream.as_fd())?;
                Ok((stream, active))
            },
        ),
    }
}

/// Receiver on a thread, sender on this one.
fn transfer(
    receive: impl FnOnce() -> io::Result<(u64, f64)> + Send,
    send: impl FnOnce() -> io::Result<bool>,
) -> io::Result<BulkResult> {
    std::thread::scope(|scope| {
        let receiver = scope.spawn(receive);
        let active = send()?;
        let (bytes, secs) = receiver
            .join()
            .map_err(|_| io::Error::other("the receiving thread panicked"))??;
        Ok(BulkResult {
            bytes,
            secs,
            active,
        })
    })
}

/// Reads until EOF; bytes and seconds.
fn drain(mut read: impl FnMut(&mut [u8]) -> io::Result<usize>) -> io::Result<(u64, f64)> {
    let start = Instant::now();
    let mut buf = vec![0u8; BLOCK];
    let mut bytes = 0u64;
    loop {
        match read(&mut buf)? {
            0 => return Ok((bytes, start.elapsed().as_secs_f64())),
            n => bytes += n as u64,
        }
    }
}

/// Writes blocks until `duration` has passed (the stream closes on return).
fn send_for(
    duration: Duration,
    mut write: impl FnMut(&[u8]) -> io::Result<usize>,
) -> io::Result<()> {
    let buf = vec![0x5au8; BLOCK];
    let start = Instant::now();
    while start.elapsed() < duration {
        let mut off = 0;
        while off < buf.len() {
            off += write(&buf[off..])?;
        }
    }
    Ok(())
}

/// Receiver and sender as tasks on tokio's multi-thread runtime.
fn tokio_transfer<L, LF, D, DF>(duration: Duration, listen: L, dial: D) -> io::Result<BulkResult>
where
    L: FnOnce() -> LF,
    LF: std::future::Future<Output = io::Result<tokio::net::TcpListener>>,
    D: FnOnce(SocketAddr) -> DF + Send + 'static,
    DF: std::future::Future<Output = io::Result<(tokio::net::TcpStream, bool)>> + Send,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = listen().await?;
        let addr = listener.local_addr()?;
        let receiver = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await?;
            let start = Instant::now();
            let mut buf = vec![0u8; BLOCK];
            let mut bytes = 0u64;
            loop {
                match stream.read(&mut buf).await? {
                    0 => return io::Result::Ok((bytes, start.elapsed().as_secs_f64())),
                    n => bytes += n as u64,
                }
            }
        });
        let sender = tokio::spawn(async move {
            let (mut stream, active) = dial(addr).await?;
            let buf = vec![0x5au8; BLOCK];
            let start = Instant::now();
            while start.elapsed() < duration {
                stream.write_all(&buf).await?;
            }
            io::Result::Ok(active)
        });
        let active = sender.await.map_err(io::Error::other)??;
        let (bytes, secs) = receiver.await.map_err(io::Error::other)??;
        Ok(BulkResult {
            bytes,
            secs,
            active,
        })
    })
}
