//! [`MptcpExt`]: is MPTCP really on the wire?

use std::fmt;
use std::io;

use crate::info::{MptcpInfo, SubflowInfo};

/// What a socket is doing, as told by [`MptcpExt::mptcp_status`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum MptcpStatus {
    /// A plain TCP socket: made with `IPPROTO_TCP`, or accepted by an MPTCP
    /// listener from a client that did not ask for MPTCP.
    PlainTcp,
    /// An MPTCP socket using MPTCP (for a listener: an MPTCP listener).
    Active,
    /// An MPTCP socket that fell back to plain TCP: the peer does not speak
    /// MPTCP, or a middlebox stripped the MPTCP options. Data flows as plain
    /// TCP on a single path.
    FellBack,
}

impl MptcpStatus {
    /// `true` for [`MptcpStatus::Active`].
    pub fn is_active(&self) -> bool {
        matches!(self, MptcpStatus::Active)
    }

    /// `true` for an MPTCP socket, active or fallen back.
    pub fn is_mptcp_socket(&self) -> bool {
        matches!(self, MptcpStatus::Active | MptcpStatus::FellBack)
    }

    /// A short stable name: `plain_tcp`, `active` or `fell_back`.
    pub fn as_str(&self) -> &'static str {
        match self {
            MptcpStatus::PlainTcp => "plain_tcp",
            MptcpStatus::Active => "active",
            MptcpStatus::FellBack => "fell_back",
        }
    }
}

impl fmt::Display for MptcpStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MptcpStatus::PlainTcp => "plain TCP",
            MptcpStatus::Active => "MPTCP",
            MptcpStatus::FellBack => "MPTCP fell back to TCP",
        })
    }
}

/// How this process tells MPTCP status, chosen once by trying the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Detection {
    /// `getsockopt(SOL_TCP, TCP_IS_MPTCP)` (Linux 6.10+): exact, one system
    /// call for an active connection.
    TcpIsMptcp,
    /// `getsockopt(SOL_MPTCP, MPTCP_INFO)` succeeds only while MPTCP is in
    /// use (Linux 5.16+): exact.
    MptcpInfo,
    /// `getsockopt(SOL_SOCKET, SO_PROTOCOL)` (older kernels): tells an MPTCP
    /// socket from a TCP one but cannot see a fallback, so a fallen-back
    /// socket reports [`MptcpStatus::Active`].
    SoProtocol,
    /// Not Linux: every socket is plain TCP.
    NotLinux,
}

/// MPTCP status of a socket: std and tokio streams and listeners, and
/// anything else that is [`AsFd`](std::os::fd::AsFd).
///
/// ```
/// use mptcp_net::{Dialer, ListenConfig, MptcpExt, MptcpStatus};
///
/// let listener = ListenConfig::new().listen("127.0.0.1:0")?;
/// let stream = Dialer::new().dial(listener.local_addr()?)?;
/// match stream.mptcp_status()? {
///     MptcpStatus::Active => println!("MPTCP on the wire"),
///     MptcpStatus::FellBack => println!("peer or path does not speak MPTCP"),
///     MptcpStatus::PlainTcp => println!("plain TCP socket"),
///     _ => {}
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait MptcpExt {
    /// `true` while MPTCP is used on the wire (Go's
    /// `TCPConn.MultipathTCP`); `false` for plain TCP and after a fallback.
    ///
    /// One system call ([`Detection`] says which).
    fn multipath_tcp(&self) -> io::Result<bool>;

    /// Plain TCP, MPTCP active, or MPTCP fallen back to TCP.
    ///
    /// One system call for an active MPTCP socket, two otherwise (the second
    /// is `SO_PROTOCOL`, to tell a plain socket from a fallen-back one).
    fn mptcp_status(&self) -> io::Result<MptcpStatus>;

    /// The connection-level MPTCP state (`struct mptcp_info`: token,
    /// subflow counts and limits, sequence numbers, byte counters, ...), or
    /// `None` for a plain TCP socket and after a fallback.
    ///
    /// One `getsockopt(SOL_MPTCP, MPTCP_INFO)`, cheap enough to poll. Fields
    /// the running kernel does not have are `None` (see [`MptcpInfo`]).
    ///
    /// ```
    /// use mptcp_net::{Dialer, ListenConfig, MptcpExt};
    ///
    /// let listener = ListenConfig::new().listen("127.0.0.1:0")?;
    /// let stream = Dialer::new().dial(listener.local_addr()?)?;
    /// if let Some(info) = stream.mptcp_info()? {
    ///     println!("token {:08x}, {} extra subflows", info.token, info.subflows);
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn mptcp_info(&self) -> io::Result<Option<MptcpInfo>>;

    /// The subflows of an MPTCP connection: id, local and remote address,
    /// and their `tcp_info` ([`TcpStats`](crate::info::TcpStats): state,
    /// RTT, cwnd, rates, byte counters, retransmissions, ...).
    ///
    /// One `getsockopt(SOL_MPTCP, MPTCP_FULL_INFO)` (Linux 6.5+) with room
    /// for 8 subflows; asked again with more room if the kernel reports more.
    /// On 5.16-6.4, `MPTCP_TCPINFO` and `MPTCP_SUBFLOW_ADDRS` (two calls,
    /// no subflow ids).
    ///
    /// A plain TCP socket, or an MPTCP socket that fell back, has exactly one
    /// entry: its own TCP connection (`TCP_INFO`, `id: None`), so a
    /// program can watch any stream the same way. An MPTCP listener lists its
    /// listening subflow ([`TcpState::Listen`](crate::TcpState::Listen)).
    ///
    /// ```
    /// use mptcp_net::{Dialer, ListenConfig, MptcpExt};
    ///
    /// let listener = ListenConfig::new().listen("127.0.0.1:0")?;
    /// let stream = Dialer::new().dial(listener.local_addr()?)?;
    /// for sf in stream.subflows()? {
    ///     println!("{:?} {:?} -> {:?} rtt {:?}", sf.id, sf.local, sf.remote, sf.tcp.rtt);
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn subflows(&self) -> io::Result<Vec<SubflowInfo>>;
}

