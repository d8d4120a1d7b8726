//! The only place with `unsafe`: raw `getsockopt(2)` calls and the MPTCP
//! `socket(2)` call (with the test seam that injects errors into it).
//!
//! Constants come from the kernel's `include/uapi/linux/mptcp.h` and
//! `include/uapi/linux/tcp.h`; libc does not carry them.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use socket2::{Domain, Protocol, Socket, Type};

/// `IPPROTO_MPTCP`.
pub(crate) const IPPROTO_MPTCP: libc::c_int = 262;
/// `SOL_MPTCP`: the socket-option level of MPTCP (getsockopt only).
pub(crate) const SOL_MPTCP: libc::c_int = 284;
/// `MPTCP_INFO` (5.16+): `struct mptcp_info`.
pub(crate) const MPTCP_INFO: libc::c_int = 1;
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

/// `socket(domain, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_MPTCP)`.
pub(crate) fn mptcp_socket(domain: Domain) -> io::Result<Socket> {
    #[cfg(feature = "test-seam")]
    if let Some(errno) = crate::seam::on_mptcp_socket() {
        return Err(io::Error::from_raw_os_error(errno));
    }
    Socket::new(domain, Type::STREAM, Some(Protocol::MPTCP))
}

/// The errno of `err` if it is one of `codes`.
pub(crate) fn errno_in(err: &io::Error, codes: &[i32]) -> bool {
    err.raw_os_error().is_some_and(|e| codes.contains(&e))
}
