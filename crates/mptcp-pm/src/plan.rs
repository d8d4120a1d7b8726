//! The desired state, as a pure function: host + configuration + what the kernel has
//! -> the endpoints (address, id, flags, interface) and limits this daemon wants, each
//! with its reason, and every address it skipped with why. Then the [`Action`]s that
//! take the kernel there. No I/O here: the tests build hosts by hand.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use mptcp_netlink::{Endpoint, EndpointFlags, Limits, MAX_LIMIT};
use serde::Serialize;

use crate::config::{Config, Role};
use crate::host::{AddrFlags, HostState};

/// The most endpoints a namespace can hold (`MPTCP_PM_ADDR_MAX`).
pub const MAX_ENDPOINTS: usize = MAX_LIMIT as usize;

/// What the kernel has now, and what this daemon remembers of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelView {
    /// Every endpoint, ours and others'.
    pub endpoints: Vec<Endpoint>,
    /// The endpoints this daemon created: id -> address. Only these are ever changed.
    pub owned: BTreeMap<u8, IpAddr>,
    /// Ids this daemon gave addresses before, so an address that comes back gets its
    /// old id again.
    pub remembered: BTreeMap<IpAddr, u8>,
    /// Whether the kernel knows the `laminar` flag (Linux 6.18+).
    pub laminar: bool,
    /// The current limits, if read.
    pub limits: Option<Limits>,
}

impl KernelView {
    fn is_ours(&self, ep: &Endpoint) -> bool {
        self.owned.get(&ep.id) == Some(&ep.address)
    }

    /// Whether one of this daemon's endpoints has `address` now.
    fn holds(&self, address: IpAddr) -> bool {
        self.endpoints
            .iter()
            .any(|e| e.address == address && self.is_ours(e))
    }
}

/// An endpoint the daemon wants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedEndpoint {
    /// The id (kept from the kernel when the endpoint exists).
    pub id: u8,
    /// The address.
    pub address: IpAddr,
    /// The port announced with it (a VIP's join port behind a balancer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The flags.
    pub flags: EndpointFlags,
    /// The interface subflows from it are bound to (0: none, as for a VIP).
    pub ifindex: u32,
    /// That interface's name.
    pub interface: String,
    /// The rule's priority.
    pub priority: i32,
    /// Why it gets these flags.
    pub reason: String,
}

/// An address that gets no endpoint, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The address.
    pub address: IpAddr,
    /// Its interface (`#N` when the name is unknown).
    pub interface: String,
    /// Why.
    pub reason: String,
}

/// The limits the daemon wants, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedLimits {
    /// Most extra subflows per connection.
    pub subflows: u32,
    /// Most peer announcements used per connection.
    pub add_addr_accepted: u32,
    /// Why these values.
    pub reason: String,
}

impl PlannedLimits {
    /// As the netlink crate's type.
    pub fn limits(&self) -> Limits {
        Limits {
            subflows: self.subflows,
            add_addr_accepted: self.add_addr_accepted,
        }
    }
}

/// The whole desired state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The role it was made for.
    pub role: Role,
    /// The endpoints wanted, best first.
    pub endpoints: Vec<PlannedEndpoint>,
    /// Addresses that get no endpoint.
    pub skipped: Vec<Skipped>,
    /// Candidates that lost to the kernel's 8-endpoint cap (a subset of the reasons
    /// in `skipped`, kept apart so they are reported once).
    pub over_capacity: Vec<Skipped>,
    /// A server's addresses not announced because its MPTCP listeners would reset
    /// joins to them (a subset of `skipped`, kept apart so they are reported once).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_announced: Vec<Skipped>,
    /// Endpoints made by hand or another tool: left alone, counted against the cap.
    pub foreign: Vec<Endpoint>,
    /// The limits, or `None` when the configuration leaves them alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<PlannedLimits>,
    /// Interfaces with an endpoint whose IPv4 `rp_filter` is strict (1): replies to
    /// subflows over them may be dropped.
    pub strict_rp_filter: Vec<String>,
    /// Behind a balancer: the C flag and the VIPs (absent for a lone host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balancer: Option<BalancerPlan>,
}

/// What a backend behind a layer-4 balancer does about joins, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BalancerPlan {
    /// `net.mptcp.allow_join_initial_addr_port` wanted: 0 sets the MP_CAPABLE "C"
    /// flag, so clients do not join the VIP (the balancer would hash the join to a
    /// random backend, which resets it: `MPJoinNoTokenFound`); 1 with token steering
    /// alone, where joins to the VIP are steered.
    pub allow_join_initial_addr_port: u8,
    /// Why.
    pub reason: String,
    /// VIPs this host does not hold: their join port cannot be listened on (the kernel
    /// answers EADDRNOTAVAIL). The daemon refuses to start with any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_vips: Vec<IpAddr>,
}

/// One step from the kernel's state to the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Delete one of our endpoints.
    Remove {
        /// Its id.
        id: u8,
        /// Its address.
        address: IpAddr,
        /// Why.
        reason: String,
    },
    /// Change the backup and fullmesh flags of one of our endpoints.
    SetFlags {
        /// Its id.
        id: u8,
        /// Its address.
        address: IpAddr,
        /// The new flags.
        flags: EndpointFlags,
        /// Why.
        reason: String,
    },
    /// Add an endpoint.
    Add {
        /// What to add.
        endpoint: PlannedEndpoint,
    },
    /// Set the limits.
    SetLimits {
        /// The new limits.
        subflows: u32,
        /// The new limits.
        add_addr_accepted: u32,
        /// Why.
        reason: String,
    },
}

struct Candidate {
    address: IpAddr,
    port: Option<u16>,
    ifindex: u32,
    interface: String,
    flags: EndpointFlags,
    priority: i32,
    /// The address's rank among its interface's addresses of its family.
    ordinal: usize,
    reason: String,
}

/// Whether joins to `address` would reach the host's MPTCP listeners: a join is a TCP
/// SYN to the announced address and the connection's port, which only a listener bound
/// to that address or to the wildcard takes (`[::]` takes IPv4 too, as Linux's default
/// `bindv6only = 0` has it). A service bound to one address (a VIP on `lo`, a
/// container's address) resets every join to the others, and each reset costs a
/// client with `laminar` endpoints one of its paths for the connection's lifetime.
/// So a server's own addresses are announced only when every MPTCP listener takes
/// joins on them; none listening yet (the service starts later) announces them.
/// The kernel's listeners on a balancer join port are not services: left out.
fn joins_refused(host: &HostState, address: IpAddr, join_port: Option<u16>) -> Result<(), String> {
    let refusing: Vec<String> = host
        .mptcp_listeners
        .iter()
        .filter(|l| Some(l.port()) != join_port)
        .filter(|l| {
            let ip = l.ip();
            let wildcard = ip.is_unspecified() && (ip.is_ipv6() || address.is_ipv4());
            !(wildcard || ip == address)
        })
        .map(|l| l.to_string())
        .collect();
    if refusing.is_empty() {
        return Ok(());
    }
    let shown = refusing.len().min(4);
    Err(format!(
        "not announced: the MPTCP listener{} on {}{} would reset joins to it (bound to \
         another address); bind the service to {} to have it announced",
        if refusing.len() == 1 { "" } else { "s" },
        refusing[..shown].join(", "),
        if refusing.len() > shown {
            format!(" and {} more", refusing.len() - shown)
        } else {
            String::new()
        },
        if address.is_ipv4() {
            "0.0.0.0 or [::]"
        } else {
            "[::]"
        }
    ))
}

