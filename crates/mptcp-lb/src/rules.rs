//! The balancer's rules as a pure function of the configuration: the nftables table
//! (one transaction), the policy-routing rules and routes. No I/O here; the text is
//! what `nft -f -` and `ip` read, unit-tested below.
//!
//! Per backend slot `s` (stable for the daemon's life, so a backend keeps its mark
//! across reloads): the firewall mark `0x4d4c0000 | s`, the routing table
//! `TABLE_BASE + s` holding `VIP via BACKEND`, and a rule `fwmark MARK lookup TABLE`
//! (priority `RULE_PREF_BASE + s`). A packet with a backend's mark goes to
//! that backend whatever the ECMP route or the `dnat` hash would pick.
//!
//! The `mptcp_lb` table (family `inet`):
//! - `prerouting` (filter, priority mangle): a connection pinned to a backend (`ct
//!   mark`) gets its mark on every packet; a SYN marked by the token-steering program
//!   pins its connection; a SYN to VIP:join-port gets that backend's mark and pins it.
//! - `forward` (route mode): a new connection to a VIP is pinned to the next hop the
//!   route chose (`rt ip nexthop`), so draining or removing a backend from the ECMP
//!   route never moves a live connection.
//! - `nat_prerouting` (nat mode, priority dstnat - 10, before an operator's own NAT):
//!   a steered join goes to its backend; new connections to VIP:port are spread by
//!   `jhash` of the 5-tuple over the active backends.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

use crate::config::{Config, Mode};

/// The name of the nftables table this crate owns (family `inet`).
pub const TABLE: &str = "mptcp_lb";
/// The high half of every mark this crate sets ("ML").
pub const MARK_BASE: u32 = 0x4d4c_0000;
/// The mask that says a mark is this crate's.
pub const MARK_MASK: u32 = 0xffff_0000;
/// Routing table of slot `s`: `TABLE_BASE + s`.
pub const TABLE_BASE: u32 = 19_800;
/// Policy rule priority of slot `s`: `RULE_PREF_BASE + s` (before `main` at 32766).
pub const RULE_PREF_BASE: u32 = 9_000;

/// A backend's slot: 1 to [`crate::config::MAX_BACKENDS`].
pub type Slot = u16;

/// The firewall mark of a slot.
pub fn mark(slot: Slot) -> u32 {
    MARK_BASE | u32::from(slot)
}

/// Everything to apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ruleset {
    /// The nftables script (deletes and re-creates the table in one transaction).
    pub nft: String,
    /// Policy rules (`ip rule`): one per backend.
    pub rules: Vec<RouteRule>,
    /// Routes: `VIP via backend` in each backend's table, and in route mode the ECMP
    /// route when this daemon owns it.
    pub routes: Vec<Route>,
}

/// `ip rule add fwmark MARK lookup TABLE pref PREF`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RouteRule {
    /// IPv6 or IPv4.
    pub ipv6: bool,
    /// The mark.
    pub mark: u32,
    /// The table.
    pub table: u32,
    /// The priority.
    pub pref: u32,
}

impl RouteRule {
    /// The `ip` command line: `rule add ...` or `rule del ...` (`verb`).
    pub fn line(&self, verb: &str) -> String {
        format!(
            "{} rule {verb} fwmark {:#x} lookup {} pref {}",
            if self.ipv6 { "-6" } else { "-4" },
            self.mark,
            self.table,
            self.pref
        )
    }
}

/// A route to a VIP: over one backend in its table, or the ECMP route in `main`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Route {
    /// The VIP.
    pub vip: IpAddr,
    /// The next hops (one in a backend table; every active backend for ECMP).
    pub via: Vec<IpAddr>,
    /// The table (254: main).
    pub table: u32,
}

impl Route {
    /// The `ip` command line: `route replace ...` or, with `verb` `del`, its removal.
    pub fn line(&self, verb: &str) -> String {
        let family = if self.vip.is_ipv6() { "-6" } else { "-4" };
        let prefix = if self.vip.is_ipv6() { 128 } else { 32 };
        let mut s = format!(
            "{family} route {verb} {}/{prefix} table {}",
            self.vip, self.table
        );
        if verb != "del" {
            match self.via.as_slice() {
                [one] => write!(s, " via {one}").unwrap(),
                many => {
                    for v in many {
                        write!(s, " nexthop via {v}").unwrap();
                    }
                }
            }
        }
        s
    }
}

/// The main routing table's id.
pub const MAIN_TABLE: u32 = 254;