/// The status detection method of this process, chosen on first use.
///
/// `None` if it could not be chosen yet (the probe needs to create a TCP
/// socket, and on kernels without `TCP_IS_MPTCP` an MPTCP one).
pub fn detection() -> Option<Detection> {
    imp::detection()
}

#[cfg(unix)]
impl<T: std::os::fd::AsFd + ?Sized> MptcpExt for T {
    fn multipath_tcp(&self) -> io::Result<bool> {
        imp::multipath_tcp(self.as_fd())
    }

    fn mptcp_status(&self) -> io::Result<MptcpStatus> {
        imp::status(self.as_fd())
    }

    #[cfg(target_os = "linux")]
    fn mptcp_info(&self) -> io::Result<Option<MptcpInfo>> {
        crate::introspect::mptcp_info(self.as_fd())
    }

    #[cfg(target_os = "linux")]
    fn subflows(&self) -> io::Result<Vec<SubflowInfo>> {
        crate::introspect::subflows(self.as_fd())
    }

    #[cfg(not(target_os = "linux"))]
    fn mptcp_info(&self) -> io::Result<Option<MptcpInfo>> {
        Ok(None)
    }

    #[cfg(not(target_os = "linux"))]
    fn subflows(&self) -> io::Result<Vec<SubflowInfo>> {
        Ok(Vec::new())
    }
}

#[cfg(windows)]
impl<T: std::os::windows::io::AsSocket + ?Sized> MptcpExt for T {
    fn multipath_tcp(&self) -> io::Result<bool> {
        let _ = self.as_socket();
        Ok(false)
    }

    fn mptcp_status(&self) -> io::Result<MptcpStatus> {
        let _ = self.as_socket();
        Ok(MptcpStatus::PlainTcp)
    }

    fn mptcp_info(&self) -> io::Result<Option<MptcpInfo>> {
        let _ = self.as_socket();
        Ok(None)
    }

