//! The topology as a pure plan: which veth ends, addresses, policy-routing rules,
//! routes and tbf buckets a network of N paths gets, as data and `ip` argument lists.
//! Nothing here runs a command; the live network (`super`) carries the plan out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Policy routing: path `i` uses table `100 + i`, with a rule at priority `1000 + i`.
pub(super) const TABLE_BASE: usize = 100;
pub(super) const RULE_PRIORITY_BASE: usize = 1000;
/// The tbf queue holds this much traffic at the path's rate before it drops.
pub(crate) const TBF_LATENCY: &str = "50ms";
/// The smallest tbf bucket: one 64 KiB GSO/TSO packet plus its per-segment headers,
/// so tbf passes it whole instead of splitting it.
pub(super) const TBF_MIN_BURST: u64 = 96 * 1024;

/// Which MPTCP endpoints the in-kernel path manager gets, that is, who opens the
/// extra subflows. Paths `1..n` get endpoints; path 0 carries the initial subflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Endpoints {
    /// The client has a `subflow` endpoint on each extra path's address: it opens one
    /// subflow per extra path, towards the server address it connected to.
    #[default]
    ClientSubflow,
    /// The server has a `signal` endpoint on each extra path's address: it announces
    /// them (ADD_ADDR) and the client opens one subflow to each. The server must listen
    /// on the wildcard address for those joins to be accepted. With IPv4 and IPv6 both
    /// on, a connection on a dual-stack IPv6 socket is offered the IPv4 addresses too
    /// and gets subflows of both families.
    ServerSignal,
    /// No endpoints: connections keep their single initial subflow.
    None,
}

/// Which of the hosts; the middlebox and the paths refer to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Client,
    Server,
    Router,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    V4,
    V6,
}

impl Family {
    pub(super) fn flag(self) -> &'static str {
        match self {
            Family::V4 => "-4",
            Family::V6 => "-6",
        }
    }

    pub(super) fn prefix_len(self) -> u8 {
        match self {
            Family::V4 => 24,
            Family::V6 => 64,
        }
    }
}

/// One end of a veth pair: the host it is in, its name there, its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct End {
    pub(super) role: Role,
    pub(super) dev: String,
    /// The interface index, distinct from the peer's: see [`path_ends`].
    pub(super) index: u32,
    pub(super) v4: Ipv4Addr,
    pub(super) v6: Ipv6Addr,
}

impl End {
    pub(super) fn new(
        role: Role,
        name: &str,
        index_base: u32,
        subnet: u8,
        path: usize,
        host: u8,
    ) -> End {
        // `path < MAX_PATHS`, so it fits in an octet and in an IPv6 segment digit.
        let path = path as u8;
        End {
            role,
            dev: format!("{name}{path}"),
            index: index_base + u32::from(path),
            v4: Ipv4Addr::new(198, subnet, path, host),
            v6: Ipv6Addr::new(
                0x2001,
                0xdb8,
                u16::from(subnet - 18) * 0x10 + u16::from(path),
                0,
                0,
                0,
                0,
                u16::from(host),
            ),
        }
    }

    pub(super) fn addr(&self, family: Family) -> IpAddr {
        match family {
            Family::V4 => self.v4.into(),
            Family::V6 => self.v6.into(),
        }
    }

