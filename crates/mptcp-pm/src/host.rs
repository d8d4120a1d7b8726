//! What the daemon knows of the host: its links, addresses and default routes, as
//! plain data. The rtnetlink layer ([`crate::rtnl`]) fills it; the planner
//! ([`crate::plan()`]) only reads it, so tests build it by hand.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

/// A link's operational state (RFC 2863, `IFLA_OPERSTATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OperState {
    /// The driver does not say (loopback, some tunnels): judged by the flags.
    Unknown,
    /// A component is missing.
    NotPresent,
    /// Down.
    Down,
    /// Down because a lower layer is (a veth whose peer is down, a VLAN on a dead NIC).
    LowerLayerDown,
    /// In a test mode.
    Testing,
    /// Waiting for an external event (Wi-Fi not associated, 802.1X).
    Dormant,
    /// Up.
    Up,
}

/// One network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    /// The interface index.
    pub index: u32,
    /// The name, e.g. `eth0`.
    pub name: String,
    /// Administratively up (`IFF_UP`, `ip link set up`).
    pub admin_up: bool,
    /// Carrier present (`IFF_LOWER_UP`); a pulled cable or a dead peer clears it.
    pub lower_up: bool,
    /// The operational state.
    pub oper: OperState,
    /// A loopback interface (`IFF_LOOPBACK`).
    pub loopback: bool,
}

impl Link {
    /// Why the link cannot carry subflows, or `None` when it can: administratively up,
    /// with carrier, and operational (`up`, or `unknown` for drivers that never say).
    pub fn unusable(&self) -> Option<String> {
        if !self.admin_up {
            return Some(format!("{} is down", self.name));
        }
        if !self.lower_up {
            return Some(format!("{} has no carrier (NO-CARRIER)", self.name));
        }
        match self.oper {
            OperState::Up | OperState::Unknown => None,
            other => Some(format!("{} is not operational (state {other})", self.name)),
        }
    }
}

/// The `IFA_F_*` flags of an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct AddrFlags(pub u32);

impl AddrFlags {
    /// `IFA_F_TEMPORARY` (`IFA_F_SECONDARY` for IPv4): an IPv6 privacy address.
    pub const TEMPORARY: u32 = 0x01;
    /// `IFA_F_DADFAILED`.
    pub const DADFAILED: u32 = 0x08;
    /// `IFA_F_DEPRECATED`.
    pub const DEPRECATED: u32 = 0x20;
    /// `IFA_F_TENTATIVE`: duplicate address detection is still running.
    pub const TENTATIVE: u32 = 0x40;

    /// Whether `flag` is set.
    pub fn has(self, flag: u32) -> bool {
        self.0 & flag != 0
    }
}

/// One address of an interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    /// The interface index.
    pub ifindex: u32,
    /// The local address.
    pub address: IpAddr,
    /// The prefix length.
    pub prefix_len: u8,
    /// `IFA_F_*`.
    pub flags: AddrFlags,
}

/// A default route (`0.0.0.0/0` or `::/0`) through an interface, in any table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DefaultRoute {
    /// IPv6 (`true`) or IPv4.
    pub ipv6: bool,
    /// The interface the route (or one of its next hops) goes through.
    pub ifindex: u32,
    /// The routing table.
    pub table: u32,
}

/// Everything the planner needs to know of the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostState {
    /// The interfaces, by index.
    pub links: BTreeMap<u32, Link>,
    /// The addresses, in the kernel's order (an interface's first address first).
    pub addresses: Vec<Address>,
    /// The default routes.
    pub default_routes: Vec<DefaultRoute>,
    /// The effective IPv4 `rp_filter` of each interface (the larger of `all` and the
    /// interface's own), where it could be read.
    pub rp_filter: BTreeMap<u32, u8>,
    /// The local addresses of the listening MPTCP sockets (read by a server's daemon;
    /// empty when none listens or they were not read). Joins to an address reach a
    /// listener only if it is bound to that address or to the wildcard.
    pub mptcp_listeners: Vec<std::net::SocketAddr>,
}

impl HostState {
    /// Whether a default route of that family goes through `ifindex`.
    pub fn has_default_route(&self, ifindex: u32, ipv6: bool) -> bool {
        self.default_routes
            .iter()
            .any(|r| r.ifindex == ifindex && r.ipv6 == ipv6)
    }
}

impl fmt::Display for OperState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OperState::Unknown => "unknown",
            OperState::NotPresent => "not_present",
            OperState::Down => "down",
            OperState::LowerLayerDown => "lower_layer_down",
            OperState::Testing => "testing",
            OperState::Dormant => "dormant",
            OperState::Up => "up",
        })
    }
}

/// The MPTCP listeners a server's daemon watches: what it announces depends on the
/// addresses they are bound to ([`HostState::mptcp_listeners`]). Read every
/// [`ListenerWatch::EVERY`] (one `sock_diag` dump of listening sockets per family).
#[derive(Debug, Default)]
pub(crate) struct ListenerWatch {
    /// The listeners last read, sorted.
    pub(crate) current: Vec<std::net::SocketAddr>,
    next: Option<std::time::Instant>,
    failing: bool,
}

impl ListenerWatch {
    pub(crate) const EVERY: std::time::Duration = std::time::Duration::from_secs(2);

    /// Reads the listeners when due. `Ok(true)` when they changed; an error once, when
    /// reading starts failing (the last set stays in use).
    pub(crate) fn poll(&mut self, now: std::time::Instant) -> Result<bool, String> {
        if self.next.is_some_and(|t| now < t) {
            return Ok(false);
        }
        self.next = Some(now + Self::EVERY);
        match mptcp_netlink::listeners() {
            Ok(mut found) => {
                self.failing = false;
                found.sort();
                found.dedup();
                let changed = found != self.current;
                self.current = found;
                Ok(changed)
            }
            Err(e) if !self.failing => {
                self.failing = true;
                Err(format!("cannot list the MPTCP listeners: {e}"))
            }
            Err(_) => Ok(false),
        }
    }
}