    fn subflows(&self) -> io::Result<Vec<SubflowInfo>> {
        let _ = self.as_socket();
        Ok(Vec::new())
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::*;

    pub(super) fn detection() -> Option<Detection> {
        Some(Detection::NotLinux)
    }

    #[cfg(unix)]
    pub(super) fn multipath_tcp(_: std::os::fd::BorrowedFd<'_>) -> io::Result<bool> {
        Ok(false)
    }

    #[cfg(unix)]
    pub(super) fn status(_: std::os::fd::BorrowedFd<'_>) -> io::Result<MptcpStatus> {
        Ok(MptcpStatus::PlainTcp)
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::os::fd::{AsFd, BorrowedFd};
    use std::sync::atomic::{AtomicU8, Ordering};

    use super::*;
    use crate::errno::{errno_in, explain, not_tcp, protocol, NOT_HERE};
    use crate::sys::{self, IPPROTO_MPTCP, MPTCP_INFO, SOL_MPTCP, TCP_IS_MPTCP};

    const UNKNOWN: u8 = 0;
    static METHOD: AtomicU8 = AtomicU8::new(UNKNOWN);

    fn encode(d: Detection) -> u8 {
        match d {
            Detection::TcpIsMptcp => 1,
            Detection::MptcpInfo => 2,
            Detection::SoProtocol => 3,
            Detection::NotLinux => 4,
        }
    }

    fn decode(v: u8) -> Option<Detection> {
        Some(match v {
            1 => Detection::TcpIsMptcp,
            2 => Detection::MptcpInfo,
            3 => Detection::SoProtocol,
            4 => Detection::NotLinux,
            _ => return None,
        })
    }

    #[cfg(feature = "test-seam")]
    pub(crate) fn force(d: Option<Detection>) {
        METHOD.store(d.map_or(UNKNOWN, encode), Ordering::Relaxed);
    }

    pub(super) fn detection() -> Option<Detection> {
        if let Some(d) = decode(METHOD.load(Ordering::Relaxed)) {
            return Some(d);
        }
        let d = probe()?;
        METHOD.store(encode(d), Ordering::Relaxed);
        Some(d)
    }

    /// Tries the options on throw-away sockets, newest first: one
    /// `getsockopt` on a TCP socket answers for `TCP_IS_MPTCP` (6.10+),
    /// one on a fresh MPTCP socket for `MPTCP_INFO` (5.16+).
    fn probe() -> Option<Detection> {
        let tcp = crate::socket::tcp_socket(socket2::Domain::IPV4, false)
            .or_else(|_| crate::socket::tcp_socket(socket2::Domain::IPV6, false))
            .ok()?;
        match sys::getsockopt_int(tcp.as_fd(), libc::IPPROTO_TCP, TCP_IS_MPTCP) {
            Ok(_) => return Some(Detection::TcpIsMptcp),
            Err(e) if errno_in(&e, NOT_HERE) => {}
            Err(_) => return None,
        }
        // Without MPTCP sockets here, nothing to probe: answer by
        // SO_PROTOCOL for now and try again next time.
        let mptcp = sys::mptcp_socket(socket2::Domain::IPV4, socket2::Type::STREAM).ok()?;
        match sys::getsockopt_buf(mptcp.as_fd(), SOL_MPTCP, MPTCP_INFO, &mut []) {
            Ok(_) => Some(Detection::MptcpInfo),
            Err(e) if errno_in(&e, NOT_HERE) => Some(Detection::SoProtocol),
            Err(_) => None,
        }
    }

    /// Status from the protocol alone, given that MPTCP is not in use.
    fn not_in_use(fd: BorrowedFd<'_>) -> io::Result<MptcpStatus> {
        match protocol(fd)? {
            IPPROTO_MPTCP => Ok(MptcpStatus::FellBack),
            libc::IPPROTO_TCP => Ok(MptcpStatus::PlainTcp),
            other => Err(not_tcp(other)),
        }
    }

    /// `Some(in use)` from `TCP_IS_MPTCP` or `MPTCP_INFO`; `None` for
    /// `SO_PROTOCOL`, which cannot tell.
    fn in_use(fd: BorrowedFd<'_>, method: Detection) -> io::Result<Option<bool>> {
        match method {
            Detection::TcpIsMptcp => {
                match sys::getsockopt_int(fd, libc::IPPROTO_TCP, TCP_IS_MPTCP) {
                    Ok(v) => Ok(Some(v != 0)),
                    Err(e) => Err(explain(fd, e)),
                }
            }
            Detection::MptcpInfo => match sys::getsockopt_buf(fd, SOL_MPTCP, MPTCP_INFO, &mut []) {
                Ok(_) => Ok(Some(true)),
                Err(e) if errno_in(&e, NOT_HERE) => Ok(Some(false)),
                Err(e) => Err(explain(fd, e)),
            },
            Detection::SoProtocol | Detection::NotLinux => Ok(None),
        }
    }

    pub(super) fn multipath_tcp(fd: BorrowedFd<'_>) -> io::Result<bool> {
        let method = detection().unwrap_or(Detection::SoProtocol);
        match in_use(fd, method)? {
            Some(v) => Ok(v),
            None => Ok(by_protocol_only(fd)?.is_active()),
        }
    }

    pub(super) fn status(fd: BorrowedFd<'_>) -> io::Result<MptcpStatus> {
        let method = detection().unwrap_or(Detection::SoProtocol);
        match in_use(fd, method)? {
            Some(true) => Ok(MptcpStatus::Active),
            Some(false) => not_in_use(fd),
            None => by_protocol_only(fd),
        }
    }

    /// What `SO_PROTOCOL` alone can say: an MPTCP socket counts as active.
    fn by_protocol_only(fd: BorrowedFd<'_>) -> io::Result<MptcpStatus> {
        match protocol(fd)? {
            IPPROTO_MPTCP => Ok(MptcpStatus::Active),
            libc::IPPROTO_TCP => Ok(MptcpStatus::PlainTcp),
            other => Err(not_tcp(other)),
        }
    }
}

#[cfg(all(target_os = "linux", feature = "test-seam"))]
pub(crate) use imp::force;
