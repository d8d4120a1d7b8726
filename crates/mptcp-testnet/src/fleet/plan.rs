//! The fleet's address plan and the rules it installs, as pure functions: names,
//! addresses, `ip` arguments and nftables rule sets, tested without a kernel.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The anycast / virtual address clients connect to, IPv4.
pub(crate) const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 1);
/// The anycast / virtual address clients connect to, IPv6.
pub(crate) const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x200, 0, 0, 0, 0, 1);
/// The backends' subnets together, as the balancer's filter names them: every
/// `198.19.<k>.0/24` and every `2001:db8:b<k>::/64` (k < 16).
const BACKENDS_NET4: &str = "198.19.0.0/16";
const BACKENDS_NET6: &str = "2001:db8:b0::/44";
/// The third IPv6 segment of backend `k`'s subnet is `0xb0 + k`: `2001:db8:b<k>::/64`.
const BACKEND_SEGMENT6: u16 = 0xb0;
/// Interface indexes: client `p<i>` 100+i, balancer `c<i>` 200+i and `b<k>` 300+k,
/// backend `eth0` 400+k (the ends of each veth differ; see the crate docs).
const CLIENT_INDEX: u32 = 100;
const BALANCER_CLIENT_INDEX: u32 = 200;
const BALANCER_BACKEND_INDEX: u32 = 300;
const BACKEND_INDEX: u32 = 400;
/// Policy routing on the client: path `i` uses table 100+i, rule priority 1000+i.
const TABLE_BASE: usize = 100;
const RULE_PRIORITY_BASE: usize = 1000;
/// The metric of a path table's fallback `unreachable` route: above any real route's.
const UNREACHABLE_METRIC: &str = "65535";
/// The backend's interface towards the balancer.
pub(crate) const BACKEND_DEV: &str = "eth0";
/// The nftables tables the fleet owns on the balancer; every other name (a balancer
/// daemon's `mptcp_lb*`) is left free.
pub(crate) const FILTER_TABLE: &str = "fleet_filter";
pub(crate) const NAT_TABLE: &str = "fleet_nat";

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// `-4` or `-6`, for `ip`.
    pub(crate) fn flag(self) -> &'static str {
        match self {
            Family::V4 => "-4",
            Family::V6 => "-6",
        }
    }

    /// The family of an address.
    pub fn of(addr: IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// nftables' name of the network header: `ip` or `ip6`.
    fn nft(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// One interface of the plan: its name, index and the address of each family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Iface {
    pub(crate) dev: String,
    pub(crate) index: u32,
    v4: Ipv4Addr,
    v6: Ipv6Addr,
}

impl Iface {
    fn new(dev: String, index: u32, v4: Ipv4Addr, v6: Ipv6Addr) -> Iface {
        Iface { dev, index, v4, v6 }
    }

    pub(crate) fn addr(&self, family: Family) -> IpAddr {
        match family {
            Family::V4 => self.v4.into(),
            Family::V6 => self.v6.into(),
        }
    }

    /// `addr/prefix` (every link is a /24 and a /64), as `ip addr add` takes it.
    pub(crate) fn cidr(&self, family: Family) -> String {
        match family {
            Family::V4 => format!("{}/24", self.v4),
            Family::V6 => format!("{}/64", self.v6),
        }
    }
}

fn v6(segment: u16, host: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, segment, 0, 0, 0, 0, host)
}

/// The path index fits an octet and a hex digit: paths and backends are checked
/// against their maxima (4 and 8) before any plan is made.
fn octet(n: usize) -> u8 {
    u8::try_from(n).unwrap_or(u8::MAX)
}

/// The client's end of path `i`: `p<i>`, `198.18.<i>.1`, `2001:db8:<i>::1`.
pub(crate) fn client_end(i: usize) -> Iface {
    let n = octet(i);
    Iface::new(
        format!("p{i}"),
        CLIENT_INDEX + u32::from(n),
        Ipv4Addr::new(198, 18, n, 1),
        v6(u16::from(n), 1),
    )
}

