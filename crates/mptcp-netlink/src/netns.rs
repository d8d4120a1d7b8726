//! Entering a named network namespace (`ip netns add NAME`): the one place that does it
//! for the `mptcp` command's `--netns`, the exporter's per-namespace threads and the
//! test network.
//!
//! A network namespace belongs to a thread: after [`enter`], everything the calling
//! thread does (netlink sockets, `sock_diag`, `/proc/thread-self/net`, `/proc/sys/net`,
//! new sockets) happens inside the namespace, and threads it starts later inherit it.
//! Sockets keep the namespace they were created in, whatever thread uses them.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

/// Where `ip netns add` keeps its namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// `/run/netns/NAME`.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Opens `/run/netns/NAME`, to [`enter_fd`] it later (from another thread, or
/// several times).
///
/// # Errors
/// [`io::ErrorKind::NotFound`] when there is no such namespace (the message says
/// where to look); any other error of `open(2)`.
pub fn open(name: &str) -> io::Result<File> {
    let path = path(name);
    File::open(&path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "network namespace {name:?} does not exist (no {}; see `ip netns list`)",
                path.display()
            ),
        ),
        _ => io::Error::new(
            e.kind(),
            format!("cannot open network namespace {name:?}: {e}"),
        ),
    })
}

/// Moves the calling thread into the namespace `ns` refers to (`setns(2)` with
/// `CLONE_NEWNET`); `name` is only for the error message.
///
/// # Errors
/// [`io::ErrorKind::PermissionDenied`] without `CAP_SYS_ADMIN` (the message says so);
/// `EINVAL` when `ns` is not a network namespace.
pub fn enter_fd(ns: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    move_into_link_name_space(ns, Some(LinkNameSpaceType::Network)).map_err(|e| {
        let e = io::Error::from(e);
        let message = match e.kind() {
            io::ErrorKind::PermissionDenied => format!(
                "cannot enter network namespace {name:?}: permission denied (needs \
                 CAP_SYS_ADMIN: run as root)"
            ),
            _ => format!(
                "cannot enter network namespace {name:?} ({} is not one?): {e}",
                path(name).display()
            ),
        };
        io::Error::new(e.kind(), message)
    })
}

/// Moves the calling thread into `/run/netns/NAME`: [`open`], then [`enter_fd`].
///
/// # Errors
/// As [`open`] and [`enter_fd`]; each message names the namespace and the fix.
pub fn enter(name: &str) -> io::Result<()> {
    enter_fd(open(name)?.as_fd(), name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_namespace_says_where_it_looked() {
        let e = enter("mptcp-no-such-netns").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_eq!(
            e.to_string(),
            "network namespace \"mptcp-no-such-netns\" does not exist \
             (no /run/netns/mptcp-no-such-netns; see `ip netns list`)"
        );
    }
}
