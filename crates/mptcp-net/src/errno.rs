//! What a failed `getsockopt` on a socket means: the errno tests that the status
//! probe ([`crate::status`]) and the introspection calls (`MPTCP_INFO`, subflows)
//! share. One floor above [`crate::sys`], which they call; below both users, so
//! neither borrows from the other.

use std::io;
use std::os::fd::BorrowedFd;

use crate::sys::{self, IPPROTO_MPTCP};

/// The errors that mean "no such option here" or "not MPTCP (any more)".
pub(crate) const NOT_HERE: &[i32] = &[libc::EOPNOTSUPP, libc::ENOPROTOOPT];

/// The errno of `err` if it is one of `codes`.
pub(crate) fn errno_in(err: &io::Error, codes: &[i32]) -> bool {
    err.raw_os_error().is_some_and(|e| codes.contains(&e))
}

/// The socket's protocol (`SO_PROTOCOL`): `IPPROTO_TCP`, `IPPROTO_MPTCP`, ...
pub(crate) fn protocol(fd: BorrowedFd<'_>) -> io::Result<i32> {
    sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL)
}

/// The error for a socket that is neither TCP nor MPTCP.
pub(crate) fn not_tcp(protocol: i32) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("not a TCP or MPTCP socket (protocol {protocol})"),
    )
}

/// A clearer error than ENOPROTOOPT when the fd is not a TCP socket.
pub(crate) fn explain(fd: BorrowedFd<'_>, err: io::Error) -> io::Error {
    match protocol(fd) {
        Ok(p) if p != IPPROTO_MPTCP && p != libc::IPPROTO_TCP => not_tcp(p),
        _ => err,
    }
}
