//! The socket options the gateway needs beyond the relay's: TCP Fast Open on
//! both sides, the original destination of a redirected connection, and
//! `IP_TRANSPARENT` for TPROXY. One `unsafe` block: `TCP_FASTOPEN` on a
//! listener, which neither socket2, rustix nor nix wraps.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};

use socket2::{SockRef, Socket};

/// `setsockopt(TCP_FASTOPEN, qlen)` on a listener: accept data in the SYN of
/// up to `qlen` pending connections (with `net.ipv4.tcp_fastopen` bit 0x2).
pub(crate) fn set_fastopen_listener(socket: &Socket, qlen: i32) -> io::Result<()> {
    let fd = socket.as_raw_fd();
    // SAFETY: `fd` is a live socket borrowed for the call; the option value is a
    // c_int on our stack, its exact size is passed, and the kernel only reads it.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_FASTOPEN,
            (&qlen as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `setsockopt(TCP_FASTOPEN_CONNECT, 1)` before `connect`: `connect` returns at
/// once and the first `write` goes out in the SYN (with a cookie, or without one
/// when `net.ipv4.tcp_fastopen` has bit 0x4).
pub(crate) fn set_fastopen_connect(socket: &impl AsFd) -> io::Result<()> {
    nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::TcpFastOpenConnect, &true)
        .map_err(io::Error::from)
}

/// Whether `TCP_FASTOPEN_CONNECT` is on.
pub(crate) fn fastopen_connect(socket: &impl AsFd) -> bool {
    nix::sys::socket::getsockopt(socket, nix::sys::socket::sockopt::TcpFastOpenConnect)
        .unwrap_or(false)
}

/// `getsockopt(SO_ORIGINAL_DST)` (IPv4) or `IP6T_SO_ORIGINAL_DST` (IPv6): where
/// the client meant to go before an iptables/nftables REDIRECT (needs conntrack).
pub(crate) fn original_dst(socket: &impl AsFd, local: SocketAddr) -> io::Result<SocketAddr> {
    let s = SockRef::from(socket);
    let a = if local.is_ipv4() || is_mapped(local) {
        s.original_dst_v4()?
    } else {
        s.original_dst_v6()?
    };
    a.as_socket()
        .ok_or_else(|| io::Error::other("SO_ORIGINAL_DST returned no IP address"))
}

fn is_mapped(a: SocketAddr) -> bool {
    matches!(a, SocketAddr::V6(v6) if v6.ip().to_ipv4_mapped().is_some())
}

/// `IP_TRANSPARENT` (or `IPV6_TRANSPARENT`) on a listener, for TPROXY: it may
/// accept connections to addresses that are not its own (needs CAP_NET_ADMIN).
pub(crate) fn set_transparent(socket: &Socket, v6: bool) -> io::Result<()> {
    if v6 {
        socket.set_ip_transparent_v6(true)
    } else {
        socket.set_ip_transparent_v4(true)
    }
}
