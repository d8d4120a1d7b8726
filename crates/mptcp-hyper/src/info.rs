//! [`MptcpConnInfo`]: what one HTTP connection is doing, for handlers and
//! for client code reading a response.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use mptcp_net::{MptcpExt, MptcpInfo, MptcpStatus, SubflowInfo};
use tokio::net::TcpStream;

/// One connection's Multipath TCP status and addresses, taken when it was
/// accepted or dialed, plus a live view of its subflows while it is open.
///
/// Where it is found:
///
/// - **client**: every response that came through an
///   [`MptcpConnector`](crate::MptcpConnector) carries it,
///   `res.extensions().get::<MptcpConnInfo>()` (hyper-util copies the
///   connector's `Connected::extra` into each response's extensions);
/// - **server**: an axum handler takes it as an argument (`info:
///   MptcpConnInfo`, or `ConnectInfo<MptcpConnInfo>`) when the router is
///   served with [`serve`](crate::serve); a hyper service served with
///   [`serve_hyper`](crate::serve_hyper) finds it in
///   `req.extensions().get::<MptcpConnInfo>()`;
/// - anywhere: [`MptcpStream::info`](crate::MptcpStream::info).
///
/// Cloning is cheap. The live methods ([`subflows`](Self::subflows),
/// [`mptcp_info`](Self::mptcp_info), [`current_status`](Self::current_status))
/// ask the kernel about the connection's socket through a weak reference:
/// holding an `MptcpConnInfo` never keeps a connection open, and once the
/// connection is closed they fail with [`io::ErrorKind::NotConnected`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use mptcp_hyper::{MptcpListener, MptcpStream};
///
/// let listener = MptcpListener::bind("127.0.0.1:0").await?;
/// let client = MptcpStream::connect(&mptcp_net::Dialer::new(), listener.local_addr()?).await?;
/// let (server, _) = listener.accept().await?;
/// let info = server.info().clone();
/// println!("{} from {}: {}", info.local_addr(), info.peer_addr(), info.status());
/// for sf in info.subflows()? {
///     println!("  subflow {:?} {:?} -> {:?}", sf.id, sf.local, sf.remote);
/// }
/// drop(server);
/// assert_eq!(info.subflows().unwrap_err().kind(), std::io::ErrorKind::NotConnected);
/// # drop(client);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MptcpConnInfo {
    status: MptcpStatus,
    local: SocketAddr,
    peer: SocketAddr,
    socket: Weak<TcpStream>,
}

impl MptcpConnInfo {
    /// Reads the status and addresses of `stream` (`getsockopt` for the
    /// status, `getsockname`, `getpeername`).
    pub(crate) fn of(stream: &Arc<TcpStream>) -> io::Result<MptcpConnInfo> {
        Ok(MptcpConnInfo {
            status: stream.mptcp_status()?,
            local: stream.local_addr()?,
            peer: stream.peer_addr()?,
            socket: Arc::downgrade(stream),
        })
    }

    /// The connection's status when it was accepted or dialed: MPTCP
    /// ([`MptcpStatus::Active`]), an MPTCP socket that
    /// [fell back](MptcpStatus::FellBack) to TCP because the peer or a
    /// middlebox does not speak MPTCP, or a [plain TCP](MptcpStatus::PlainTcp)
    /// socket (the dialer or listener did not use MPTCP, or, on a server, the
    /// client did not ask for it).
    pub fn status(&self) -> MptcpStatus {
        self.status
    }

    /// `true` when the connection used MPTCP when it was set up (Go's
    /// `TCPConn.MultipathTCP`, as of that moment).
    pub fn multipath_tcp(&self) -> bool {
        self.status.is_active()
    }

    /// This end's address (of the first subflow).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The other end's address (of the first subflow): on a server the
    /// client, as axum's `ConnectInfo<SocketAddr>` gives it.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Whether the connection is still open here.
    pub fn is_open(&self) -> bool {
        self.socket.strong_count() > 0
    }

    /// The status now (a fallback can also happen after the handshake).
    pub fn current_status(&self) -> io::Result<MptcpStatus> {
        self.with_socket(|s| s.mptcp_status())
    }

    /// The connection's subflows now, with their addresses and TCP
    /// statistics (one `getsockopt(MPTCP_FULL_INFO)` in the common case, see
    /// [`MptcpExt::subflows`]). A plain or fallen-back connection has one
    /// entry, its TCP connection.
    pub fn subflows(&self) -> io::Result<Vec<SubflowInfo>> {
        self.with_socket(|s| s.subflows())
    }

    /// The connection's `MPTCP_INFO` now; `None` when it does not use MPTCP.
    /// See [`MptcpExt::mptcp_info`].
    pub fn mptcp_info(&self) -> io::Result<Option<MptcpInfo>> {
        self.with_socket(|s| s.mptcp_info())
    }

    fn with_socket<T>(&self, f: impl FnOnce(&TcpStream) -> io::Result<T>) -> io::Result<T> {
        // The upgraded Arc keeps the descriptor open for the duration of one
        // call, so it cannot be closed, or reused by another socket, under us.
        match self.socket.upgrade() {
            Some(stream) => f(&stream),
            None => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                format!(
                    "the connection {} -> {} is closed: its subflows can no longer be read",
                    self.local, self.peer
                ),
            )),
        }
    }
}

impl fmt::Debug for MptcpConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MptcpConnInfo")
            .field("status", &self.status)
            .field("local", &self.local)
            .field("peer", &self.peer)
            .field("open", &self.is_open())
            .finish()
    }
}

/// `"MPTCP 198.18.0.1:40000 -> 198.18.0.2:80"`.
impl fmt::Display for MptcpConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} -> {}", self.status, self.local, self.peer)
    }
}

/// Serializes the status (`"active"`, `"fell_back"`, `"plain_tcp"`) and the
/// two addresses; the live subflow list is for [`MptcpConnInfo::subflows`].
#[cfg(feature = "serde")]
impl serde::Serialize for MptcpConnInfo {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("MptcpConnInfo", 3)?;
        s.serialize_field("status", &self.status)?;
        s.serialize_field("local", &self.local)?;
        s.serialize_field("peer", &self.peer)?;
        s.end()
    }
}
