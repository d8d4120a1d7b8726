//! [`MptcpStream`]: a tokio `TcpStream` that knows its [`MptcpConnInfo`],
//! usable by hyper (client and server), axum, tokio-rustls and tokio code.

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use mptcp_net::socket2::SockRef;
use mptcp_net::Dialer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, ToSocketAddrs};

use crate::MptcpConnInfo;

/// A connected stream (MPTCP, fallen back, or plain TCP) carrying its
/// [`MptcpConnInfo`].
///
/// It implements tokio's `AsyncRead`/`AsyncWrite` (for tokio-rustls, axum
/// and any tokio code) and hyper's [`rt::Read`](hyper::rt::Read) /
/// [`rt::Write`](hyper::rt::Write) with hyper-util's
/// [`Connection`](hyper_util::client::legacy::connect::Connection) (for
/// hyper and hyper-util's `Client`), so no `TokioIo` wrapper is needed.
///
/// The stream is held in an `Arc` that only this value owns; the info holds
/// a `Weak` to it, so handlers can read the live subflow list while the
/// connection is open without ever keeping it open (no duplicated
/// descriptor, no `unsafe`). Reads and writes go through tokio's `&self`
/// readiness API (`poll_read_ready` + `try_read_buf`), which is what
/// tokio's own `&TcpStream` halves do.
pub struct MptcpStream {
    stream: Arc<TcpStream>,
    info: MptcpConnInfo,
}

impl MptcpStream {
    /// Wraps a connected tokio stream, reading its status and addresses
    /// (a few `getsockopt`s).
    pub fn new(stream: TcpStream) -> io::Result<MptcpStream> {
        let stream = Arc::new(stream);
        let info = MptcpConnInfo::of(&stream)?;
        Ok(MptcpStream { stream, info })
    }

    /// Dials `addr` with `dialer` ([`Dialer::dial_async`]: names resolved by
    /// tokio, each address tried once, the dialer's timeout per address).
    pub async fn connect<A: ToSocketAddrs>(dialer: &Dialer, addr: A) -> io::Result<MptcpStream> {
        MptcpStream::new(dialer.dial_async(addr).await?)
    }

    /// The connection's status and addresses, and its live subflows.
    pub fn info(&self) -> &MptcpConnInfo {
        &self.info
    }

    /// The tokio stream, for its socket options (`set_nodelay`,
    /// `set_linger`, ...) and for [`MptcpExt`](mptcp_net::MptcpExt).
    pub fn get_ref(&self) -> &TcpStream {
        &self.stream
    }
}

impl fmt::Debug for MptcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MptcpStream")
            .field("stream", &self.stream)
            .field("info", &self.info)
            .finish()
    }
}

impl AsyncRead for MptcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // A spurious wake-up (readiness cleared by try_read) loops once more;
        // poll_read_ready returns Pending when there is really nothing.
        loop {
            ready!(self.stream.poll_read_ready(cx))?;
            match self.stream.try_read_buf(buf) {
                Ok(_) => return Poll::Ready(Ok(())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for MptcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.stream.poll_write_ready(cx))?;
            match self.stream.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.stream.poll_write_ready(cx))?;
            match self.stream.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Writes go straight to the socket.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // shutdown(SHUT_WR): the FIN (DATA_FIN on MPTCP), as tokio's own
        // TcpStream does; a peer that already left is not an error here.
        match SockRef::from(&*self.stream).shutdown(Shutdown::Write) {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Poll::Ready(Ok(())),
            other => Poll::Ready(other),
        }
    }
}

impl Read for MptcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // TokioIo holds hyper-util's (unsafe) cursor-to-ReadBuf bridge; a
        // TokioIo around `&mut Self` borrows it for this one call.
        Read::poll_read(Pin::new(&mut TokioIo::new(self.get_mut())), cx, buf)
    }
}

impl Write for MptcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        AsyncWrite::poll_write(self, cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        AsyncWrite::poll_write_vectored(self, cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_flush(self, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_shutdown(self, cx)
    }
}

/// Every response on this connection carries a clone of the
/// [`MptcpConnInfo`] in its extensions.
impl Connection for MptcpStream {
    fn connected(&self) -> Connected {
        Connected::new().extra(self.info.clone())
    }
}
