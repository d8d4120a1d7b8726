//! `--netns NAME`: move the whole process into a named network namespace.

use crate::error::Error;

/// Moves the calling thread into `/run/netns/NAME` ([`mptcp_netlink::netns::enter`]).
///
/// Called from `main` before any thread, socket or runtime exists: a namespace
/// belongs to a thread, and threads started later inherit it, so everything the
/// command does afterwards (netlink, sockets, `/proc/sys/net`, `/proc/thread-self/net`)
/// happens inside the namespace.
pub fn enter(name: &str) -> Result<(), Error> {
    mptcp_netlink::netns::enter(name).map_err(Error::msg)
}
