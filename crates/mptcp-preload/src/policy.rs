//! Which calls to convert and what a failed MPTCP socket() means: pure
//! functions over integers, tested without a kernel.

use std::os::raw::c_int;

/// The protocol number of MPTCP (`IPPROTO_MPTCP`).
pub(crate) const IPPROTO_MPTCP: c_int = 262;

/// The low bits of socket()'s `type` hold the socket type; `SOCK_NONBLOCK` and
/// `SOCK_CLOEXEC` ride above them.
const SOCK_TYPE_MASK: c_int = 0xf;

/// Whether `socket(domain, ty, protocol)` asks for a TCP stream socket that
/// MPTCP can replace: IPv4 or IPv6, `SOCK_STREAM` (whatever flags ride in
/// `ty`), protocol 0 or `IPPROTO_TCP`.
pub(crate) fn is_candidate(domain: c_int, ty: c_int, protocol: c_int) -> bool {
    (domain == libc::AF_INET || domain == libc::AF_INET6)
        && ty & SOCK_TYPE_MASK == libc::SOCK_STREAM
        && (protocol == 0 || protocol == libc::IPPROTO_TCP)
}

/// What to do when `socket(..., IPPROTO_MPTCP)` failed with `errno`: the same
/// rules as mptcp-net (`Unavailable::from_socket_error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fallback {
    /// Make the TCP socket the program asked for; MPTCP may work next time
    /// (`ENOPROTOOPT`: `net.mptcp.enabled=0`, per namespace and changeable;
    /// `EACCES`/`EPERM`: a security policy).
    Tcp,
    /// Make the TCP socket, and never try MPTCP again in this process
    /// (`EPROTONOSUPPORT`: no MPTCP in the kernel; `EINVAL`: Linux < 5.6).
    TcpForever,
    /// Not about MPTCP (`EMFILE`, `ENOBUFS`, ...): return the error as it is.
    Fail,
}

pub(crate) fn fallback(errno: c_int) -> Fallback {
    match errno {
        libc::ENOPROTOOPT | libc::EACCES | libc::EPERM => Fallback::Tcp,
        libc::EPROTONOSUPPORT | libc::EINVAL => Fallback::TcpForever,
        _ => Fallback::Fail,
    }
}

/// Whether a failed setsockopt() on a fresh MPTCP socket is worth a swap to
/// TCP: the errors MPTCP gives for options it does not support.
pub(crate) fn option_refused(errno: c_int) -> bool {
    errno == libc::EOPNOTSUPP || errno == libc::ENOPROTOOPT
}

/// Which sockets stay MPTCP, from `MPTCP_RUN_ONLY`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Roles {
    /// Dialing and listening sockets (the default).
    Both,
    /// Only sockets that connect(); a socket that listen()s becomes TCP.
    DialOnly,
    /// Only sockets that listen(); a socket that connect()s becomes TCP.
    ListenOnly,
}

/// Parses `MPTCP_RUN_ONLY`: unset or empty means both; `dial` or `listen`;
/// anything else is reported (by the caller) and means both.
pub(crate) fn roles(value: Option<&[u8]>) -> Result<Roles, ()> {
    match value {
        None | Some(b"") => Ok(Roles::Both),
        Some(b"dial") => Ok(Roles::DialOnly),
        Some(b"listen") => Ok(Roles::ListenOnly),
        Some(_) => Err(()),
    }
}

/// Whether `MPTCP_RUN_DEBUG` asks for debug lines: set, not empty, not `0`.
pub(crate) fn debug_on(value: Option<&[u8]>) -> bool {
    !matches!(value, None | Some(b"") | Some(b"0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_inet_stream_tcp_whatever_the_flags() {
        let stream_flags = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        assert!(is_candidate(libc::AF_INET, libc::SOCK_STREAM, 0));
        assert!(is_candidate(
            libc::AF_INET6,
            stream_flags,
            libc::IPPROTO_TCP
        ));
        assert!(!is_candidate(libc::AF_UNIX, libc::SOCK_STREAM, 0));
        assert!(!is_candidate(libc::AF_INET, libc::SOCK_DGRAM, 0));
        assert!(!is_candidate(libc::AF_INET, libc::SOCK_SEQPACKET, 0));
        assert!(!is_candidate(
            libc::AF_INET,
            libc::SOCK_STREAM,
            IPPROTO_MPTCP
        ));
        assert!(!is_candidate(
            libc::AF_INET,
            libc::SOCK_STREAM,
            libc::IPPROTO_SCTP
        ));
    }

    #[test]
    fn fallback_follows_mptcp_net() {
        assert_eq!(fallback(libc::ENOPROTOOPT), Fallback::Tcp);
        assert_eq!(fallback(libc::EACCES), Fallback::Tcp);
        assert_eq!(fallback(libc::EPERM), Fallback::Tcp);
        assert_eq!(fallback(libc::EPROTONOSUPPORT), Fallback::TcpForever);
        assert_eq!(fallback(libc::EINVAL), Fallback::TcpForever);
        for e in [
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOBUFS,
            libc::EAFNOSUPPORT,
        ] {
            assert_eq!(fallback(e), Fallback::Fail, "{e}");
        }
        assert!(option_refused(libc::ENOPROTOOPT));
        assert!(option_refused(libc::EOPNOTSUPP));
        assert!(!option_refused(libc::EINVAL));
    }

    #[test]
    fn environment() {
        assert_eq!(roles(None), Ok(Roles::Both));
        assert_eq!(roles(Some(b"")), Ok(Roles::Both));
        assert_eq!(roles(Some(b"dial")), Ok(Roles::DialOnly));
        assert_eq!(roles(Some(b"listen")), Ok(Roles::ListenOnly));
        assert_eq!(roles(Some(b"both")), Err(()));
        assert!(!debug_on(None));
        assert!(!debug_on(Some(b"0")));
        assert!(debug_on(Some(b"1")));
    }
}