/// Builds the rule set. `slots` gives each backend address its slot; `own_route`
/// says, per VIP, whether this daemon makes the ECMP route (route mode, when the
/// operator has none).
pub fn build(config: &Config, slots: &BTreeMap<IpAddr, Slot>, own_route: &[IpAddr]) -> Ruleset {
    let mut nft = String::new();
    let vips = config.vip_addrs();
    let v4: Vec<IpAddr> = vips.iter().copied().filter(IpAddr::is_ipv4).collect();
    let v6: Vec<IpAddr> = vips.iter().copied().filter(IpAddr::is_ipv6).collect();
    let slot = |a: &IpAddr| slots.get(a).copied().unwrap_or(0);

    // Delete-and-create in one transaction: `add table` first so the delete cannot
    // fail on a fresh host.
    writeln!(nft, "add table inet {TABLE}").unwrap();
    writeln!(nft, "delete table inet {TABLE}").unwrap();
    writeln!(nft, "table inet {TABLE} {{").unwrap();
    for (name, ty, list) in [("vips4", "ipv4_addr", &v4), ("vips6", "ipv6_addr", &v6)] {
        if !list.is_empty() {
            writeln!(
                nft,
                "    set {name} {{ type {ty}; elements = {{ {} }} }}",
                join(list.iter().map(|a| a.to_string()))
            )
            .unwrap();
        }
    }
    if config.mode == Mode::Nat {
        // The services (VIP . port): a steered join is sent to its backend's own
        // address on the service port; joins to a join port keep the VIP.
        for (ipv6, name, ty) in [
            (false, "services4", "ipv4_addr"),
            (true, "services6", "ipv6_addr"),
        ] {
            let list: Vec<String> = config
                .vips
                .iter()
                .filter(|v| v.is_ipv6() == ipv6)
                .map(|v| format!("{} . {}", v.ip(), v.port()))
                .collect();
            if !list.is_empty() {
                writeln!(
                    nft,
                    "    set {name} {{ type {ty} . inet_service; elements = {{ {} }} }}",
                    join(list)
                )
                .unwrap();
            }
        }
    }
    let mut joins: [Vec<String>; 2] = Default::default();
    for b in &config.backends {
        let Some(port) = b.join_port else { continue };
        for vip in vips.iter().filter(|v| v.is_ipv6() == b.address.is_ipv6()) {
            joins[usize::from(vip.is_ipv6())]
                .push(format!("{vip} . {port} : {:#x}", mark(slot(&b.address))));
        }
    }
    for (i, (name, ty)) in [("joins4", "ipv4_addr"), ("joins6", "ipv6_addr")]
        .into_iter()
        .enumerate()
    {
        if !joins[i].is_empty() {
            writeln!(
                nft,
                "    map {name} {{ type {ty} . inet_service : mark; elements = {{ {} }} }}",
                join(joins[i].iter().cloned())
            )
            .unwrap();
        }
    }
    let pins = |ipv6: bool| -> Vec<String> {
        config
            .backends
            .iter()
            .filter(|b| b.address.is_ipv6() == ipv6)
            .map(|b| format!("{} : {:#x}", b.address, mark(slot(&b.address))))
            .collect()
    };
    if config.mode == Mode::Route {
        for (ipv6, name, ty) in [(false, "pin4", "ipv4_addr"), (true, "pin6", "ipv6_addr")] {
            let p = pins(ipv6);
            if !p.is_empty() {
                writeln!(
                    nft,
                    "    map {name} {{ type {ty} : mark; elements = {{ {} }} }}",
                    join(p)
                )
                .unwrap();
            }
        }
    }
    let ours = format!("and {MARK_MASK:#x} == {MARK_BASE:#x}");
    writeln!(nft, "    chain prerouting {{").unwrap();
    writeln!(
        nft,
        "        type filter hook prerouting priority mangle; policy accept;"
    )
    .unwrap();
    writeln!(nft, "        ct mark {ours} meta mark set ct mark return").unwrap();
    writeln!(nft, "        meta mark {ours} ct mark set meta mark return").unwrap();
    for (i, (l3, name)) in [("ip", "joins4"), ("ip6", "joins6")]
        .into_iter()
        .enumerate()
    {
        if !joins[i].is_empty() {
            writeln!(
                nft,
                "        tcp flags & (syn | ack) == syn meta mark set {l3} daddr . tcp dport map @{name} ct mark set meta mark"
            )
            .unwrap();
        }
    }
    writeln!(nft, "    }}").unwrap();
    match config.mode {
        Mode::Route => {
            writeln!(nft, "    chain forward {{").unwrap();
            writeln!(
                nft,
                "        type filter hook forward priority mangle; policy accept;"
            )
            .unwrap();
            for (l3, vset, rt, pin, list) in [
                ("ip", "vips4", "ip", "pin4", &v4),
                ("ip6", "vips6", "ip6", "pin6", &v6),
            ] {
                let has_backends = config
                    .backends
                    .iter()
                    .any(|b| b.address.is_ipv6() == (l3 == "ip6"));
                if !list.is_empty() && has_backends {
                    writeln!(
                        nft,
                        "        ct state new ct mark and {MARK_MASK:#x} != {MARK_BASE:#x} {l3} daddr @{vset} ct mark set rt {rt} nexthop map @{pin}"
                    )
                    .unwrap();
                }
            }
            writeln!(nft, "    }}").unwrap();
        }
        Mode::Nat => {
            writeln!(nft, "    chain nat_prerouting {{").unwrap();
            writeln!(
                nft,
                "        type nat hook prerouting priority dstnat - 10; policy accept;"
            )
            .unwrap();
            for b in &config.backends {
                let (l3, set) = if b.address.is_ipv6() {
                    ("ip6", "services6")
                } else {
                    ("ip", "services4")
                };
                writeln!(
                    nft,
                    "        meta mark {:#x} {l3} daddr . tcp dport @{set} dnat {l3} to {}",
                    mark(slot(&b.address)),
                    bracket(b.address)
                )
                .unwrap();
            }
            // Join ports keep the VIP (the backend listens on VIP:port): an identity
            // dnat claims the connection's NAT binding, so an operator's own NAT chain
            // after this one cannot send the join elsewhere.
            for vip in vips.iter() {
                let ports: Vec<String> = config
                    .backends
                    .iter()
                    .filter(|b| b.address.is_ipv6() == vip.is_ipv6())
                    .filter_map(|b| b.join_port.map(|p| p.to_string()))
                    .collect();
                if !ports.is_empty() {
                    let l3 = if vip.is_ipv6() { "ip6" } else { "ip" };
                    writeln!(
                        nft,
                        "        {l3} daddr {vip} tcp dport {{ {} }} dnat {l3} to {}",
                        join(ports),
                        bracket(*vip)
                    )
                    .unwrap();
                }
            }
            for vip in &config.vips {
                let l3 = if vip.is_ipv6() { "ip6" } else { "ip" };
                let active: Vec<IpAddr> = config
                    .backends
                    .iter()
                    .filter(|b| !b.drain && b.address.is_ipv6() == vip.is_ipv6())
                    .map(|b| b.address)
                    .collect();
                if active.is_empty() {
                    continue;
                }
                let map = join(active.iter().enumerate().map(|(i, a)| format!("{i} : {a}")));
                writeln!(
                    nft,
                    "        {l3} daddr {} tcp dport {} dnat {l3} to jhash {l3} saddr . tcp sport . {l3} daddr . tcp dport mod {} map {{ {map} }}",
                    vip.ip(),
                    vip.port(),
                    active.len()
                )
                .unwrap();
            }
            writeln!(nft, "    }}").unwrap();
        }
    }
    writeln!(nft, "}}").unwrap();

    let mut rules = Vec::new();
    let mut routes = Vec::new();
    for b in &config.backends {
        let s = slot(&b.address);
        let table = TABLE_BASE + u32::from(s);
        rules.push(RouteRule {
            ipv6: b.address.is_ipv6(),
            mark: mark(s),
            table,
            pref: RULE_PREF_BASE + u32::from(s),
        });
        for vip in vips.iter().filter(|v| v.is_ipv6() == b.address.is_ipv6()) {
            routes.push(Route {
                vip: *vip,
                via: vec![b.address],
                table,
            });
        }
    }
    if config.mode == Mode::Route {
        for vip in own_route {
            let via: Vec<IpAddr> = config
                .backends
                .iter()
                .filter(|b| !b.drain && b.address.is_ipv6() == vip.is_ipv6())
                .map(|b| b.address)
                .collect();
            if !via.is_empty() {
                routes.push(Route {
                    vip: *vip,
                    via,
                    table: MAIN_TABLE,
                });
            }
        }
    }
    Ruleset { nft, rules, routes }
}