/// Makes the plan. Pure: the same inputs give the same plan.
pub fn plan(host: &HostState, config: &Config, kernel: &KernelView) -> Plan {
    let mut skipped = Vec::new();
    let mut not_announced = Vec::new();
    let mut candidates = Vec::new();
    let mut ordinals: BTreeMap<(u32, bool), usize> = BTreeMap::new();
    let foreign: Vec<Endpoint> = kernel
        .endpoints
        .iter()
        .filter(|e| !kernel.is_ours(e))
        .cloned()
        .collect();

    let server = (config.role == Role::Server).then_some(&config.server);
    let vips: &[IpAddr] = server.map_or(&[], |s| &s.vips);
    let outage = config.role == Role::Client && cut_off(host, config, kernel, &foreign);
    for a in &host.addresses {
        let ipv6 = a.address.is_ipv6();
        let link = host.links.get(&a.ifindex);
        let interface = link.map_or_else(|| format!("#{}", a.ifindex), |l| l.name.clone());
        let skip = |reason: String| Skipped {
            address: a.address,
            interface: interface.clone(),
            reason,
        };
        let Some(link) = link else {
            skipped.push(skip("its interface is not known (yet)".into()));
            continue;
        };
        let rule = config.rule_for(&link.name);
        if vips.contains(&a.address) {
            // Announced below with its join port, or not at all.
            continue;
        }
        let hidden =
            server.is_some_and(|s| !s.announce_own) && rule.and_then(|r| r.flags).is_none();
        // A server keeps the endpoint it holds when the link loses carrier or goes
        // down: its address stays reachable over the other links (a host accepts
        // any of its addresses on any interface, and answers by its routes), so
        // subflows that reach it over another path are alive, and removing the
        // endpoint would close them too (RM_ADDR). A client's subflows are bound
        // to their link: its endpoint goes with it, unless every link is lost
        // ([`cut_off`]).
        let kept_while = ((config.role == Role::Server || outage) && kernel.holds(a.address))
            .then(|| link.unusable())
            .flatten();
        let checked = check_address(host, config, link, a, rule, &foreign, kept_while.is_some())
            .and_then(|()| {
                if hidden {
                    Err(
                        "behind a balancer: own address not announced (private to clients; \
                     set announce_own if clients can reach it)"
                            .to_string(),
                    )
                } else {
                    Ok(())
                }
            });
        let checked = checked.and_then(|()| {
            if server.is_none() || rule.and_then(|r| r.flags).is_some() {
                return Ok(());
            }
            joins_refused(host, a.address, server.and_then(|s| s.join_port))
                .inspect_err(|reason| not_announced.push(skip(reason.clone())))
        });
        match checked {
            Err(reason) => skipped.push(skip(reason)),
            Ok(()) => {
                let (mut flags, mut reason) = match rule.and_then(|r| r.flags.map(|f| (f, r))) {
                    Some((f, r)) => (f, format!("rule {}: {f}", r.name.as_str())),
                    // Not `laminar` beside `subflow`: Linux 6.18 counts such an
                    // endpoint once more in a connection's `local_addr_used` each time
                    // it opens a subflow towards an announced address from it, and the
                    // count only comes down by one when the endpoint is removed; past
                    // the limit, the connection gets no subflow from any endpoint again
                    // (see the crate docs, "Flags").
                    None => match config.role {
                        Role::Client => {
                            (EndpointFlags::SUBFLOW, "client role: subflow".to_string())
                        }
                        Role::Server => (EndpointFlags::SIGNAL, "server role: signal".to_string()),
                    },
                };
                if flags.contains(EndpointFlags::LAMINAR) && !kernel.laminar {
                    flags.remove(EndpointFlags::LAMINAR);
                    reason.push_str(" (laminar dropped: this kernel does not know it)");
                }
                if let Some(why) = &kept_while {
                    reason.push_str(&format!(
                        "; kept while {why}: {}",
                        if outage {
                            "every link is lost, so connections keep their subflows for \
                             the first link back rather than lose them all"
                        } else {
                            "a server's address stays reachable over its other links"
                        }
                    ));
                }
                if config.require_default_route {
                    reason.push_str(&format!(
                        "; {} default route via {}",
                        if ipv6 { "IPv6" } else { "IPv4" },
                        link.name
                    ));
                }
                let ordinal = ordinals.entry((a.ifindex, ipv6)).or_insert(0);
                candidates.push(Candidate {
                    address: a.address,
                    port: None,
                    ifindex: a.ifindex,
                    interface,
                    flags,
                    priority: rule.map_or(0, |r| r.priority),
                    ordinal: *ordinal,
                    reason,
                });
                *ordinal += 1;
            }
        }
    }

    let mut missing_vips = Vec::new();
    for &vip in vips {
        let family_on = if vip.is_ipv6() {
            config.ipv6
        } else {
            config.ipv4
        };
        let held = host.addresses.iter().any(|a| a.address == vip);
        let port = server.and_then(|s| s.join_port);
        let skip = |reason: String| Skipped {
            address: vip,
            interface: String::new(),
            reason,
        };
        if !family_on {
            skipped.push(skip(format!(
                "VIP: {} is turned off",
                if vip.is_ipv6() { "IPv6" } else { "IPv4" }
            )));
        } else if !held {
            missing_vips.push(vip);
            skipped.push(skip(format!(
                "VIP not held by this host: add it (`ip addr add {vip}/{} dev lo`) so the \
                 kernel can take joins on it",
                if vip.is_ipv6() { 128 } else { 32 }
            )));
        } else if let Some(port) = port {
            candidates.push(Candidate {
                address: vip,
                port: Some(port),
                ifindex: 0,
                interface: String::new(),
                flags: EndpointFlags::SIGNAL,
                priority: i32::MAX,
                ordinal: 0,
                reason: format!(
                    "VIP with join port {port}: the balancer sends {} to this backend alone{}",
                    std::net::SocketAddr::new(vip, port),
                    if vip.is_ipv6() {
                        " (IPv6 with a port: a 30-byte ADD_ADDR, which only fits beside TCP \
                         timestamps when net.ipv4.tcp_timestamps = 0)"
                    } else {
                        ""
                    }
                ),
            });
        } else {
            skipped.push(skip(
                "VIP without a join port: not announced (clients must not join the VIP)".into(),
            ));
        }
    }
    let balancer = server
        .filter(|s| s.behind_balancer())
        .map(|s| BalancerPlan {
            allow_join_initial_addr_port: u8::from(!s.deny_join_initial()),
            reason: match (s.join_port, s.announce_own) {
                _ if !s.deny_join_initial() => "token steering: clients join the VIP as \
                     they would any server, and the balancer sends each join to the backend \
                     that published its token"
                    .to_string(),
                (Some(p), _) => format!(
                "behind a balancer: clients must not join the VIP (it hashes joins to a random \
                 backend); they join VIP:{p}, which reaches this backend"
            ),
                (None, true) => "behind a balancer: clients must not join the VIP; they join this \
                 host's own announced addresses"
                    .to_string(),
                (None, false) => "behind a balancer: clients must not join the VIP (nothing else \
                 is announced: token steering at the balancer, or single-path)"
                    .to_string(),
            },
            missing_vips,
        });

    // Highest priority first; then every interface's first address before any
    // interface's second (NetworkManager's preference); then a stable order.
    candidates.sort_by_key(|c| {
        (
            Reverse(c.priority),
            c.ordinal,
            c.ifindex,
            c.address.is_ipv6(),
            c.address,
        )
    });
    // A kernel-made (implicit) endpoint for an address we want is replaced by ours in
    // the same slot; every other foreign endpoint takes a slot.
    let wanted: BTreeSet<IpAddr> = candidates.iter().map(|c| c.address).collect();
    let taken = foreign
        .iter()
        .filter(|e| !(e.flags.contains(EndpointFlags::IMPLICIT) && wanted.contains(&e.address)))
        .count();
    let capacity = MAX_ENDPOINTS.saturating_sub(taken);
    let mut over_capacity = Vec::new();
    if candidates.len() > capacity {
        for c in candidates.split_off(capacity) {
            over_capacity.push(Skipped {
                address: c.address,
                interface: c.interface,
                reason: format!(
                    "over the kernel's {MAX_ENDPOINTS} endpoints ({taken} taken by others): \
                     lower priority ({}) or later in line",
                    c.priority
                ),
            });
        }
    }

    let endpoints = assign_ids(candidates, kernel);
    let limits = plan_limits(config, &endpoints, &foreign);
    let mut strict_rp_filter: Vec<String> = endpoints
        .iter()
        .filter(|e| e.address.is_ipv4() && host.rp_filter.get(&e.ifindex) == Some(&1))
        .map(|e| e.interface.clone())
        .collect();
    strict_rp_filter.dedup();
    Plan {
        role: config.role,
        endpoints,
        skipped,
        not_announced,
        over_capacity,
        foreign,
        limits,
        strict_rp_filter,
        balancer,
    }
}

