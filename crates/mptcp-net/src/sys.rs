//! The only place with `unsafe`: raw `getsockopt(2)` calls, the MPTCP
//! `socket(2)` call (with the test seam that injects errors into it) and the
//! `poll(2)` that waits for racing connects (Happy Eyeballs).
//!
//! Constants come from the kernel's `include/uapi/linux/mptcp.h` and
//! `include/uapi/linux/tcp.h`; libc does not carry them.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

/// `IPPROTO_MPTCP`.
pub(crate) const IPPROTO_MPTCP: libc::c_int = 262;
/// `SOL_MPTCP`: the socket-option level of MPTCP (getsockopt only).
pub(crate) const SOL_MPTCP: libc::c_int = 284;
/// `MPTCP_INFO` (5.16+): `struct mptcp_info`.
pub(crate) const MPTCP_INFO: libc::c_int = 1;
/// `MPTCP_TCPINFO` (5.16+): `struct mptcp_subflow_data` + `struct tcp_info[]`.
pub(crate) const MPTCP_TCPINFO: libc::c_int = 2;
/// `MPTCP_SUBFLOW_ADDRS` (5.16+): `struct mptcp_subflow_data` + `struct mptcp_subflow_addrs[]`.
pub(crate) const MPTCP_SUBFLOW_ADDRS: libc::c_int = 3;
/// `MPTCP_FULL_INFO` (6.5+): `struct mptcp_full_info` with user-space array pointers.
pub(crate) const MPTCP_FULL_INFO: libc::c_int = 4;
/// `TCP_IS_MPTCP` at `SOL_TCP` (6.10+): 1 while MPTCP is used, 0 otherwise.
pub(crate) const TCP_IS_MPTCP: libc::c_int = 43;

/// `getsockopt(fd, level, name, &int, sizeof int)`.
pub(crate) fn getsockopt_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid, writable and live for the call;
    // `len` tells the kernel how many bytes `value` holds.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `getsockopt(fd, level, name, buf, len)`; returns the length the kernel
/// wrote back (which may be shorter than `buf`).
///
/// An empty `buf` passes optlen 0: since 6.10, `MPTCP_INFO` answers that at
/// once, which makes it a cheap "is MPTCP still on?" check.
pub(crate) fn getsockopt_buf(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    buf: &mut [u8],
) -> io::Result<usize> {
    let mut len = libc::socklen_t::try_from(buf.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "getsockopt buffer too large"))?;
    // SAFETY: `buf` is valid for writes of `len` bytes for the duration of the
    // call (a zero-length buffer's dangling pointer is never written through,
    // since the kernel copies at most `len` bytes).
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc == 0 {
        // The kernel never reports more than it was given, but do not trust
        // it blindly.
        Ok((len as usize).min(buf.len()))
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The cookie of the network namespace `fd` belongs to (`SO_NETNS_COOKIE`,
/// Linux 5.14+); `None` where the kernel does not have it.
#[cfg(target_os = "linux")]
pub(crate) fn netns_cookie(fd: BorrowedFd<'_>) -> Option<u64> {
    let mut buf = [0u8; 8];
    match getsockopt_buf(fd, libc::SOL_SOCKET, libc::SO_NETNS_COOKIE, &mut buf) {
        Ok(8) => Some(u64::from_ne_bytes(buf)),
        _ => None,
    }
}

/// `socket(domain, ty | SOCK_CLOEXEC, IPPROTO_MPTCP)`.
pub(crate) fn mptcp_socket(domain: Domain, ty: Type) -> io::Result<Socket> {
    #[cfg(feature = "test-seam")]
    if let Some(errno) = crate::seam::on_mptcp_socket() {
        return Err(io::Error::from_raw_os_error(errno));
    }
    Socket::new(domain, ty, Some(Protocol::MPTCP))
}

/// `getsockopt(SOL_MPTCP, MPTCP_FULL_INFO)`: the kernel fills `header` (a
/// `struct mptcp_full_info`) and, through the two user pointers it carries,
/// up to `count` elements of `sf_size` bytes in `subflow_info` and of
/// `tcp_size` bytes in `tcp_info`. Returns the header length written back.
pub(crate) fn mptcp_full_info(
    fd: BorrowedFd<'_>,
    header: &mut [u8; crate::info::wire::FULL_INFO_LEN],
    subflow_info: &mut [u8],
    tcp_info: &mut [u8],
    count: u32,
    sf_size: u32,
    tcp_size: u32,
) -> io::Result<usize> {
    let fits = |buf: &[u8], size: u32| {
        u64::try_from(buf.len()).is_ok_and(|len| len >= u64::from(count) * u64::from(size))
    };
    if !fits(subflow_info, sf_size) || !fits(tcp_info, tcp_size) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "MPTCP_FULL_INFO arrays smaller than announced",
        ));
    }
    *header = crate::info::wire::full_info_request(
        tcp_size,
        sf_size,
        count,
        subflow_info.as_mut_ptr() as u64,
        tcp_info.as_mut_ptr() as u64,
    );
    let mut len = header.len() as libc::socklen_t;
    // SAFETY: `header` is valid for writes of `len` bytes. The kernel also
    // writes through the two pointers inside it: at most `count` elements of
    // at most `sf_size` / `tcp_size` bytes (it clamps sizes down, never up),
    // which `fits` checked the arrays hold; the exclusive borrows of both
    // arrays last until the call returns, so nothing else observes them.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            SOL_MPTCP,
            MPTCP_FULL_INFO,
            header.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok((len as usize).min(header.len()))
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `poll(2)` for `POLLOUT` on connecting sockets: waits until one of `fds`
/// has finished connecting (or failed: `POLLERR`/`POLLHUP`), at most
/// `timeout` (`None`: no limit). Returns which ones are ready; all `false`
/// on timeout or `EINTR` (the caller looks at its clocks and polls again).
pub(crate) fn poll_connecting(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
) -> io::Result<Vec<bool>> {
    let mut pollfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        })
        .collect();
    // Rounded up, so a wait of less than a millisecond does not spin with 0.
    let timeout_ms = match timeout {
        None => -1,
        Some(t) => {
            let ms = t.as_nanos().div_ceil(1_000_000);
            libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
        }
    };
    let count = libc::nfds_t::try_from(pollfds.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many sockets to poll"))?;
    // SAFETY: `pollfds` is a valid, writable array of `count` `pollfd`s that
    // lives for the call; the kernel writes only their `revents`. The fds are
    // borrowed, so they stay open for the call.
    let rc = unsafe { libc::poll(pollfds.as_mut_ptr(), count, timeout_ms) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![false; pollfds.len()]);
        }
        return Err(err);
    }
    Ok(pollfds
        .iter()
        .map(|p| p.revents & (libc::POLLOUT | libc::POLLERR | libc::POLLHUP) != 0)
        .collect())
}
