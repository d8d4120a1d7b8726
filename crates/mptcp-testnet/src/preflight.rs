//! Checks that this machine can build a test network at all.

use std::path::Path;

use crate::{cmd, Error};

/// Checks what every test network needs, and reports every missing item at once:
/// root (effective uid 0), `ip` and `tc` from iproute2, and a kernel with MPTCP
/// (`/proc/sys/net/mptcp`). `iptables` is only checked when the middlebox is used
/// ([`TestNet::set_strip_mptcp`](crate::TestNet::set_strip_mptcp)), `nft` by
/// [`Fleet::preflight`](crate::Fleet::preflight).
///
/// [`TestNet`](crate::TestNet) runs this before building; call it yourself to fail
/// early with one clear message.
///
/// # Errors
/// [`Error::Preflight`] listing each problem ([`Error::NotRoot`],
/// [`Error::MissingTool`], [`Error::Unsupported`]).
pub fn preflight() -> Result<(), Error> {
    preflight_with(&[])
}

/// [`preflight`] plus the tools a particular network needs, e.g. `nft` for a
/// [`Fleet`](crate::Fleet).
pub(crate) fn preflight_with(extra_tools: &[&str]) -> Result<(), Error> {
    let mut problems = Vec::new();
    if !rustix::process::geteuid().is_root() {
        problems.push(Error::NotRoot);
    }
    for &tool in ["ip", "tc"].iter().chain(extra_tools) {
        if let Err(e) = cmd::find_tool(tool) {
            problems.push(e);
        }
    }
    if !Path::new("/proc/sys/net/mptcp").is_dir() {
        problems.push(Error::Unsupported {
            what: "/proc/sys/net/mptcp (kernel MPTCP support)".into(),
            hint: "use a Linux >= 5.6 kernel built with CONFIG_MPTCP=y".into(),
        });
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Preflight(problems))
    }
}