/// Whether a client is cut off: it holds endpoints, and no address it could make
/// one of is on a usable link (every link lost at once in a blackout, or a
/// single-homed host off its network). Removing a lost link's endpoint makes the
/// kernel close the subflows from it, so that connections carry on over the other
/// links; when there is no other link, it only takes every connection's every
/// subflow, the initial one included. A connection left with none cannot get one
/// back once its peer has closed its side (the kernel refuses joins to an MPTCP
/// socket that is no longer established), and in the in-kernel mode nothing
/// re-opens them on the connections that remain (mptcp_net-next #440). So a client
/// keeps them: its subflows wait in their retransmission timers and carry on when
/// a link returns. When one comes back while others are still lost, those go as
/// usual.
fn cut_off(host: &HostState, config: &Config, kernel: &KernelView, foreign: &[Endpoint]) -> bool {
    let holds_any = host.addresses.iter().any(|a| kernel.holds(a.address));
    holds_any
        && !host.addresses.iter().any(|a| {
            host.links.get(&a.ifindex).is_some_and(|link| {
                let rule = config.rule_for(&link.name);
                check_address(host, config, link, a, rule, foreign, false).is_ok()
            })
        })
}

/// Why `a` gets no endpoint, checking the interface first, then the address.
fn check_address(
    host: &HostState,
    config: &Config,
    link: &crate::host::Link,
    a: &crate::host::Address,
    rule: Option<&crate::config::Rule>,
    foreign: &[Endpoint],
    link_state_waived: bool,
) -> Result<(), String> {
    let ipv6 = a.address.is_ipv6();
    let family = if ipv6 { "IPv6" } else { "IPv4" };
    let f = &config.filters;
    if f.loopback && (link.loopback || a.address.is_loopback()) {
        return Err("loopback".into());
    }
    if !config.include.is_empty() && !config.include.iter().any(|g| g.matches(&link.name)) {
        return Err(format!("{} is not in the include list", link.name));
    }
    if let Some(g) = config.exclude.iter().find(|g| g.matches(&link.name)) {
        return Err(format!("{} is excluded by {:?}", link.name, g.as_str()));
    }
    let family_on = match (ipv6, rule) {
        (false, Some(r)) => r.ipv4.unwrap_or(config.ipv4),
        (true, Some(r)) => r.ipv6.unwrap_or(config.ipv6),
        (false, None) => config.ipv4,
        (true, None) => config.ipv6,
    };
    if !family_on {
        return Err(format!("{family} is turned off for {}", link.name));
    }
    if let Some(why) = link.unusable().filter(|_| !link_state_waived) {
        return Err(why);
    }
    if f.link_local && is_link_local(a.address) {
        return Err("link-local".into());
    }
    if f.ula && matches!(a.address, IpAddr::V6(v6) if v6.segments()[0] & 0xfe00 == 0xfc00) {
        return Err("IPv6 unique local address (fc00::/7)".into());
    }
    if f.temporary && ipv6 && a.flags.has(AddrFlags::TEMPORARY) {
        return Err("temporary (privacy) address".into());
    }
    if f.dadfailed && a.flags.has(AddrFlags::DADFAILED) {
        return Err("duplicate address detection failed".into());
    }
    if f.tentative && a.flags.has(AddrFlags::TENTATIVE) {
        return Err("tentative: waiting for duplicate address detection".into());
    }
    if f.deprecated && a.flags.has(AddrFlags::DEPRECATED) {
        return Err("deprecated (preferred lifetime over)".into());
    }
    // A lost link takes its routes with it: a waived link state waives them too.
    if config.require_default_route
        && !link_state_waived
        && !host.has_default_route(a.ifindex, ipv6)
    {
        return Err(format!(
            "no {family} default route via {} (add one, or set require_default_route = false)",
            link.name
        ));
    }
    if let Some(e) = foreign
        .iter()
        .find(|e| e.address == a.address && !e.flags.contains(EndpointFlags::IMPLICIT))
    {
        return Err(format!(
            "endpoint id {} made by someone else has this address: left alone",
            e.id
        ));
    }
    Ok(())
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

/// Ids: kept for our existing endpoints, taken from a kernel-made endpoint we replace,
/// the remembered one when it is free, else the lowest free id no other remembered
/// address holds.
fn assign_ids(candidates: Vec<Candidate>, kernel: &KernelView) -> Vec<PlannedEndpoint> {
    let existing = |addr: IpAddr| {
        kernel.endpoints.iter().find(|e| {
            e.address == addr && (kernel.is_ours(e) || e.flags.contains(EndpointFlags::IMPLICIT))
        })
    };
    let mut used: BTreeSet<u8> = kernel
        .endpoints
        .iter()
        .filter(|e| !kernel.is_ours(e) || candidates.iter().any(|c| c.address == e.address))
        .map(|e| e.id)
        .collect();
    let mut ids: Vec<Option<u8>> = candidates
        .iter()
        .map(|c| existing(c.address).map(|e| e.id))
        .collect();
    for (c, id) in candidates.iter().zip(ids.iter_mut()) {
        if id.is_none() {
            if let Some(&r) = kernel.remembered.get(&c.address) {
                if !used.contains(&r) {
                    *id = Some(r);
                    used.insert(r);
                }
            }
        }
    }
    let reserved: BTreeSet<u8> = kernel
        .remembered
        .iter()
        .filter(|(a, _)| !candidates.iter().any(|c| c.address == **a))
        .map(|(_, &id)| id)
        .collect();
    for id in ids.iter_mut().filter(|id| id.is_none()) {
        let free =
            |extra: &BTreeSet<u8>| (1..=u8::MAX).find(|i| !used.contains(i) && !extra.contains(i));
        let pick = free(&reserved).or_else(|| free(&BTreeSet::new()));
        if let Some(p) = pick {
            used.insert(p);
            *id = Some(p);
        }
    }
    candidates
        .into_iter()
        .zip(ids)
        .filter_map(|(c, id)| {
            Some(PlannedEndpoint {
                id: id?,
                address: c.address,
                port: c.port,
                flags: c.flags,
                ifindex: c.ifindex,
                interface: c.interface,
                priority: c.priority,
                reason: c.reason,
            })
        })
        .collect()
}

/// Limits sized to the endpoints: a client may open a subflow per `subflow` endpoint
/// and use as many of the peer's announcements; a server accepts as many joins as the
/// kernel allows (its clients decide how many they open).
fn plan_limits(
    config: &Config,
    endpoints: &[PlannedEndpoint],
    foreign: &[Endpoint],
) -> Option<PlannedLimits> {
    if !config.limits.manage {
        return None;
    }
    let n = endpoints
        .iter()
        .map(|e| e.flags)
        .chain(
            foreign
                .iter()
                .filter(|e| !e.flags.contains(EndpointFlags::IMPLICIT))
                .map(|e| e.flags),
        )
        .filter(|f| f.contains(EndpointFlags::SUBFLOW))
        .count() as u32;
    let n = n.min(MAX_LIMIT);
    let (auto_subflows, why) = match config.role {
        Role::Client => (n, format!("{n} subflow endpoint(s)")),
        Role::Server => (
            MAX_LIMIT,
            "server role: accept every join the kernel allows".to_string(),
        ),
    };
    let subflows = config.limits.subflows.unwrap_or(auto_subflows);
    let add_addr_accepted = config.limits.add_addr_accepted.unwrap_or(n);
    let reason = match (config.limits.subflows, config.limits.add_addr_accepted) {
        (Some(_), Some(_)) => "fixed by the configuration".to_string(),
        (Some(_), None) => format!(
            "subflows fixed by the configuration; add_addr_accepted: {n} subflow endpoint(s)"
        ),
        (None, Some(_)) => format!("subflows: {why}; add_addr_accepted fixed by the configuration"),
        (None, None) => format!("subflows: {why}; add_addr_accepted: {n} subflow endpoint(s)"),
    };
    Some(PlannedLimits {
        subflows,
        add_addr_accepted,
        reason,
    })
}

/// Flags `SET_FLAGS` can change in place; any other difference needs delete and add.
const MUTABLE: EndpointFlags =
    EndpointFlags::from_bits_retain(EndpointFlags::BACKUP.bits() | EndpointFlags::FULLMESH.bits());

fn fixed_part(f: EndpointFlags) -> u32 {
    f.bits() & !MUTABLE.bits()
}

impl Plan {
    /// The steps from `kernel` to this plan, in the order to apply them: removals
    /// (freeing slots), flag changes, limits (raised before additions, so the kernel
    /// opens the new endpoints' subflows on live connections at once), additions. Only our endpoints are
    /// ever removed or changed.
    pub fn actions(&self, kernel: &KernelView) -> Vec<Action> {
        let ours: Vec<&Endpoint> = kernel
            .endpoints
            .iter()
            .filter(|e| kernel.is_ours(e))
            .collect();
        let mut removes = Vec::new();
        let mut changes = Vec::new();
        let mut adds = Vec::new();
        for e in &ours {
            let wanted = self.endpoints.iter().find(|p| p.address == e.address);
            match wanted {
                None => removes.push(Action::Remove {
                    id: e.id,
                    address: e.address,
                    reason: self
                        .why_skipped(e.address)
                        .unwrap_or_else(|| "the address is gone".to_string()),
                }),
                Some(p)
                    if p.id != e.id
                        || fixed_part(p.flags) != fixed_part(e.flags)
                        || p.port != e.port
                        || e.ifindex.unwrap_or(0) != p.ifindex =>
                {
                    removes.push(Action::Remove {
                        id: e.id,
                        address: e.address,
                        reason: format!("re-added as {} on {}", p.flags, p.interface),
                    });
                    adds.push(Action::Add {
                        endpoint: p.clone(),
                    });
                }
                Some(p) if p.flags != e.flags => changes.push(Action::SetFlags {
                    id: e.id,
                    address: e.address,
                    flags: p.flags,
                    reason: p.reason.clone(),
                }),
                Some(_) => {}
            }
        }
        for p in &self.endpoints {
            if !ours.iter().any(|e| e.address == p.address) {
                adds.push(Action::Add {
                    endpoint: p.clone(),
                });
            }
        }
        let mut actions = removes;
        actions.extend(changes);
        if let Some(l) = &self.limits {
            if kernel.limits != Some(l.limits()) {
                actions.push(Action::SetLimits {
                    subflows: l.subflows,
                    add_addr_accepted: l.add_addr_accepted,
                    reason: l.reason.clone(),
                });
            }
        }
        actions.extend(adds);
        actions
    }

    fn why_skipped(&self, address: IpAddr) -> Option<String> {
        self.skipped
            .iter()
            .chain(&self.over_capacity)
            .find(|s| s.address == address)
            .map(|s| s.reason.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Address, DefaultRoute, Link, OperState};

    fn link(index: u32, name: &str) -> Link {
        Link {
            index,
            name: name.into(),
            admin_up: true,
            lower_up: true,
            oper: OperState::Up,
            loopback: false,
        }
    }

    fn addr(ifindex: u32, a: &str) -> Address {
        Address {
            ifindex,
            address: a.parse().unwrap(),
            prefix_len: 24,
            flags: AddrFlags::default(),
        }
    }

    fn ip(a: &str) -> IpAddr {
        a.parse().unwrap()
    }

    /// lo, eth0 (v4 + v6) and wlan0 (v4), each with default routes of its families.
    fn host() -> HostState {
        let mut lo = link(1, "lo");
        lo.loopback = true;
        let mut h = HostState::default();
        for l in [lo, link(2, "eth0"), link(3, "wlan0")] {
            h.links.insert(l.index, l);
        }
        h.addresses = vec![
            addr(1, "127.0.0.1"),
            addr(1, "::1"),
            addr(2, "198.18.0.1"),
            addr(2, "2001:db8::1"),
            addr(2, "fe80::1"),
            addr(3, "198.18.1.1"),
        ];
        for (ipv6, ifindex) in [(false, 2), (true, 2), (false, 3)] {
            h.default_routes.push(DefaultRoute {
                ipv6,
                ifindex,
                table: 254,
            });
        }
        h
    }

    fn kernel() -> KernelView {
        KernelView {
            laminar: true,
            ..KernelView::default()
        }
    }

    fn endpoint(id: u8, a: &str, flags: EndpointFlags, ifindex: Option<u32>) -> Endpoint {
        let attrs = mptcp_netlink::codec::AddressAttrs {
            id: Some(id),
            flags: Some(flags.bits()),
            ifindex: ifindex.map(|i| i as i32),
            ..mptcp_netlink::codec::AddressAttrs::from_ip(ip(a))
        };
        Endpoint::try_from(&attrs).unwrap()
    }

    fn addresses(p: &Plan) -> Vec<String> {
        p.endpoints.iter().map(|e| e.address.to_string()).collect()
    }

    fn reason(p: &Plan, a: &str) -> String {
        p.skipped
            .iter()
            .chain(&p.over_capacity)
            .find(|s| s.address == ip(a))
            .map(|s| s.reason.clone())
            .unwrap_or_else(|| panic!("{a} was not skipped: {p:#?}"))
    }

    #[test]
    fn client_gets_subflow_on_every_usable_address_and_not_laminar() {
        // `kernel()` knows laminar: the role leaves it out all the same.
        let p = plan(&host(), &Config::default(), &kernel());
        // Each interface's first address of each family, in interface order.
        assert_eq!(addresses(&p), ["198.18.0.1", "2001:db8::1", "198.18.1.1"]);
        for e in &p.endpoints {
            assert_eq!(e.flags, EndpointFlags::SUBFLOW);
        }
        assert_eq!(
            p.endpoints.iter().map(|e| e.id).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(p.endpoints[2].interface, "wlan0");
        assert_eq!(reason(&p, "127.0.0.1"), "loopback");
        assert_eq!(reason(&p, "fe80::1"), "link-local");
        let l = p.limits.as_ref().unwrap();
        assert_eq!((l.subflows, l.add_addr_accepted), (3, 3));
        assert!(p.endpoints[0]
            .reason
            .contains("IPv4 default route via eth0"));
    }

    #[test]
    fn server_signals_and_accepts_every_join() {
        let c = Config {
            role: Role::Server,
            ..Config::default()
        };
        let p = plan(&host(), &c, &kernel());
        assert!(p.endpoints.iter().all(|e| e.flags == EndpointFlags::SIGNAL));
        let l = p.limits.unwrap();
        assert_eq!((l.subflows, l.add_addr_accepted), (8, 0));
    }

    #[test]
    fn without_laminar_support_the_flag_is_dropped() {
        let k = KernelView::default();
        let c = Config::from_toml(
            "[[interface]]\nname = \"eth0\"\nflags = [\"subflow\", \"laminar\"]",
            "f",
        )
        .unwrap();
        let p = plan(&host(), &c, &k);
        assert!(p.endpoints[0].reason.contains("laminar dropped"));
    }

    #[test]
    fn no_carrier_and_down_links_get_nothing() {
        let mut h = host();
        h.links.get_mut(&3).unwrap().lower_up = false;
        h.links.get_mut(&3).unwrap().oper = OperState::LowerLayerDown;
        let p = plan(&h, &Config::default(), &kernel());
        assert_eq!(
            reason(&p, "198.18.1.1"),
            "wlan0 has no carrier (NO-CARRIER)"
        );
        h.links.get_mut(&3).unwrap().admin_up = false;
        let p = plan(&h, &Config::default(), &kernel());
        assert_eq!(reason(&p, "198.18.1.1"), "wlan0 is down");
        let mut h = host();
        h.links.get_mut(&3).unwrap().oper = OperState::Dormant;
        let p = plan(&h, &Config::default(), &kernel());
        assert_eq!(
            reason(&p, "198.18.1.1"),
            "wlan0 is not operational (state dormant)"
        );
        // Drivers that never report an operational state are judged by their flags.
        h.links.get_mut(&3).unwrap().oper = OperState::Unknown;
        assert!(addresses(&plan(&h, &Config::default(), &kernel())).contains(&"198.18.1.1".into()));
    }

    #[test]
    fn a_server_announces_only_addresses_its_listeners_take_joins_on() {
        let server = Config {
            role: Role::Server,
            ..Config::default()
        };
        let sa = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        let mut h = host();
        // No MPTCP listener yet: announced (the service may start later).
        let all = addresses(&plan(&h, &server, &kernel()));
        assert!(all.contains(&"198.18.0.1".into()), "{all:?}");
        // A wildcard listener takes joins on every address; [::] takes IPv4 too.
        h.mptcp_listeners = vec![sa("[::]:443"), sa("[::]:80")];
        assert_eq!(addresses(&plan(&h, &server, &kernel())), all);
        // 0.0.0.0 takes no IPv6 join.
        h.mptcp_listeners = vec![sa("0.0.0.0:443")];
        let p = plan(&h, &server, &kernel());
        assert_eq!(addresses(&p), ["198.18.0.1", "198.18.1.1"]);
        assert!(
            reason(&p, "2001:db8::1").ends_with("bind the service to [::] to have it announced"),
            "{p:#?}"
        );
        // A service bound to one address (a VIP on lo) resets joins to the others.
        h.mptcp_listeners = vec![sa("198.18.100.2:8443"), sa("0.0.0.0:443")];
        let p = plan(&h, &server, &kernel());
        assert!(p.endpoints.is_empty(), "{p:#?}");
        let why = reason(&p, "198.18.0.1");
        assert!(
            why.starts_with("not announced: the MPTCP listener on 198.18.100.2:8443 would reset"),
            "{why}"
        );
        assert!(why.contains("bind the service to 0.0.0.0 or [::]"), "{why}");
        // ... except the address it is bound to.
        h.mptcp_listeners = vec![sa("198.18.1.1:8443")];
        assert_eq!(addresses(&plan(&h, &server, &kernel())), ["198.18.1.1"]);
        // The kernel's own listener on a balancer join port is not a service.
        let mut behind = server.clone();
        behind.server.join_port = Some(20001);
        behind.server.announce_own = true;
        behind.server.vips = vec![ip("198.18.0.1")];
        h.mptcp_listeners = vec![sa("198.18.0.1:20001"), sa("0.0.0.0:443")];
        assert!(addresses(&plan(&h, &behind, &kernel())).contains(&"198.18.1.1".into()));
        // An interface rule that says `signal` is obeyed; a client is not concerned.
        h.mptcp_listeners = vec![sa("198.18.100.2:8443")];
        let mut ruled = server.clone();
        ruled.rules = vec![crate::config::Rule {
            name: crate::config::Glob::new("wlan0").unwrap(),
            flags: Some(EndpointFlags::SIGNAL),
            priority: 0,
            ipv4: None,
            ipv6: None,
        }];
        assert_eq!(addresses(&plan(&h, &ruled, &kernel())), ["198.18.1.1"]);
        assert!(addresses(&plan(&h, &Config::default(), &kernel())).len() >= 2);
    }

    #[test]
    fn a_server_keeps_its_endpoint_when_the_link_goes() {
        let server = Config {
            role: Role::Server,
            ..Config::default()
        };
        let mut h = host();
        h.links.get_mut(&3).unwrap().lower_up = false;
        // Not yet announced: a dead link's address is not announced.
        let p = plan(&h, &server, &kernel());
        assert_eq!(
            reason(&p, "198.18.1.1"),
            "wlan0 has no carrier (NO-CARRIER)"
        );
        // Announced before: kept, so subflows reaching it over eth0 live on.
        let mut k = kernel();
        k.endpoints
            .push(endpoint(2, "198.18.1.1", EndpointFlags::SIGNAL, Some(3)));
        k.owned.insert(2, ip("198.18.1.1"));
        let p = plan(&h, &server, &k);
        let kept = p
            .endpoints
            .iter()
            .find(|e| e.address == ip("198.18.1.1"))
            .unwrap_or_else(|| panic!("kept: {p:#?}"));
        assert_eq!((kept.id, kept.flags), (2, EndpointFlags::SIGNAL));
        assert!(
            kept.reason.contains("kept while wlan0 has no carrier"),
            "{}",
            kept.reason
        );
        h.links.get_mut(&3).unwrap().admin_up = false;
        assert!(addresses(&plan(&h, &server, &k)).contains(&"198.18.1.1".into()));
        // Someone else's endpoint is not ours to keep; a client's always goes.
        k.owned.clear();
        assert!(!addresses(&plan(&h, &server, &k)).contains(&"198.18.1.1".into()));
        k.owned.insert(2, ip("198.18.1.1"));
        assert_eq!(
            reason(&plan(&h, &Config::default(), &k), "198.18.1.1"),
            "wlan0 is down"
        );
    }

    #[test]
    fn a_client_keeps_its_endpoints_while_every_link_is_lost() {
        let client = Config::default();
        let flags = EndpointFlags::SUBFLOW;
        let mut k = kernel();
        for (id, a, ifindex) in [(1, "198.18.0.1", 2), (2, "198.18.1.1", 3)] {
            k.endpoints.push(endpoint(id, a, flags, Some(ifindex)));
            k.owned.insert(id, ip(a));
        }
        let mut h = host();
        // Both links lost, their default routes with them: a blackout.
        h.links.get_mut(&2).unwrap().admin_up = false;
        h.links.get_mut(&3).unwrap().lower_up = false;
        h.default_routes.clear();
        let p = plan(&h, &client, &k);
        for (id, a, why) in [
            (1, "198.18.0.1", "eth0 is down"),
            (2, "198.18.1.1", "wlan0 has no carrier"),
        ] {
            let kept = p
                .endpoints
                .iter()
                .find(|e| e.address == ip(a))
                .unwrap_or_else(|| panic!("{a} kept: {p:#?}"));
            assert_eq!((kept.id, kept.flags), (id, flags));
            assert!(
                kept.reason.contains(&format!("kept while {why}"))
                    && kept.reason.contains("every link is lost"),
                "{}",
                kept.reason
            );
        }
        // Nothing held yet (a start during the outage): nothing to keep.
        assert!(plan(&h, &client, &kernel()).endpoints.is_empty());
        // One link back: the one still lost goes, as a client's always did.
        h.links.get_mut(&2).unwrap().admin_up = true;
        h.default_routes.push(DefaultRoute {
            ipv6: false,
            ifindex: 2,
            table: 254,
        });
        let p = plan(&h, &client, &k);
        assert!(addresses(&p).contains(&"198.18.0.1".into()));
        assert_eq!(
            reason(&p, "198.18.1.1"),
            "wlan0 has no carrier (NO-CARRIER)"
        );
    }

    #[test]
    fn address_filters() {
        let mut h = host();
        let cases = [
            (
                "2001:db8::10",
                AddrFlags::TENTATIVE,
                "tentative: waiting for duplicate address detection",
            ),
            (
                "2001:db8::11",
                AddrFlags::TEMPORARY,
                "temporary (privacy) address",
            ),
            (
                "2001:db8::12",
                AddrFlags::DADFAILED,
                "duplicate address detection failed",
            ),
            (
                "2001:db8::13",
                AddrFlags::DEPRECATED,
                "deprecated (preferred lifetime over)",
            ),
        ];
        for (a, f, _) in cases {
            let mut x = addr(2, a);
            x.flags = AddrFlags(f);
            h.addresses.push(x);
        }
        h.addresses.push(addr(2, "fd00::1"));
        h.addresses.push(addr(2, "169.254.1.1"));
        let p = plan(&h, &Config::default(), &kernel());
        for (a, _, why) in cases {
            assert_eq!(reason(&p, a), why);
        }
        assert_eq!(
            reason(&p, "fd00::1"),
            "IPv6 unique local address (fc00::/7)"
        );
        assert_eq!(reason(&p, "169.254.1.1"), "link-local");
        // Each filter can be turned off.
        let c = Config::from_toml(
            "[filters]\nula = false\ntentative = false\nlink_local = false",
            "f",
        )
        .unwrap();
        let p = plan(&h, &c, &kernel());
        for a in ["fd00::1", "2001:db8::10", "169.254.1.1"] {
            assert!(addresses(&p).contains(&a.to_string()), "{a}");
        }
        // An IPv4 secondary address carries the same bit as IPv6's temporary: kept.
        let mut h = host();
        let mut x = addr(2, "198.18.0.9");
        x.flags = AddrFlags(AddrFlags::TEMPORARY);
        h.addresses.push(x);
        assert!(addresses(&plan(&h, &Config::default(), &kernel())).contains(&"198.18.0.9".into()));
    }

    #[test]
    fn default_route_rule_per_family_and_opt_out() {
        let mut h = host();
        h.default_routes.retain(|r| !(r.ipv6 && r.ifindex == 2));
        let p = plan(&h, &Config::default(), &kernel());
        assert_eq!(
            reason(&p, "2001:db8::1"),
            "no IPv6 default route via eth0 (add one, or set require_default_route = false)"
        );
        let c = Config::from_toml("require_default_route = false", "f").unwrap();
        assert!(addresses(&plan(&h, &c, &kernel())).contains(&"2001:db8::1".into()));
    }

    #[test]
    fn include_exclude_and_families() {
        let c = Config::from_toml("include = [\"eth*\"]", "f").unwrap();
        let p = plan(&host(), &c, &kernel());
        assert_eq!(reason(&p, "198.18.1.1"), "wlan0 is not in the include list");
        let c = Config::from_toml("exclude = [\"wl*\"]", "f").unwrap();
        let p = plan(&host(), &c, &kernel());
        assert_eq!(reason(&p, "198.18.1.1"), "wlan0 is excluded by \"wl*\"");
        let mut h = host();
        h.links.insert(9, link(9, "docker0"));
        h.addresses.push(addr(9, "198.18.9.1"));
        h.default_routes.push(DefaultRoute {
            ipv6: false,
            ifindex: 9,
            table: 254,
        });
        let p = plan(&h, &Config::default(), &kernel());
        assert_eq!(
            reason(&p, "198.18.9.1"),
            "docker0 is excluded by \"docker*\""
        );
        let c = Config::from_toml(
            "ipv6 = false\n[[interface]]\nname = \"wlan0\"\nipv4 = false",
            "f",
        )
        .unwrap();
        let p = plan(&host(), &c, &kernel());
        assert_eq!(addresses(&p), ["198.18.0.1"]);
        assert_eq!(reason(&p, "2001:db8::1"), "IPv6 is turned off for eth0");
        assert_eq!(reason(&p, "198.18.1.1"), "IPv4 is turned off for wlan0");
    }

    #[test]
    fn rules_set_flags_and_priority_decides_the_eight() {
        let mut h = HostState::default();
        for i in 0..6u32 {
            let name = if i < 3 {
                format!("eth{i}")
            } else {
                format!("wwan{i}")
            };
            h.links.insert(10 + i, link(10 + i, &name));
            h.addresses.push(addr(10 + i, &format!("198.18.{i}.1")));
            h.addresses.push(addr(10 + i, &format!("198.18.{i}.2")));
            h.default_routes.push(DefaultRoute {
                ipv6: false,
                ifindex: 10 + i,
                table: 254,
            });
        }
        let c = Config::from_toml(
            "[[interface]]\nname = \"wwan*\"\nflags = [\"subflow\", \"backup\"]\npriority = 5",
            "f",
        )
        .unwrap();
        // One endpoint made by hand takes a slot: 7 left for 12 candidates.
        let mut k = kernel();
        k.endpoints
            .push(endpoint(1, "198.18.200.1", EndpointFlags::SIGNAL, None));
        let p = plan(&h, &c, &k);
        assert_eq!(p.endpoints.len(), 7);
        // wwan first (priority), each interface's first address before any second.
        assert_eq!(
            addresses(&p),
            [
                "198.18.3.1",
                "198.18.4.1",
                "198.18.5.1",
                "198.18.3.2",
                "198.18.4.2",
                "198.18.5.2",
                "198.18.0.1"
            ]
        );
        assert_eq!(
            p.endpoints[0].flags,
            EndpointFlags::SUBFLOW | EndpointFlags::BACKUP
        );
        assert_eq!(
            p.endpoints[0].reason,
            "rule wwan*: subflow backup; IPv4 default route via wwan3"
        );
        assert_eq!(p.over_capacity.len(), 5);
        assert!(reason(&p, "198.18.2.2")
            .starts_with("over the kernel's 8 endpoints (1 taken by others)"));
        assert!(p.endpoints.iter().all(|e| e.id != 1));
        assert_eq!(p.foreign.len(), 1);
        // limits count the hand-made endpoint only if it is a subflow one.
        assert_eq!(p.limits.unwrap().subflows, 7);
    }

    #[test]
    fn foreign_endpoints_are_left_alone_and_implicit_ones_replaced() {
        let mut k = kernel();
        k.endpoints
            .push(endpoint(7, "198.18.0.1", EndpointFlags::SUBFLOW, Some(2)));
        k.endpoints
            .push(endpoint(9, "198.18.1.1", EndpointFlags::IMPLICIT, None));
        let p = plan(&host(), &Config::default(), &k);
        assert_eq!(
            reason(&p, "198.18.0.1"),
            "endpoint id 7 made by someone else has this address: left alone"
        );
        let wlan = p.endpoints.iter().find(|e| e.interface == "wlan0").unwrap();
        assert_eq!(wlan.id, 9, "the implicit endpoint's slot and id");
        let actions = p.actions(&k);
        assert!(!actions.iter().any(|a| matches!(a, Action::Remove { .. })));
        assert_eq!(
            actions
                .iter()
                .filter(|a| matches!(a, Action::Add { .. }))
                .count(),
            2
        );
        // The hand-made subflow endpoint counts in the limits.
        assert_eq!(p.limits.unwrap().subflows, 3);
    }

    #[test]
    fn actions_reconcile_only_our_endpoints() {
        let c = Config::default();
        let f = EndpointFlags::SUBFLOW;
        let mut k = kernel();
        // Ours and right; ours but its link is gone; ours with the wrong backup flag.
        k.endpoints = vec![
            endpoint(1, "198.18.0.1", f, Some(2)),
            endpoint(4, "198.18.5.5", f, Some(5)),
            endpoint(2, "198.18.1.1", f | EndpointFlags::BACKUP, Some(3)),
            endpoint(6, "198.18.6.6", EndpointFlags::SIGNAL, None),
        ];
        k.owned = [
            (1, ip("198.18.0.1")),
            (4, ip("198.18.5.5")),
            (2, ip("198.18.1.1")),
        ]
        .into();
        k.limits = Some(Limits {
            subflows: 2,
            add_addr_accepted: 0,
        });
        let p = plan(&host(), &c, &k);
        let actions = p.actions(&k);
        assert_eq!(
            actions,
            vec![
                Action::Remove {
                    id: 4,
                    address: ip("198.18.5.5"),
                    reason: "the address is gone".into()
                },
                Action::SetFlags {
                    id: 2,
                    address: ip("198.18.1.1"),
                    flags: f,
                    reason: "client role: subflow; IPv4 default route via wlan0".into()
                },
                Action::SetLimits {
                    subflows: 3,
                    add_addr_accepted: 3,
                    reason:
                        "subflows: 3 subflow endpoint(s); add_addr_accepted: 3 subflow endpoint(s)"
                            .into()
                },
                Action::Add {
                    endpoint: p.endpoints[1].clone()
                },
            ]
        );
        // The new one gets the lowest free id: not 1, 2 (ours) nor 6 (foreign); 4 is
        // freed by the removal but remembered ids are avoided, and 4 is not remembered.
        assert_eq!(p.endpoints[1].id, 3);
        // Applied: nothing more to do.
        let mut after = k.clone();
        after.endpoints = vec![
            endpoint(1, "198.18.0.1", f, Some(2)),
            endpoint(2, "198.18.1.1", f, Some(3)),
            endpoint(3, "2001:db8::1", f, Some(2)),
            endpoint(6, "198.18.6.6", EndpointFlags::SIGNAL, None),
        ];
        after.owned = [
            (1, ip("198.18.0.1")),
            (2, ip("198.18.1.1")),
            (3, ip("2001:db8::1")),
        ]
        .into();
        after.limits = Some(Limits {
            subflows: 3,
            add_addr_accepted: 3,
        });
        assert_eq!(plan(&host(), &c, &after).actions(&after), vec![]);
    }

    #[test]
    fn a_changed_interface_or_role_flag_means_delete_and_add() {
        let mut k = kernel();
        k.endpoints = vec![endpoint(1, "198.18.0.1", EndpointFlags::SIGNAL, Some(2))];
        k.owned = [(1, ip("198.18.0.1"))].into();
        let p = plan(&host(), &Config::default(), &k);
        let a = p.actions(&k);
        assert!(matches!(&a[0], Action::Remove { id: 1, .. }));
        assert!(matches!(&a[1], Action::SetLimits { .. }));
        assert!(
            matches!(&a[2], Action::Add { endpoint } if endpoint.id == 1 && endpoint.address == ip("198.18.0.1"))
        );
    }

    #[test]
    fn a_returning_address_gets_its_old_id() {
        let mut k = kernel();
        k.remembered = [(ip("198.18.1.1"), 5), (ip("198.18.7.7"), 1)].into();
        let p = plan(&host(), &Config::default(), &k);
        let id = |a: &str| p.endpoints.iter().find(|e| e.address == ip(a)).unwrap().id;
        assert_eq!(id("198.18.1.1"), 5);
        // 1 is kept for 198.18.7.7, which may come back.
        assert_eq!(id("198.18.0.1"), 2);
    }

    #[test]
    fn limits_fixed_or_left_alone() {
        let c = Config::from_toml("[limits]\nsubflows = 6", "f").unwrap();
        let l = plan(&host(), &c, &kernel()).limits.unwrap();
        assert_eq!((l.subflows, l.add_addr_accepted), (6, 3));
        let c = Config::from_toml("[limits]\nmanage = false", "f").unwrap();
        let p = plan(&host(), &c, &kernel());
        assert!(p.limits.is_none());
        assert!(p
            .actions(&kernel())
            .iter()
            .all(|a| !matches!(a, Action::SetLimits { .. })));
    }

    #[test]
    fn strict_rp_filter_is_reported() {
        let mut h = host();
        h.rp_filter = [(2, 1), (3, 2)].into();
        let p = plan(&h, &Config::default(), &kernel());
        assert_eq!(p.strict_rp_filter, ["eth0"]);
    }

    #[test]
    fn unknown_interface_is_skipped() {
        let mut h = host();
        h.addresses.push(addr(42, "198.18.42.1"));
        let p = plan(&h, &Config::default(), &kernel());
        assert_eq!(
            reason(&p, "198.18.42.1"),
            "its interface is not known (yet)"
        );
    }

    fn backend(vips: &[&str], join_port: Option<u16>, announce_own: bool) -> Config {
        let mut c = Config {
            role: Role::Server,
            ..Config::default()
        };
        c.server.vips = vips.iter().map(|v| ip(v)).collect();
        c.server.join_port = join_port;
        c.server.announce_own = announce_own;
        c
    }

    #[test]
    fn backend_announces_its_vip_with_the_join_port_and_hides_its_own_addresses() {
        let mut h = host();
        h.addresses.push(addr(1, "198.18.200.1"));
        let p = plan(
            &h,
            &backend(&["198.18.200.1"], Some(20001), false),
            &KernelView::default(),
        );
        assert_eq!(p.endpoints.len(), 1, "{p:#?}");
        let e = &p.endpoints[0];
        assert_eq!(
            (e.address, e.port, e.flags),
            (ip("198.18.200.1"), Some(20001), EndpointFlags::SIGNAL)
        );
        assert_eq!(e.ifindex, 0, "a VIP endpoint is bound to no interface");
        let b = p.balancer.as_ref().expect("a balancer plan");
        assert_eq!(b.allow_join_initial_addr_port, 0);
        assert!(b.missing_vips.is_empty());
        for own in ["198.18.0.1", "2001:db8::1", "198.18.1.1"] {
            let s = p.skipped.iter().find(|s| s.address == ip(own)).expect(own);
            assert!(s.reason.contains("behind a balancer"), "{}", s.reason);
        }
        let add = p.actions(&KernelView::default());
        assert!(add
            .iter()
            .any(|a| matches!(a, Action::Add { endpoint } if endpoint.port == Some(20001))));
    }

    #[test]
    fn backend_with_announce_own_announces_its_addresses_and_keeps_the_c_flag() {
        let mut h = host();
        h.addresses.push(addr(1, "198.18.200.1"));
        let p = plan(
            &h,
            &backend(&["198.18.200.1"], None, true),
            &KernelView::default(),
        );
        let addrs: Vec<IpAddr> = p.endpoints.iter().map(|e| e.address).collect();
        assert!(
            addrs.contains(&ip("198.18.0.1")) && !addrs.contains(&ip("198.18.200.1")),
            "{addrs:?}"
        );
        assert!(p
            .endpoints
            .iter()
            .all(|e| e.port.is_none() && e.flags == EndpointFlags::SIGNAL));
        assert_eq!(p.balancer.unwrap().allow_join_initial_addr_port, 0);
        let vip = p
            .skipped
            .iter()
            .find(|s| s.address == ip("198.18.200.1"))
            .unwrap();
        assert!(vip.reason.contains("without a join port"), "{}", vip.reason);
    }

    #[test]
    fn a_vip_the_host_does_not_hold_is_reported_missing() {
        let p = plan(
            &host(),
            &backend(&["198.18.200.1", "2001:db8:200::1"], Some(20001), false),
            &KernelView::default(),
        );
        let b = p.balancer.unwrap();
        assert_eq!(
            b.missing_vips,
            vec![ip("198.18.200.1"), ip("2001:db8:200::1")]
        );
        assert!(p.endpoints.is_empty());
    }

    #[test]
    fn a_lone_server_has_no_balancer_plan() {
        let c = Config {
            role: Role::Server,
            ..Config::default()
        };
        let p = plan(&host(), &c, &KernelView::default());
        assert!(p.balancer.is_none());
        assert_eq!(p.endpoints.len(), 3);
    }

    #[test]
    fn a_join_port_change_re_adds_the_vip_endpoint() {
        let mut h = host();
        h.addresses.push(addr(1, "198.18.200.1"));
        let kernel = KernelView {
            endpoints: vec![{
                let attrs = mptcp_netlink::codec::AddressAttrs {
                    id: Some(1),
                    flags: Some(EndpointFlags::SIGNAL.bits()),
                    port: Some(20000),
                    ..mptcp_netlink::codec::AddressAttrs::from_ip(ip("198.18.200.1"))
                };
                Endpoint::try_from(&attrs).unwrap()
            }],
            owned: BTreeMap::from([(1, ip("198.18.200.1"))]),
            ..KernelView::default()
        };
        let p = plan(&h, &backend(&["198.18.200.1"], Some(20001), false), &kernel);
        let actions = p.actions(&kernel);
        assert!(
            matches!(actions[0], Action::Remove { id: 1, .. }),
            "{actions:?}"
        );
        assert!(actions
            .iter()
            .any(|a| matches!(a, Action::Add { endpoint } if endpoint.port == Some(20001))));
    }

    #[test]
    fn token_steering_alone_keeps_joins_to_the_vip_and_hides_own_addresses() {
        let mut c = Config {
            role: Role::Server,
            ..Config::default()
        };
        c.server.lb_registry = Some("198.19.0.254:7010".parse().unwrap());
        c.server.lb_key = Some("/k".into());
        c.server.announce_own = false;
        let p = plan(&host(), &c, &KernelView::default());
        let b = p.balancer.expect("a balancer plan");
        assert_eq!(b.allow_join_initial_addr_port, 1, "{}", b.reason);
        assert!(p.endpoints.is_empty(), "{:?}", p.endpoints);
    }
}