/// The balancer's end of path `i`: `c<i>`, `198.18.<i>.254`, `2001:db8:<i>::fe`.
pub(crate) fn balancer_client_end(i: usize) -> Iface {
    let n = octet(i);
    Iface::new(
        format!("c{i}"),
        BALANCER_CLIENT_INDEX + u32::from(n),
        Ipv4Addr::new(198, 18, n, 254),
        v6(u16::from(n), 0xfe),
    )
}

/// The balancer's end towards backend `k`: `b<k>`, `198.19.<k>.254`, `2001:db8:b<k>::fe`.
pub(crate) fn balancer_backend_end(k: usize) -> Iface {
    let n = octet(k);
    Iface::new(
        format!("b{k}"),
        BALANCER_BACKEND_INDEX + u32::from(n),
        Ipv4Addr::new(198, 19, n, 254),
        v6(BACKEND_SEGMENT6 + u16::from(n), 0xfe),
    )
}

/// Backend `k`'s end: `eth0`, `198.19.<k>.2`, `2001:db8:b<k>::2`.
pub(crate) fn backend_end(k: usize) -> Iface {
    let n = octet(k);
    Iface::new(
        BACKEND_DEV.to_string(),
        BACKEND_INDEX + u32::from(n),
        Ipv4Addr::new(198, 19, n, 2),
        v6(BACKEND_SEGMENT6 + u16::from(n), 2),
    )
}

/// The VIP of a family.
pub(crate) fn vip(family: Family) -> IpAddr {
    match family {
        Family::V4 => VIP4.into(),
        Family::V6 => VIP6.into(),
    }
}

/// The VIP as a host route / `lo` address: `198.18.200.1/32`, `2001:db8:200::1/128`.
pub(crate) fn vip_host(family: Family) -> String {
    match family {
        Family::V4 => format!("{VIP4}/32"),
        Family::V6 => format!("{VIP6}/128"),
    }
}

