//! What the local checks look at: read from the kernel and the interfaces once each
//! ([`gather`]), or built by hand from a recording (the unit tests do).

use std::net::IpAddr;

use mptcp_net::Support;
use mptcp_netlink::{sysctl, Counters, Endpoint, Limits, PathManager};
use mptcp_pm::rtnl::Rtnl;
use mptcp_pm::HostState;

/// An address of one of this host's interfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddr {
    /// The interface's name.
    pub interface: String,
    /// The address.
    pub ip: IpAddr,
    /// The interface is up.
    pub up: bool,
    /// The interface is a loopback.
    pub loopback: bool,
}

impl HostAddr {
    /// The addresses of `host`, in the kernel's order, each with its interface's name
    /// and state; an address whose interface is not in `host` is left out.
    pub fn of_host(host: &HostState) -> Vec<HostAddr> {
        host.addresses
            .iter()
            .filter_map(|a| {
                let link = host.links.get(&a.ifindex)?;
                Some(HostAddr {
                    interface: link.name.clone(),
                    ip: a.address,
                    up: link.admin_up,
                    loopback: link.loopback,
                })
            })
            .collect()
    }

    /// An address a subflow could use: on an interface that is up, not loopback, not
    /// link-local, unicast.
    pub fn usable(&self) -> bool {
        let ip_ok = match self.ip {
            IpAddr::V4(v4) => {
                !(v4.is_loopback()
                    || v4.is_link_local()
                    || v4.is_unspecified()
                    || v4.is_multicast()
                    || v4.is_broadcast())
            }
            IpAddr::V6(v6) => {
                !(v6.is_loopback() || v6.is_unspecified() || v6.is_multicast())
                    && (v6.segments()[0] & 0xffc0) != 0xfe80
            }
        };
        self.up && !self.loopback && ip_ok
    }
}

/// Everything the local checks look at, each read once.
#[derive(Debug)]
pub struct Facts {
    /// Can MPTCP sockets be created here.
    pub support: Result<Support, String>,
    /// The `net.mptcp.*` sysctls by short name; empty when the kernel has none.
    pub sysctls: Result<Vec<(String, String)>, String>,
    /// The path manager's limits.
    pub limits: Result<Limits, String>,
    /// The path manager's endpoints.
    pub endpoints: Result<Vec<Endpoint>, String>,
    /// The host's interface addresses.
    pub addresses: Result<Vec<HostAddr>, String>,
    /// The MPTCP MIB counters.
    pub counters: Result<Counters, String>,
}

impl Facts {
    /// A `net.mptcp.*` sysctl's value by its short name (`enabled`, `scheduler`).
    pub fn sysctl(&self, name: &str) -> Option<&str> {
        self.sysctls
            .as_ref()
            .ok()?
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path manager in use, from `path_manager` or the older `pm_type`.
    pub fn path_manager(&self) -> Option<&str> {
        self.sysctl("path_manager")
            .or_else(|| match self.sysctl("pm_type")? {
                "0" => Some("kernel"),
                "1" => Some("userspace"),
                other => Some(other),
            })
    }

    /// The userspace path manager is in use: endpoints and limits do not apply.
    pub fn userspace_pm(&self) -> bool {
        self.path_manager() == Some("userspace")
    }
}

/// Reads everything the local checks need.
pub fn gather() -> Facts {
    let pm = PathManager::open().map_err(|e| e.to_string());
    Facts {
        support: mptcp_net::support().map_err(|e| e.to_string()),
        sysctls: match sysctl::all() {
            Ok(all) => Ok(all),
            // No /proc/sys/net/mptcp: a kernel without MPTCP; the lines say so.
            Err(mptcp_netlink::Error::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(e.to_string()),
        },
        limits: pm
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|pm| pm.limits().map_err(|e| e.to_string())),
        endpoints: pm
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|pm| pm.endpoints().map_err(|e| e.to_string())),
        addresses: host_addresses(),
        counters: Counters::read().map_err(|e| e.to_string()),
    }
}

/// The addresses of this namespace's interfaces, from the same rtnetlink dump the
/// path-manager daemon plans with ([`mptcp_pm::rtnl::Rtnl::snapshot`]).
fn host_addresses() -> Result<Vec<HostAddr>, String> {
    let host = Rtnl::open()
        .and_then(|mut rtnl| rtnl.snapshot())
        .map_err(|e| format!("cannot list the interfaces' addresses: {e}"))?;
    Ok(HostAddr::of_host(&host))
}
