//! The raw peer, "the limit": MPTCP and TCP sockets through bare `libc` calls,
//! with nothing between the program and the kernel. Every `unsafe` block of
//! the harness is here.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `IPPROTO_MPTCP` (libc has it, spelled out for the reader).
pub const IPPROTO_MPTCP: libc::c_int = libc::IPPROTO_MPTCP;
/// `TCP_IS_MPTCP` at `SOL_TCP` (Linux 6.10+): 1 while MPTCP is on the wire.
pub const TCP_IS_MPTCP: libc::c_int = 43;

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn sockaddr(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// `socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, protocol)`.
pub fn socket(protocol: libc::c_int) -> io::Result<OwnedFd> {
    socket_with(protocol, 0)
}

/// The same with `SOCK_NONBLOCK`: what an async runtime wants, in one call.
pub fn socket_nonblocking(protocol: libc::c_int) -> io::Result<OwnedFd> {
    socket_with(protocol, libc::SOCK_NONBLOCK)
}

fn socket_with(protocol: libc::c_int, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain integer arguments; a non-negative return is a new fd we own.
    let fd = check(unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | flags,
            protocol,
        )
    })?;
    // SAFETY: `fd` was just returned by socket() and is owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `connect(fd, addr)`, blocking.
pub fn connect(fd: BorrowedFd<'_>, addr: SocketAddrV4) -> io::Result<()> {
    let sa = sockaddr(addr);
    // SAFETY: `sa` is a valid sockaddr_in that lives across the call; the
    // length passed is its size.
    check(unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// A listening socket on `127.0.0.1:0` with `SO_REUSEADDR` and `backlog`
/// (what `std::net::TcpListener::bind` does), and the address it got.
pub fn listen_loopback(
    protocol: libc::c_int,
    backlog: libc::c_int,
    nonblocking: bool,
) -> io::Result<(OwnedFd, SocketAddrV4)> {
    let fd = if nonblocking {
        socket_nonblocking(protocol)?
    } else {
        socket(protocol)?
    };
    let one: libc::c_int = 1;
    // SAFETY: `one` is a valid c_int for the call; the length is its size.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    let sa = sockaddr(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    // SAFETY: as in `connect`.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    })?;
    // SAFETY: plain integer arguments.
    check(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
    let mut bound = sockaddr(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `bound` and `len` are writable and live across the call; `len`
    // tells the kernel how much room `bound` has.
    check(unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            (&mut bound as *mut libc::sockaddr_in).cast(),
            &mut len,
        )
    })?;
    let addr = SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(bound.sin_addr.s_addr)),
        u16::from_be(bound.sin_port),
    );
    Ok((fd, addr))
}

/// `accept4(fd, NULL, NULL, SOCK_CLOEXEC)`: the peer address is not asked for.
pub fn accept(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: null address pointers are allowed and mean "do not report".
    let conn = check(unsafe {
        libc::accept4(
            fd.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    })?;
    // SAFETY: `conn` is a new fd returned by accept4, owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(conn) })
}

/// One `setsockopt(fd, level, name, &int)`.
pub fn setsockopt_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is readable for the length given, across the call.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// Keep-alive on with `secs` of idle time and between probes: the three calls
/// mptcp-net's default dial makes (`SO_KEEPALIVE`, `TCP_KEEPIDLE`,
/// `TCP_KEEPINTVL`; the count stays the kernel's).
pub fn set_keep_alive(fd: BorrowedFd<'_>, secs: libc::c_int) -> io::Result<()> {
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
    setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, secs)?;
    setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, secs)
}

/// One `getsockopt(fd, level, name, &int)`.
pub fn getsockopt_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are writable and live across the call.
    check(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

/// One `getsockopt(fd, level, name, buf)`; the length the kernel wrote.
pub fn getsockopt_buf(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    buf: &mut [u8],
) -> io::Result<usize> {
    let mut len = libc::socklen_t::try_from(buf.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "buffer too large"))?;
    // SAFETY: `buf` is writable for `len` bytes during the call; the kernel
    // writes at most `len` bytes. For MPTCP_FULL_INFO the caller guarantees
    // the user pointers inside `buf` are valid (see `full_info`).
    check(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    })?;
    Ok((len as usize).min(buf.len()))
}

/// `getsockopt(SOL_TCP, TCP_IS_MPTCP)`: the cheapest "is MPTCP on?".
pub fn is_mptcp(fd: BorrowedFd<'_>) -> io::Result<bool> {
    Ok(getsockopt_int(fd, libc::IPPROTO_TCP, TCP_IS_MPTCP)? != 0)
}

/// A raw `MPTCP_FULL_INFO` reply: the header (cut to its returned length) and
/// the two arrays, each with room for `count` elements.
pub struct FullInfoReply {
    /// `struct mptcp_full_info`, as long as the kernel wrote it.
    pub header: Vec<u8>,
    /// `struct mptcp_subflow_info[count]`.
    pub subflow_info: Vec<u8>,
    /// `struct tcp_info[count]`.
    pub tcp_info: Vec<u8>,
}

/// One `getsockopt(SOL_MPTCP, MPTCP_FULL_INFO)` with room for `count`
/// subflows: the bytes the parser benchmark feeds to
/// `mptcp_net::info::wire::parse_full_info`.
pub fn full_info(fd: BorrowedFd<'_>, count: u32) -> io::Result<FullInfoReply> {
    use mptcp_net::info::wire;
    let n = count as usize;
    let mut subflow_info = vec![0u8; n * wire::SUBFLOW_INFO_LEN];
    let mut tcp_info = vec![0u8; n * wire::TCP_INFO_LEN];
    let mut header = wire::full_info_request(
        wire::TCP_INFO_LEN as u32,
        wire::SUBFLOW_INFO_LEN as u32,
        count,
        subflow_info.as_mut_ptr() as u64,
        tcp_info.as_mut_ptr() as u64,
    );
    // The arrays hold `count` elements of the announced sizes and outlive the
    // call, which is what the kernel writes through the two pointers.
    let len = getsockopt_buf(fd, wire::SOL_MPTCP, wire::MPTCP_FULL_INFO, &mut header)?;
    Ok(FullInfoReply {
        header: header[..len].to_vec(),
        subflow_info,
        tcp_info,
    })
}

/// `read(2)` into `buf`.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is writable for its length during the call.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// `write(2)` from `buf`; may write less than all of it.
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is readable for its length during the call.
    let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// User and system CPU seconds of the waited-for children of this process so
/// far (`getrusage(RUSAGE_CHILDREN)`).
pub fn children_cpu() -> (f64, f64) {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is writable and lives across the call.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } != 0 {
        return (f64::NAN, f64::NAN);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(usage.ru_utime), secs(usage.ru_stime))
}