fn join(items: impl IntoIterator<Item = String>) -> String {
    items.into_iter().collect::<Vec<_>>().join(", ")
}

fn bracket(a: IpAddr) -> String {
    match a {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// Gives each backend a slot: the one it had, else the lowest free one. Slots of
/// backends no longer configured are freed.
pub fn assign_slots(config: &Config, old: &BTreeMap<IpAddr, Slot>) -> BTreeMap<IpAddr, Slot> {
    let mut slots: BTreeMap<IpAddr, Slot> = config
        .backends
        .iter()
        .filter_map(|b| old.get(&b.address).map(|s| (b.address, *s)))
        .collect();
    for b in &config.backends {
        if !slots.contains_key(&b.address) {
            let free = (1..=crate::config::MAX_BACKENDS as Slot)
                .find(|s| !slots.values().any(|t| t == s))
                .expect("MAX_BACKENDS slots for at most MAX_BACKENDS backends");
            slots.insert(b.address, free);
        }
    }
    slots
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_vip, Backend};

    fn config(mode: Mode, backends: &[&str]) -> Config {
        Config {
            mode,
            vips: vec![
                parse_vip("198.18.200.1:80").unwrap(),
                parse_vip("[2001:db8:200::1]:80").unwrap(),
            ],
            backends: backends
                .iter()
                .map(|b| b.parse::<Backend>().unwrap())
                .collect(),
            steering: None,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn route_mode_join_ports_pins_and_tables() {
        let c = config(
            Mode::Route,
            &[
                "198.19.0.2,join-port=20000",
                "198.19.1.2,join-port=20001,drain",
                "2001:db8:b0::2,join-port=20002",
            ],
        );
        let slots = assign_slots(&c, &BTreeMap::new());
        let r = build(&c, &slots, &[ip("198.18.200.1")]);
        assert!(r.nft.contains(
            "map joins4 { type ipv4_addr . inet_service : mark; elements = { 198.18.200.1 . 20000 : 0x4d4c0001, 198.18.200.1 . 20001 : 0x4d4c0002 } }"
        ), "{}", r.nft);
        assert!(r.nft.contains("2001:db8:200::1 . 20002 : 0x4d4c0003"));
        assert!(r.nft.contains("map pin4 { type ipv4_addr : mark; elements = { 198.19.0.2 : 0x4d4c0001, 198.19.1.2 : 0x4d4c0002 } }"));
        assert!(r.nft.contains("ct mark set rt ip nexthop map @pin4"));
        assert!(r.nft.contains("ct mark set rt ip6 nexthop map @pin6"));
        assert!(!r.nft.contains("nat"), "no NAT in route mode");
        assert_eq!(r.rules.len(), 3);
        assert_eq!(
            r.rules[0].line("add"),
            "-4 rule add fwmark 0x4d4c0001 lookup 19801 pref 9001"
        );
        // The ECMP route this daemon owns leaves the draining backend out; its table
        // route stays, so pinned connections and joins still reach it.
        let ecmp: Vec<&Route> = r.routes.iter().filter(|r| r.table == MAIN_TABLE).collect();
        assert_eq!(ecmp.len(), 1);
        assert_eq!(
            ecmp[0].line("replace"),
            "-4 route replace 198.18.200.1/32 table 254 via 198.19.0.2"
        );
        assert!(r
            .routes
            .iter()
            .any(|r| r.line("replace")
                == "-4 route replace 198.18.200.1/32 table 19802 via 198.19.1.2"));
        assert!(r.routes.iter().any(|r| r.line("replace")
            == "-6 route replace 2001:db8:200::1/128 table 19803 via 2001:db8:b0::2"));
    }

    #[test]
    fn nat_mode_hashes_over_active_backends_and_dnats_steered_joins() {
        let c = config(
            Mode::Nat,
            &[
                "198.19.0.2",
                "198.19.1.2,drain",
                "198.19.2.2",
                "2001:db8:b0::2",
            ],
        );
        let slots = assign_slots(&c, &BTreeMap::new());
        let r = build(&c, &slots, &[]);
        assert!(r
            .nft
            .contains("type nat hook prerouting priority dstnat - 10"));
        assert!(r.nft.contains("ip daddr 198.18.200.1 tcp dport 80 dnat ip to jhash ip saddr . tcp sport . ip daddr . tcp dport mod 2 map { 0 : 198.19.0.2, 1 : 198.19.2.2 }"), "{}", r.nft);
        assert!(r.nft.contains(
            "meta mark 0x4d4c0002 ip daddr . tcp dport @services4 dnat ip to 198.19.1.2"
        ));
        assert!(r.nft.contains(
            "meta mark 0x4d4c0004 ip6 daddr . tcp dport @services6 dnat ip6 to [2001:db8:b0::2]"
        ));
        assert!(r.nft.contains(
            "set services4 { type ipv4_addr . inet_service; elements = { 198.18.200.1 . 80 } }"
        ));
        assert!(!r.nft.contains("joins4"), "no join ports configured");
        assert!(r.routes.iter().all(|r| r.table != MAIN_TABLE));
    }

    #[test]
    fn slots_are_stable_across_reloads() {
        let a = config(Mode::Route, &["198.19.0.2", "198.19.1.2", "198.19.2.2"]);
        let s1 = assign_slots(&a, &BTreeMap::new());
        let b = config(Mode::Route, &["198.19.2.2", "198.19.3.2"]);
        let s2 = assign_slots(&b, &s1);
        assert_eq!(s2[&ip("198.19.2.2")], 3, "kept its slot");
        assert_eq!(s2[&ip("198.19.3.2")], 1, "took the lowest free slot");
        assert_eq!(s2.len(), 2);
    }
}
