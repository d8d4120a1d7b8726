//! The running balancer: applies the rules, re-applies them on a new configuration,
//! takes them away on exit. Changes are ordered so live connections never move:
//! routes and rules for a new backend come before the nftables table that sends
//! packets to them; a removed backend's rules go after the table stops using them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Serialize;

use crate::apply;
use crate::config::{Config, Mode};
use crate::rules::{self, Route, RouteRule, Ruleset, Slot};

/// Why the balancer cannot start or apply a configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration does not fit this host.
    #[error("{0}")]
    Refused(String),
    /// A tool failed.
    #[error(transparent)]
    Apply(#[from] apply::Error),
}

/// What one backend looks like now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendStatus {
    /// Its address.
    pub address: IpAddr,
    /// Its slot.
    pub slot: Slot,
    /// Its firewall mark.
    pub mark: String,
    /// Its routing table.
    pub table: u32,
    /// Its join port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join_port: Option<u16>,
    /// `active` or `draining`.
    pub state: &'static str,
}

/// The balancer's state, for `mptcp lb status` and the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The mode.
    pub mode: Mode,
    /// The VIPs.
    pub vips: Vec<std::net::SocketAddr>,
    /// VIPs whose ECMP route this daemon made (route mode); the others follow the
    /// operator's route.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub own_routes: Vec<IpAddr>,
    /// The backends.
    pub backends: Vec<BackendStatus>,
    /// What the configuration asks that this host cannot do.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The balancer, holding what it applied.
#[derive(Debug)]
pub struct Balancer {
    config: Config,
    slots: BTreeMap<IpAddr, Slot>,
    own_route: Vec<IpAddr>,
    rules: BTreeSet<RouteRule>,
    routes: BTreeSet<Route>,
    sysctls: Vec<(String, String)>,
}

fn sysctl_path(name: &str) -> String {
    format!("/proc/sys/{}", name.replace('.', "/"))
}

fn read_sysctl(name: &str) -> Option<String> {
    std::fs::read_to_string(sysctl_path(name))
        .ok()
        .map(|s| s.trim().to_string())
}

impl Balancer {
    /// Checks the host, then applies the configuration.
    ///
    /// # Errors
    /// [`Error::Refused`] when forwarding is off, a backend has no route, a VIP is
    /// held by this host in route mode; [`Error::Apply`] when a tool refuses. Nothing
    /// stays applied after an error.
    pub fn start(config: Config) -> Result<Balancer, Error> {
        config.check().map_err(|e| Error::Refused(e.0))?;
        let mut b = Balancer {
            config: config.clone(),
            slots: BTreeMap::new(),
            own_route: Vec::new(),
            rules: BTreeSet::new(),
            routes: BTreeSet::new(),
            sysctls: Vec::new(),
        };
        b.check_host(&config)?;
        if config.mode == Mode::Route {
            for vip in config.vip_addrs() {
                if !apply::has_route(vip)? {
                    b.own_route.push(vip);
                }
            }
            if !b.own_route.is_empty() {
                // An ECMP route of ours hashes on the 5-tuple, as anycast balancers do.
                for name in [
                    "net.ipv4.fib_multipath_hash_policy",
                    "net.ipv6.fib_multipath_hash_policy",
                ] {
                    if let Some(old) = read_sysctl(name) {
                        if old != "1" {
                            std::fs::write(sysctl_path(name), "1")
                                .map_err(|e| Error::Refused(format!("cannot set {name}=1: {e}")))?;
                            b.sysctls.push((name.to_string(), old));
                        }
                    }
                }
            }
        }
        if let Err(e) = b.apply(&config) {
            b.teardown();
            return Err(e);
        }
        Ok(b)
    }