fn strings<const N: usize>(items: [&str; N]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The client's `ip rule` for path `i`: its address uses table 100+i.
pub(crate) fn client_rule(i: usize, family: Family) -> Vec<String> {
    strings([
        family.flag(),
        "rule",
        "add",
        "from",
        &client_end(i).addr(family).to_string(),
        "table",
        &(TABLE_BASE + i).to_string(),
        "priority",
        &(RULE_PRIORITY_BASE + i).to_string(),
    ])
}

/// The client's routes for path `i`: the default route via the balancer in table
/// 100+i, and for path 0 also in the main table. Idempotent (`replace`), so they are
/// put back when the path comes up again.
pub(crate) fn client_routes(i: usize, family: Family) -> Vec<Vec<String>> {
    let (own, gateway) = (client_end(i), balancer_client_end(i));
    let gateway = gateway.addr(family).to_string();
    let route = |table: Option<String>| {
        let mut a = strings([
            family.flag(),
            "route",
            "replace",
            "default",
            "via",
            &gateway,
            "dev",
            &own.dev,
        ]);
        if let Some(table) = table {
            a.extend(["table".to_string(), table]);
        }
        a
    };
    let table = (TABLE_BASE + i).to_string();
    let mut routes = vec![route(Some(table.clone()))];
    // While the path is down its default route is gone (the kernel removes the
    // routes of a link that goes down); this one then makes sends from the path's
    // address fail at once instead of leaking out through the main table's default.
    routes.push(strings([
        family.flag(),
        "route",
        "replace",
        "unreachable",
        "default",
        "metric",
        UNREACHABLE_METRIC,
        "table",
        &table,
    ]));
    if i == 0 {
        routes.push(route(None));
    }
    routes
}

/// Backend `k`'s default route, via the balancer: replies go back through it.
pub(crate) fn backend_route(k: usize, family: Family) -> Vec<String> {
    strings([
        family.flag(),
        "route",
        "replace",
        "default",
        "via",
        &balancer_backend_end(k).addr(family).to_string(),
        "dev",
        BACKEND_DEV,
    ])
}

/// The route balancer: one multipath route to the VIP with a next hop per backend.
pub(crate) fn ecmp_route(backends: usize, family: Family) -> Vec<String> {
    let mut a = strings([family.flag(), "route", "replace", &vip_host(family)]);
    for k in 0..backends {
        let (own, hop) = (balancer_backend_end(k), backend_end(k));
        a.extend(strings([
            "nexthop",
            "via",
            &hop.addr(family).to_string(),
            "dev",
            &own.dev,
        ]));
    }
    a
}

/// The balancer's filter: from the client side (`c*`) only the VIP is reachable;
/// packets to a backend's own subnet are dropped unless the balancer's NAT itself
/// rewrote them there (`ct status dnat`).
pub(crate) fn filter_ruleset(families: &[Family]) -> String {
    let rules: String = families
        .iter()
        .map(|&family| {
            let net = match family {
                Family::V4 => BACKENDS_NET4,
                Family::V6 => BACKENDS_NET6,
            };
            format!(
                "    iifname \"c*\" {} daddr {net} ct status & dnat == 0 drop\n",
                family.nft()
            )
        })
        .collect();
    format!(
        "table inet {FILTER_TABLE} {{\n  chain forward {{\n    \
         type filter hook forward priority filter; policy accept;\n{rules}  }}\n}}\n"
    )
}

/// The NAT balancer: TCP to the VIP is DNATed to a backend picked by a hash of the
/// 4-tuple, at the standard `dstnat` priority (a chain with a lower number runs
/// first, so a daemon can steer before it).
pub(crate) fn nat_ruleset(backends: usize, families: &[Family]) -> String {
    let rules: String = families
        .iter()
        .map(|&family| {
            let h = family.nft();
            let map: Vec<String> = (0..backends)
                .map(|k| format!("{k} : {}", backend_end(k).addr(family)))
                .collect();
            format!(
                "    {h} daddr {vip} meta l4proto tcp dnat {h} to jhash {h} saddr . tcp sport . \
                 {h} daddr . tcp dport mod {backends} map {{ {map} }}\n",
                vip = vip(family),
                map = map.join(", "),
            )
        })
        .collect();
    format!(
        "table inet {NAT_TABLE} {{\n  chain prerouting {{\n    \
         type nat hook prerouting priority dstnat; policy accept;\n{rules}  }}\n}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_plan() {
        let c = client_end(3);
        assert_eq!((c.dev.as_str(), c.index), ("p3", 103));
        assert_eq!(c.cidr(Family::V4), "198.18.3.1/24");
        assert_eq!(c.cidr(Family::V6), "2001:db8:3::1/64");
        let l = balancer_client_end(1);
        assert_eq!((l.dev.as_str(), l.index), ("c1", 201));
        assert_eq!(l.cidr(Family::V4), "198.18.1.254/24");
        assert_eq!(l.cidr(Family::V6), "2001:db8:1::fe/64");
        let lb = balancer_backend_end(7);
        assert_eq!((lb.dev.as_str(), lb.index), ("b7", 307));
        assert_eq!(lb.cidr(Family::V4), "198.19.7.254/24");
        assert_eq!(lb.cidr(Family::V6), "2001:db8:b7::fe/64");
        let b = backend_end(0);
        assert_eq!((b.dev.as_str(), b.index), ("eth0", 400));
        assert_eq!(b.addr(Family::V4), IpAddr::from([198, 19, 0, 2]));
        assert_eq!(b.cidr(Family::V6), "2001:db8:b0::2/64");
        assert_eq!(vip(Family::V6).to_string(), "2001:db8:200::1");
        assert_eq!(vip_host(Family::V4), "198.18.200.1/32");
        assert_eq!(Family::of(vip(Family::V4)), Family::V4);
    }

    #[test]
    fn backend_subnets_are_inside_the_filtered_prefixes() {
        let net6: Ipv6Addr = "2001:db8:b0::".parse().unwrap();
        for k in 0..8 {
            let IpAddr::V6(a) = backend_end(k).addr(Family::V6) else {
                unreachable!()
            };
            // /44: the first two segments and the top 12 bits of the third.
            assert_eq!(a.segments()[..2], net6.segments()[..2]);
            assert_eq!(a.segments()[2] >> 4, net6.segments()[2] >> 4, "{a}");
            let IpAddr::V4(a) = backend_end(k).addr(Family::V4) else {
                unreachable!()
            };
            assert_eq!(a.octets()[..2], [198, 19]);
        }
        // Neither the VIP nor any client path falls inside them.
        assert_ne!(VIP6.segments()[2] >> 4, 0xb);
        assert_eq!(VIP4.octets()[1], 18);
    }

    #[test]
    fn client_and_backend_routing() {
        assert_eq!(
            client_rule(1, Family::V4).join(" "),
            "-4 rule add from 198.18.1.1 table 101 priority 1001"
        );
        let routes: Vec<String> = client_routes(0, Family::V6)
            .iter()
            .map(|r| r.join(" "))
            .collect();
        assert_eq!(
            routes,
            [
                "-6 route replace default via 2001:db8::fe dev p0 table 100",
                "-6 route replace unreachable default metric 65535 table 100",
                "-6 route replace default via 2001:db8::fe dev p0",
            ]
        );
        assert_eq!(
            client_routes(2, Family::V4).len(),
            2,
            "main default on path 0"
        );
        assert_eq!(
            backend_route(2, Family::V4).join(" "),
            "-4 route replace default via 198.19.2.254 dev eth0"
        );
    }

    #[test]
    fn ecmp_route_has_a_next_hop_per_backend() {
        assert_eq!(
            ecmp_route(2, Family::V4).join(" "),
            "-4 route replace 198.18.200.1/32 nexthop via 198.19.0.2 dev b0 \
             nexthop via 198.19.1.2 dev b1"
        );
        assert_eq!(
            ecmp_route(1, Family::V6).join(" "),
            "-6 route replace 2001:db8:200::1/128 nexthop via 2001:db8:b0::2 dev b0"
        );
    }

    #[test]
    fn nftables_rulesets() {
        let filter = filter_ruleset(&[Family::V4, Family::V6]);
        assert!(filter.starts_with("table inet fleet_filter {"), "{filter}");
        assert!(filter.contains("hook forward"));
        assert!(filter.contains("iifname \"c*\" ip daddr 198.19.0.0/16 ct status & dnat == 0 drop"));
        assert!(filter.contains("ip6 daddr 2001:db8:b0::/44"));
        let nat = nat_ruleset(3, &[Family::V4]);
        assert!(nat.starts_with("table inet fleet_nat {"), "{nat}");
        assert!(nat.contains("priority dstnat;"));
        assert!(nat.contains(
            "ip daddr 198.18.200.1 meta l4proto tcp dnat ip to jhash ip saddr . tcp sport . \
             ip daddr . tcp dport mod 3 map { 0 : 198.19.0.2, 1 : 198.19.1.2, 2 : 198.19.2.2 }"
        ));
        assert!(!nat.contains("ip6"));
        let nat6 = nat_ruleset(2, &[Family::V6]);
        assert!(nat6.contains("ip6 daddr 2001:db8:200::1 meta l4proto tcp dnat ip6 to jhash"));
        assert!(nat6.contains("map { 0 : 2001:db8:b0::2, 1 : 2001:db8:b1::2 }"));
        assert_eq!(nat.matches('{').count(), nat.matches('}').count());
    }
}