    /// The connected subnet of this end, e.g. `198.18.1.0/24`.
    pub(super) fn subnet(&self, family: Family) -> String {
        match family {
            Family::V4 => {
                let [a, b, c, _] = self.v4.octets();
                format!("{}/24", Ipv4Addr::new(a, b, c, 0))
            }
            Family::V6 => {
                let s = self.v6.segments();
                format!("{}/64", Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        }
    }
}

/// One veth pair; `shaped` links get a tbf qdisc on both ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Link {
    pub(super) ends: [End; 2],
    pub(super) shaped: bool,
}

/// The client's end, the server's end and (with a router) the router's two ends of a
/// path, following the address plan in the crate docs.
pub(super) struct PathEnds {
    pub(super) client: End,
    pub(super) server: End,
    /// The router's client-facing and server-facing ends.
    pub(super) router: Option<(End, End)>,
}

///
/// Each end gets its own interface index (client 100+i, router 200+i and 300+i,
/// server 400+i). In fresh namespaces both ends of a veth would otherwise get the
/// same index, and the kernel's link watch then treats the carrier change as not
/// urgent and applies it up to a second later: until then the interface is not
/// operational and IPv6 neighbour discovery stalls the first connection for a
/// second.
pub(super) fn path_ends(i: usize, router: bool) -> PathEnds {
    let client = End::new(Role::Client, "p", 100, 18, i, 1);
    if router {
        PathEnds {
            client,
            server: End::new(Role::Server, "p", 400, 19, i, 2),
            router: Some((
                End::new(Role::Router, "c", 200, 18, i, 254),
                End::new(Role::Router, "s", 300, 19, i, 254),
            )),
        }
    } else {
        PathEnds {
            client,
            server: End::new(Role::Server, "p", 400, 18, i, 2),
            router: None,
        }
    }
}

/// The veth pairs of path `i`: client-server, or client-router and router-server.
pub(super) fn path_links(i: usize, router: bool) -> Vec<Link> {
    let PathEnds {
        client,
        server,
        router,
    } = path_ends(i, router);
    match router {
        None => vec![Link {
            ends: [client, server],
            shaped: true,
        }],
        Some((router_c, router_s)) => vec![
            Link {
                ends: [client, router_c],
                shaped: false,
            },
            Link {
                ends: [router_s, server],
                shaped: true,
            },
        ],
    }
}

/// `ip rule` commands for path `i` (added once): subflows from the client's path-`i`
/// address, and everything the router receives from path `i`, use table `100 + i`.
pub(super) fn rule_commands(i: usize, router: bool, family: Family) -> Vec<(Role, Vec<String>)> {
    let ends = path_ends(i, router);
    let table = (TABLE_BASE + i).to_string();
    let priority = (RULE_PRIORITY_BASE + i).to_string();
    let mut cmds = vec![(
        Role::Client,
        args([
            family.flag(),
            "rule",
            "add",
            "from",
            &ends.client.addr(family).to_string(),
            "table",
            &table,
            "priority",
            &priority,
        ]),
    )];
    if let Some((router_c, _)) = &ends.router {
        cmds.push((
            Role::Router,
            args([
                family.flag(),
                "rule",
                "add",
                "iif",
                &router_c.dev,
                "table",
                &table,
                "priority",
                &priority,
            ]),
        ));
    }
    cmds
}

/// `ip route replace` commands for path `i`. Idempotent, so they run at build time and
/// again when the path comes back up (taking a link down deletes its routes).
pub(super) fn route_commands(i: usize, router: bool, family: Family) -> Vec<(Role, Vec<String>)> {
    let ends = path_ends(i, router);
    let table = (TABLE_BASE + i).to_string();
    let route = |gateway: &End, dev: &str, dest: &str, table: Option<&str>| {
        let mut a = args([
            family.flag(),
            "route",
            "replace",
            dest,
            "via",
            &gateway.addr(family).to_string(),
            "dev",
            dev,
        ]);
        if let Some(table) = table {
            a.extend(args(["table", table]));
        }
        a
    };
    match &ends.router {
        None => vec![(
            Role::Client,
            route(&ends.server, &ends.client.dev, "default", Some(&table)),
        )],
        Some((router_c, router_s)) => vec![
            (
                Role::Client,
                route(router_c, &ends.client.dev, "default", Some(&table)),
            ),
            (
                Role::Client,
                route(
                    router_c,
                    &ends.client.dev,
                    &ends.server.subnet(family),
                    None,
                ),
            ),
            (
                Role::Server,
                route(
                    router_s,
                    &ends.server.dev,
                    &ends.client.subnet(family),
                    None,
                ),
            ),
            (
                Role::Router,
                route(&ends.server, &router_s.dev, "default", Some(&table)),
            ),
        ],
    }
}

pub(super) fn args<const N: usize>(items: [&str; N]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// tbf bucket size for `rate_mbit`: about one 4 ms tick of traffic, and never less
/// than [`TBF_MIN_BURST`].
pub(crate) fn tbf_burst(rate_mbit: u32) -> u64 {
    let bytes_per_sec = u64::from(rate_mbit) * 1_000_000 / 8;
    (bytes_per_sec / 250).max(TBF_MIN_BURST)
}

/// Whether `ip -o link show` output has `dev` in operational state UP.
pub(crate) fn link_is_up(text: &str, dev: &str) -> bool {
    text.lines().any(|line| {
        let mut fields = line.split_whitespace();
        let name = fields.nth(1).unwrap_or_default();
        let name = name.trim_end_matches(':');
        let name = name.split_once('@').map_or(name, |(name, _)| name);
        name == dev && line.contains(" state UP ")
    })
}
