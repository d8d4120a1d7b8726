//! `--netns NAME`: move the whole process into a named network namespace.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

use crate::error::Error;

/// Where `ip netns add` keeps its namespaces.
const NETNS_DIR: &str = "/run/netns";

/// Moves the calling thread into `/run/netns/NAME` (`setns(2)`, `CLONE_NEWNET`).
///
/// Called from `main` before any thread, socket or runtime exists: a namespace
/// belongs to a thread, and threads started later inherit it, so everything the
/// command does afterwards (netlink, sockets, `/proc/sys/net`, `/proc/thread-self/net`)
/// happens inside the namespace.
pub fn enter(name: &str) -> Result<(), Error> {
    let path = Path::new(NETNS_DIR).join(name);
    let file = File::open(&path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::msg(format!(
            "network namespace {name:?} does not exist (no {}; see `ip netns list`)",
            path.display()
        )),
        _ => Error::io(format!("cannot open network namespace {name:?}"), e),
    })?;
    move_into_link_name_space(file.as_fd(), Some(LinkNameSpaceType::Network)).map_err(|e| {
        let e = io::Error::from(e);
        match e.kind() {
            io::ErrorKind::PermissionDenied => Error::msg(format!(
                "cannot enter network namespace {name:?}: permission denied (needs \
                 CAP_SYS_ADMIN: run as root)"
            )),
            _ => Error::io(
                format!(
                    "cannot enter network namespace {name:?} ({} is not one?)",
                    path.display()
                ),
                e,
            ),
        }
    })
}