    fn check_host(&self, config: &Config) -> Result<(), Error> {
        for (ipv6, name) in [
            (false, "net.ipv4.ip_forward"),
            (true, "net.ipv6.conf.all.forwarding"),
        ] {
            let needed = config.vips.iter().any(|v| v.is_ipv6() == ipv6);
            if needed && read_sysctl(name).as_deref() != Some("1") {
                return Err(Error::Refused(format!(
                    "{name} is not 1: this host does not forward, so it cannot balance \
                     (sysctl -w {name}=1)"
                )));
            }
        }
        for b in &config.backends {
            apply::route_dev(b.address).map_err(|_| {
                Error::Refused(format!(
                    "backend {}: no route to it from this host",
                    b.address
                ))
            })?;
        }
        if config.mode == Mode::Route {
            for vip in config.vip_addrs() {
                if apply::holds_address(vip)? {
                    return Err(Error::Refused(format!(
                        "VIP {vip} is an address of this balancer: in route mode the backends \
                         hold it and the balancer routes to them"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Applies a new configuration (SIGHUP): backends added, removed, drained.
    ///
    /// # Errors
    /// [`Error::Refused`] for a mode change (restart for that) or what [`start`]
    /// checks; the old rules stay in force then.
    ///
    /// [`start`]: Balancer::start
    pub fn reload(&mut self, config: Config) -> Result<(), Error> {
        config.check().map_err(|e| Error::Refused(e.0))?;
        if config.mode != self.config.mode {
            return Err(Error::Refused(format!(
                "mode {} -> {}: restart the balancer to change mode",
                self.config.mode, config.mode
            )));
        }
        self.check_host(&config)?;
        self.apply(&config)
    }

    fn ruleset(&self, config: &Config, slots: &BTreeMap<IpAddr, Slot>) -> Ruleset {
        let own: Vec<IpAddr> = self
            .own_route
            .iter()
            .copied()
            .filter(|v| config.vip_addrs().contains(v))
            .collect();
        rules::build(config, slots, &own)
    }

    fn apply(&mut self, config: &Config) -> Result<(), Error> {
        let slots = rules::assign_slots(config, &self.slots);
        let set = self.ruleset(config, &slots);
        let new_rules: BTreeSet<RouteRule> = set.rules.iter().cloned().collect();
        let new_routes: BTreeSet<Route> = set.routes.iter().cloned().collect();
        // 1. What new backends need, before anything sends packets to them.
        let add_rules: Vec<RouteRule> = new_rules.difference(&self.rules).cloned().collect();
        for r in &add_rules {
            apply::ip(&r.line("add"), "adding a policy rule")?;
            self.rules.insert(r.clone());
        }
        let replace: Vec<Route> = new_routes.difference(&self.routes).cloned().collect();
        for r in &replace {
            apply::ip(&r.line("replace"), "adding a route")?;
        }
        // A replaced ECMP route has the same key with other next hops: forget the old.
        self.routes
            .retain(|o| !replace.iter().any(|n| n.vip == o.vip && n.table == o.table));
        self.routes.extend(replace);
        // 2. The table, in one transaction.
        apply::nft(&set.nft)?;
        // 3. What removed backends (or VIPs) no longer need.
        let stale_routes: Vec<Route> = self.routes.difference(&new_routes).cloned().collect();
        for r in stale_routes {
            let _ = apply::ip(&r.line("del"), "removing a route");
            self.routes.remove(&r);
        }
        let stale_rules: Vec<RouteRule> = self.rules.difference(&new_rules).cloned().collect();
        for r in stale_rules {
            let _ = apply::ip(&r.line("del"), "removing a policy rule");
            self.rules.remove(&r);
        }
        self.slots = slots;
        self.config = config.clone();
        Ok(())
    }

    /// The current state.
    pub fn status(&self) -> Status {
        Status {
            mode: self.config.mode,
            vips: self.config.vips.clone(),
            own_routes: self.own_route.clone(),
            backends: self
                .config
                .backends
                .iter()
                .map(|b| {
                    let slot = self.slots.get(&b.address).copied().unwrap_or(0);
                    BackendStatus {
                        address: b.address,
                        slot,
                        mark: format!("{:#x}", rules::mark(slot)),
                        table: rules::TABLE_BASE + u32::from(slot),
                        join_port: b.join_port,
                        state: if b.drain { "draining" } else { "active" },
                    }
                })
                .collect(),
            warnings: self.warnings(),
        }
    }

    fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.config.mode == Mode::Route {
            for vip in self.config.vip_addrs() {
                if self.own_route.contains(&vip) {
                    continue;
                }
                for b in &self.config.backends {
                    if b.drain && b.address.is_ipv6() == vip.is_ipv6() {
                        w.push(format!(
                            "{} drains, but the route to {vip} is the operator's: new \
                             connections still reach it until its next hop leaves that route",
                            b.address
                        ));
                    }
                }
            }
        }
        w
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Each backend's slot (its mark is [`rules::mark`] of it).
    pub fn slots(&self) -> &BTreeMap<IpAddr, Slot> {
        &self.slots
    }

    /// The interfaces towards the backends.
    ///
    /// # Errors
    /// When a route lookup fails.
    pub fn backend_devices(&self) -> Result<Vec<String>, Error> {
        let mut devs = Vec::new();
        for b in &self.config.backends {
            let d = apply::route_dev(b.address)?;
            if !devs.contains(&d) {
                devs.push(d);
            }
        }
        Ok(devs)
    }

    fn teardown(&mut self) {
        let _ = apply::remove_table();
        for r in std::mem::take(&mut self.routes) {
            let _ = apply::ip(&r.line("del"), "removing a route");
        }
        for r in std::mem::take(&mut self.rules) {
            let _ = apply::ip(&r.line("del"), "removing a policy rule");
        }
        for (name, old) in std::mem::take(&mut self.sysctls) {
            let _ = std::fs::write(sysctl_path(&name), old);
        }
    }

    /// Removes every rule, route and table this balancer made and puts back the
    /// sysctls it changed.
    pub fn shutdown(mut self) {
        self.teardown();
    }
}
