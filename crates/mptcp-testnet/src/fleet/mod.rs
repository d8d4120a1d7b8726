//! A server fleet behind a layer-4 balancer: a client with 1 to 4 paths to a
//! balancer namespace, and 1 to 8 backend namespaces behind it, all sharing one
//! virtual IP (the crate docs, "The fleet", have the address plan).

mod plan;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Deref;
use std::time::Instant;

use crate::paths::PathOptions;
use crate::preflight::preflight_with;
use crate::testnet::{link_is_up, tbf_burst, MPTCP_LIMIT, READY_POLL, READY_TIMEOUT, TBF_LATENCY};
use crate::{Error, Netns};

pub use plan::Family;
use plan::{Iface, FILTER_TABLE, NAT_TABLE};

/// The most client paths of a [`Fleet`].
pub const MAX_FLEET_PATHS: usize = 4;
/// The most backends of a [`Fleet`].
pub const MAX_BACKENDS: usize = 8;

/// How the balancer spreads connections to the VIP over the backends; both are made
/// of the kernel's own parts (this kernel has no IPVS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balancer {
    /// ECMP anycast, as routers do it: a multipath route to the VIP with one next hop
    /// per backend, hashed on the 4-tuple (`fib_multipath_hash_policy=1`); every
    /// backend holds the VIP on `lo` and answers from it.
    #[default]
    Route,
    /// A NAT balancer: nftables `dnat` of TCP to the VIP to a backend's own address,
    /// picked by `jhash` of the 4-tuple; conntrack rewrites the replies back.
    Nat,
}

impl fmt::Display for Balancer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Balancer::Route => "route (ECMP anycast)",
            Balancer::Nat => "nat (nftables dnat by jhash)",
        })
    }
}

/// The client's MPTCP endpoints (in-kernel path manager), on the addresses of paths
/// `1..n`; path 0 carries the initial subflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientEndpoints {
    /// None: the client only follows announcements from its initial address (the
    /// kernel's behaviour without endpoints), and opens nothing itself.
    #[default]
    None,
    /// `subflow`: the stock client. Each extra path opens one subflow to the address
    /// the connection was made to (the VIP), which the balancer hashes anew.
    Subflow,
    /// `subflow fullmesh`: as [`Subflow`](Self::Subflow), and the extra paths also
    /// join every address the server announces (ADD_ADDR), so an announcement is
    /// followed from every extra path. (Debian 12's iproute2 6.1 does not know the
    /// newer `laminar` flag, so it is not offered.)
    Fullmesh,
}

impl ClientEndpoints {
    fn flags(self) -> &'static [&'static str] {
        match self {
            ClientEndpoints::None => &[],
            ClientEndpoints::Subflow => &["subflow"],
            ClientEndpoints::Fullmesh => &["subflow", "fullmesh"],
        }
    }
}

/// Builds a [`Fleet`]; get one from [`Fleet::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until .build() is called"]
pub struct FleetBuilder {
    path: PathOptions,
    backends: usize,
    kind: Balancer,
    endpoints: ClientEndpoints,
    vip_on_backends: Option<bool>,
    stock_balancer: bool,
}

impl Default for FleetBuilder {
    fn default() -> Self {
        FleetBuilder {
            path: PathOptions::new(2),
            backends: 3,
            kind: Balancer::default(),
            endpoints: ClientEndpoints::default(),
            vip_on_backends: None,
            stock_balancer: true,
        }
    }
}

impl FleetBuilder {
    /// Client paths to the balancer, 1 to [`MAX_FLEET_PATHS`] (default 2).
    pub fn paths(mut self, n: usize) -> Self {
        self.path.paths = n;
        self
    }

    /// Backends behind the balancer, 1 to [`MAX_BACKENDS`] (default 3).
    pub fn backends(mut self, n: usize) -> Self {
        self.backends = n;
        self
    }

    /// The balancer kind (default [`Balancer::Route`]).
    pub fn balancer(mut self, kind: Balancer) -> Self {
        self.kind = kind;
        self
    }

    /// Shapes every client-balancer link to `mbit` Mbit/s in each direction
    /// (default: unshaped). Balancer-backend links are never shaped.
    pub fn rate_mbit(mut self, mbit: u32) -> Self {
        self.path.rate_mbit = Some(mbit);
        self
    }

    /// Shapes path `path` to `mbit` Mbit/s, overriding [`rate_mbit`](Self::rate_mbit).
    pub fn path_rate_mbit(mut self, path: usize, mbit: u32) -> Self {
        self.path.path_rates.push((path, mbit));
        self
    }

    /// IPv4 everywhere (default on).
    pub fn ipv4(mut self, on: bool) -> Self {
        self.path.ipv4 = on;
        self
    }

    /// IPv6 everywhere (default off), added with `nodad`.
    pub fn ipv6(mut self, on: bool) -> Self {
        self.path.ipv6 = on;
        self
    }

    /// The client's MPTCP endpoints (default [`ClientEndpoints::None`]).
    pub fn client_endpoints(mut self, endpoints: ClientEndpoints) -> Self {
        self.endpoints = endpoints;
        self
    }

    /// Whether every backend holds the VIP on `lo` (/32 and /128). Always so with
    /// [`Balancer::Route`] (anycast needs it); off by default with [`Balancer::Nat`],
    /// where a backend that should take subflows addressed to the VIP needs it.
    pub fn vip_on_backends(mut self, on: bool) -> Self {
        self.vip_on_backends = Some(on);
        self
    }

    /// Whether the operator's balancer is installed (default on): the ECMP route
    /// ([`Balancer::Route`]) or the `fleet_nat` table ([`Balancer::Nat`]). Off leaves
    /// the VIP unrouted on the balancer, for a balancer daemon to take over.
    pub fn stock_balancer(mut self, on: bool) -> Self {
        self.stock_balancer = on;
        self
    }

    fn validate(&self) -> Result<Vec<Option<u32>>, Error> {
        let invalid = |msg: String| Err(Error::InvalidConfig(msg));
        if !(1..=MAX_BACKENDS).contains(&self.backends) {
            return invalid(format!(
                "{} backends requested; a fleet has 1 to {MAX_BACKENDS}",
                self.backends
            ));
        }
        if self.kind == Balancer::Route && self.vip_on_backends == Some(false) {
            return invalid(
                "vip_on_backends(false) with Balancer::Route: anycast backends must hold the VIP"
                    .into(),
            );
        }
        self.path.check(MAX_FLEET_PATHS, "a fleet")
    }

    /// Checks the configuration and the machine ([`Fleet::preflight`]), then creates
    /// the namespaces, links, routes, rules and endpoints, and waits until every link
    /// is operational.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] (checked before anything is created),
    /// [`Error::Preflight`], or the failing command; whatever was created is removed.
    pub fn build(self) -> Result<Fleet, Error> {
        let rates = self.validate()?;
        Fleet::preflight()?;
        let families: Vec<Family> = [(self.path.ipv4, Family::V4), (self.path.ipv6, Family::V6)]
            .into_iter()
            .filter_map(|(on, family)| on.then_some(family))
            .collect();
        // Namespaces first, all owned by the fleet: an error below drops it, and with
        // it everything created so far.
        let fleet = Fleet {
            client: Netns::new("fleet-client")?,
            balancer: Netns::new("fleet-lb")?,
            backends: (0..self.backends)
                .map(|k| {
                    Ok(Backend {
                        index: k,
                        netns: Netns::new(&format!("fleet-b{k}"))?,
                        own: plan::backend_end(k),
                        lb_end: plan::balancer_backend_end(k),
                        families: families.clone(),
                    })
                })
                .collect::<Result<_, Error>>()?,
            kind: self.kind,
            rates,
            vip_on_backends: self.vip_on_backends.unwrap_or(self.kind == Balancer::Route),
            families,
            endpoints: self.endpoints,
            stock_balancer: self.stock_balancer,
        };
        fleet.setup()?;
        tracing::info!(fleet = %fleet, "fleet ready");
        Ok(fleet)
    }
}

/// One backend of a [`Fleet`]: its namespace (also through `Deref`), its own
/// addresses and the balancer's interface towards it.
#[derive(Debug)]
pub struct Backend {
    index: usize,
    netns: Netns,
    own: Iface,
    lb_end: Iface,
    families: Vec<Family>,
}

impl Backend {
    /// Its position in the fleet, 0-based.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Its namespace.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// Its own address on `eth0` (`198.19.<k>.2`, `2001:db8:b<k>::2`), reachable from
    /// the balancer but not from the client; `None` if the family is off.
    pub fn addr(&self, family: Family) -> Option<IpAddr> {
        self.families
            .contains(&family)
            .then(|| self.own.addr(family))
    }

    /// The balancer's address towards it (`198.19.<k>.254`, `2001:db8:b<k>::fe`), the
    /// backend's default gateway; `None` if the family is off.
    pub fn gateway(&self, family: Family) -> Option<IpAddr> {
        self.families
            .contains(&family)
            .then(|| self.lb_end.addr(family))
    }

    /// The balancer's interface towards it: `b<k>`.
    pub fn balancer_dev(&self) -> &str {
        &self.lb_end.dev
    }
}

impl Deref for Backend {
    type Target = Netns;

    fn deref(&self) -> &Netns {
        &self.netns
    }
}

/// A client, a layer-4 balancer and a fleet of backends sharing one virtual IP, in
/// network namespaces; see the crate docs, "The fleet", for the plan.
///
/// Dropping it removes every namespace (also while a panic unwinds), and with them
/// every link, route and nftables table.
///
/// ```no_run
/// use std::net::{SocketAddr, TcpListener, TcpStream};
/// use mptcp_testnet::{Balancer, Family, Fleet};
///
/// let fleet = Fleet::builder().backends(3).balancer(Balancer::Nat).build()?;
/// println!("{fleet}");
/// // A listener on every backend, each in its backend's namespace.
/// let listeners = fleet
///     .backends()
///     .iter()
///     .map(|b| b.run(|| TcpListener::bind("0.0.0.0:80")))
///     .collect::<Result<std::io::Result<Vec<_>>, _>>()??;
/// let vip = SocketAddr::new(fleet.vip(Family::V4), 80);
/// let conn = fleet.client().run(|| TcpStream::connect(vip))??;
/// // The balancer picked one backend; its listener has the connection.
/// # drop((conn, listeners));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Fleet {
    client: Netns,
    balancer: Netns,
    backends: Vec<Backend>,
    kind: Balancer,
    rates: Vec<Option<u32>>,
    families: Vec<Family>,
    endpoints: ClientEndpoints,
    vip_on_backends: bool,
    stock_balancer: bool,
}

impl Fleet {
    /// A builder with the defaults: 2 unshaped paths, 3 backends, IPv4 only,
    /// [`Balancer::Route`] with the stock ECMP route, [`ClientEndpoints::None`].
    pub fn builder() -> FleetBuilder {
        FleetBuilder::default()
    }

    /// Checks what a fleet needs, all problems at once: what
    /// [`preflight`](crate::preflight) checks, and `nft` (Debian package `nftables`)
    /// for the balancer's filter and NAT.
    ///
    /// # Errors
    /// [`Error::Preflight`] listing each problem.
    pub fn preflight() -> Result<(), Error> {
        preflight_with(&["nft"])
    }

    /// The client's namespace.
    pub fn client(&self) -> &Netns {
        &self.client
    }

    /// The balancer's namespace.
    pub fn balancer(&self) -> &Netns {
        &self.balancer
    }

    /// The balancer kind.
    pub fn kind(&self) -> Balancer {
        self.kind
    }

    /// Backend `k`, `None` if there is no such backend.
    pub fn backend(&self, k: usize) -> Option<&Backend> {
        self.backends.get(k)
    }

    /// Every backend, in order.
    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// The number of client paths.
    pub fn paths(&self) -> usize {
        self.rates.len()
    }

    /// The address families in use.
    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// The client's MPTCP endpoints.
    pub fn client_endpoints(&self) -> ClientEndpoints {
        self.endpoints
    }

    /// Whether the backends hold the VIP on `lo`.
    pub fn vip_on_backends(&self) -> bool {
        self.vip_on_backends
    }

    /// The configured rate of path `path` in Mbit/s; `None` if unshaped or no such path.
    pub fn path_rate_mbit(&self, path: usize) -> Option<u32> {
        self.rates.get(path).copied().flatten()
    }

    /// The virtual IP of a family (`198.18.200.1` or `2001:db8:200::1`); it is only
    /// configured when the family is on.
    pub fn vip(&self, family: Family) -> IpAddr {
        plan::vip(family)
    }

    /// The IPv4 virtual IP, `198.18.200.1`.
    pub fn vip4(&self) -> Ipv4Addr {
        plan::VIP4
    }

    /// The IPv6 virtual IP, `2001:db8:200::1`.
    pub fn vip6(&self) -> Ipv6Addr {
        plan::VIP6
    }

    /// The client's address on path `path` (`198.18.<i>.1`, `2001:db8:<i>::1`); `None`
    /// if there is no such path or the family is off.
    pub fn client_addr(&self, path: usize, family: Family) -> Option<IpAddr> {
        (path < self.paths() && self.families.contains(&family))
            .then(|| plan::client_end(path).addr(family))
    }

    /// Takes path `path` down (`false`) or brings it back (`true`), at the client:
    /// its interface goes down, so its routes go and sends on it fail at once; the
    /// balancer's end only loses carrier. Up sets it up, puts the routes back and
    /// waits until both ends are operational.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if there is no such path; the failing `ip` command.
    pub fn set_path_up(&self, path: usize, up: bool) -> Result<(), Error> {
        if path >= self.paths() {
            return Err(Error::InvalidConfig(format!(
                "no path {path}: the client has {} paths",
                self.paths()
            )));
        }
        let end = plan::client_end(path);
        let state = if up { "up" } else { "down" };
        self.client.ip(["link", "set", "dev", &end.dev, state])?;
        if up {
            self.client_routes(path)?;
            let far = plan::balancer_client_end(path);
            wait_until_up(&[(&self.client, &end.dev), (&self.balancer, &far.dev)])?;
        }
        tracing::info!(path, state, "fleet path state changed");
        Ok(())
    }

    /// Takes path `path` down; see [`set_path_up`](Self::set_path_up).
    ///
    /// # Errors
    /// As for [`set_path_up`](Self::set_path_up).
    pub fn path_down(&self, path: usize) -> Result<(), Error> {
        self.set_path_up(path, false)
    }

    /// Brings path `path` back up; see [`set_path_up`](Self::set_path_up).
    ///
    /// # Errors
    /// As for [`set_path_up`](Self::set_path_up).
    pub fn path_up(&self, path: usize) -> Result<(), Error> {
        self.set_path_up(path, true)
    }

    fn setup(&self) -> Result<(), Error> {
        self.host_sysctls(&self.client)?;
        self.host_sysctls(&self.balancer)?;
        for b in &self.backends {
            self.host_sysctls(b)?;
        }
        self.balancer_sysctls()?;
        let mut ends: Vec<(&Netns, String)> = Vec::new();
        for i in 0..self.paths() {
            let (own, far) = (plan::client_end(i), plan::balancer_client_end(i));
            self.veth((&self.client, &own), (&self.balancer, &far), self.rates[i])?;
            for &family in &self.families {
                self.client.ip(plan::client_rule(i, family))?;
            }
            self.client_routes(i)?;
            ends.extend([(&self.client, own.dev), (&self.balancer, far.dev)]);
        }
        for b in &self.backends {
            self.veth((&self.balancer, &b.lb_end), (&b.netns, &b.own), None)?;
            for &family in &self.families {
                b.ip(plan::backend_route(b.index, family))?;
                if self.vip_on_backends {
                    b.ip([
                        family.flag(),
                        "addr",
                        "add",
                        &plan::vip_host(family),
                        "dev",
                        "lo",
                    ])?;
                }
            }
            mptcp_limits(b)?;
            ends.extend([
                (&self.balancer, b.lb_end.dev.clone()),
                (&b.netns, b.own.dev.clone()),
            ]);
        }
        self.balancer_rules()?;
        self.client_mptcp()?;
        let ends: Vec<(&Netns, &str)> = ends.iter().map(|(ns, dev)| (*ns, dev.as_str())).collect();
        wait_until_up(&ends)
    }

    fn host_sysctls(&self, ns: &Netns) -> Result<(), Error> {
        ns.set_sysctl("net.mptcp.enabled", "1")?;
        // Subflows and replies arrive on one interface for an address of another;
        // strict reverse-path filtering would drop them.
        for key in ["all", "default"] {
            ns.set_sysctl(&format!("net.ipv4.conf.{key}.rp_filter"), "0")?;
            if self.families.contains(&Family::V6) {
                ns.set_sysctl(&format!("net.ipv6.conf.{key}.accept_dad"), "0")?;
                ns.set_sysctl(&format!("net.ipv6.conf.{key}.keep_addr_on_down"), "1")?;
            }
        }
        Ok(())
    }

    fn balancer_sysctls(&self) -> Result<(), Error> {
        let lb = &self.balancer;
        for &family in &self.families {
            let v = match family {
                Family::V4 => "ipv4",
                Family::V6 => "ipv6",
            };
            let forwarding = match family {
                Family::V4 => "net.ipv4.ip_forward",
                Family::V6 => "net.ipv6.conf.all.forwarding",
            };
            lb.set_sysctl(forwarding, "1")?;
            if self.kind == Balancer::Route {
                // 1: hash on the L4 4-tuple, as ECMP routers in front of fleets do;
                // the default (0) hashes addresses only, so every subflow of one
                // client address would land on one backend.
                lb.set_sysctl(&format!("net.{v}.fib_multipath_hash_policy"), "1")?;
            }
        }
        Ok(())
    }

    /// A veth pair from `a` to `b` with both ends' addresses, up, shaped if `rate`.
    fn veth(
        &self,
        (a_ns, a): (&Netns, &Iface),
        (b_ns, b): (&Netns, &Iface),
        rate: Option<u32>,
    ) -> Result<(), Error> {
        a_ns.ip([
            "link",
            "add",
            &a.dev,
            "index",
            &a.index.to_string(),
            "type",
            "veth",
            "peer",
            "name",
            &b.dev,
            "index",
            &b.index.to_string(),
            "netns",
            b_ns.name(),
        ])?;
        for (ns, end) in [(a_ns, a), (b_ns, b)] {
            for &family in &self.families {
                let mut add = vec![family.flag(), "addr", "add"];
                let cidr = end.cidr(family);
                add.extend([cidr.as_str(), "dev", &end.dev]);
                if family == Family::V6 {
                    add.push("nodad");
                }
                ns.ip(add)?;
            }
            ns.ip(["link", "set", "dev", &end.dev, "up"])?;
            if let Some(rate) = rate {
                // The same shaping as a TestNet path (see the crate docs).
                let (rate, burst) = (format!("{rate}mbit"), tbf_burst(rate).to_string());
                ns.tc([
                    "qdisc",
                    "replace",
                    "dev",
                    &end.dev,
                    "root",
                    "tbf",
                    "rate",
                    &rate,
                    "burst",
                    &burst,
                    "latency",
                    TBF_LATENCY,
                ])?;
            }
        }
        Ok(())
    }

    fn client_routes(&self, path: usize) -> Result<(), Error> {
        for &family in &self.families {
            for route in plan::client_routes(path, family) {
                self.client.ip(route)?;
            }
        }
        Ok(())
    }

    /// The fleet's filter always; the operator's balancer unless it is off.
    fn balancer_rules(&self) -> Result<(), Error> {
        self.balancer
            .exec("nft", [plan::filter_ruleset(&self.families)])?;
        if !self.stock_balancer {
            return Ok(());
        }
        match self.kind {
            Balancer::Route => {
                for &family in &self.families {
                    self.balancer
                        .ip(plan::ecmp_route(self.backends.len(), family))?;
                }
            }
            Balancer::Nat => {
                self.balancer.exec(
                    "nft",
                    [plan::nat_ruleset(self.backends.len(), &self.families)],
                )?;
            }
        }
        Ok(())
    }

    fn client_mptcp(&self) -> Result<(), Error> {
        mptcp_limits(&self.client)?;
        let flags = self.endpoints.flags();
        if flags.is_empty() {
            return Ok(());
        }
        for i in 1..self.paths() {
            let end = plan::client_end(i);
            for &family in &self.families {
                let addr = end.addr(family).to_string();
                let mut add = vec!["mptcp", "endpoint", "add", &addr, "dev", &end.dev];
                add.extend(flags);
                self.client.ip(add)?;
            }
        }
        Ok(())
    }
}

/// `subflows 8 add_addr_accepted 8`, the kernel's maximum.
fn mptcp_limits(ns: &Netns) -> Result<(), Error> {
    ns.ip([
        "mptcp",
        "limits",
        "set",
        "subflows",
        MPTCP_LIMIT,
        "add_addr_accepted",
        MPTCP_LIMIT,
    ])
    .map(drop)
}

/// Waits until every `(namespace, interface)` is operational (`state UP`): the
/// kernel applies a veth's carrier from its link-watch work, a moment after `ip link
/// set up`, and drops traffic on it until then.
fn wait_until_up(ends: &[(&Netns, &str)]) -> Result<(), Error> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut seen: Vec<&str> = Vec::new();
    for &(ns, _) in ends {
        if seen.contains(&ns.name()) {
            continue;
        }
        seen.push(ns.name());
        let devs: Vec<&str> = ends
            .iter()
            .filter(|(other, _)| other.name() == ns.name())
            .map(|&(_, dev)| dev)
            .collect();
        loop {
            let out = ns.ip(["-o", "link", "show", "up"])?;
            let text = String::from_utf8_lossy(&out.stdout);
            let Some(down) = devs.iter().find(|dev| !link_is_up(&text, dev)) else {
                break;
            };
            if Instant::now() >= deadline {
                return Err(Error::Unsupported {
                    what: format!(
                        "operational state UP for {down} in {} after {READY_TIMEOUT:?}",
                        ns.name()
                    ),
                    hint: "check `ip -n NS link` for the veth state".into(),
                });
            }
            std::thread::sleep(READY_POLL);
        }
    }
    Ok(())
}

/// A summary: balancer kind, VIPs, every namespace with its links, and how to enter
/// one.
impl fmt::Display for Fleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let families: Vec<String> = self.families.iter().map(Family::to_string).collect();
        let addrs = |end: &Iface| -> String {
            let a: Vec<String> = self
                .families
                .iter()
                .map(|&fam| end.addr(fam).to_string())
                .collect();
            a.join(",")
        };
        let vips: Vec<String> = self
            .families
            .iter()
            .map(|&fam| self.vip(fam).to_string())
            .collect();
        writeln!(
            f,
            "fleet: {} client path(s), {} backend(s), {}, balancer {}{}, client endpoints {:?}",
            self.paths(),
            self.backends.len(),
            families.join("+"),
            self.kind,
            if self.stock_balancer {
                ""
            } else {
                " (no stock rules)"
            },
            self.endpoints,
        )?;
        writeln!(f, "  VIP {}", vips.join(", "))?;
        writeln!(f, "  client: netns {}", self.client.name())?;
        for i in 0..self.paths() {
            let (own, far) = (plan::client_end(i), plan::balancer_client_end(i));
            let rate = self
                .path_rate_mbit(i)
                .map_or("unshaped".to_string(), |r| format!("{r} Mbit/s"));
            writeln!(
                f,
                "    path {i}: {} {} <-> balancer {} {} ({rate})",
                own.dev,
                addrs(&own),
                far.dev,
                addrs(&far)
            )?;
        }
        let nat = if self.stock_balancer && self.kind == Balancer::Nat {
            format!(", inet {NAT_TABLE}")
        } else {
            String::new()
        };
        writeln!(
            f,
            "  balancer: netns {} (nftables: inet {FILTER_TABLE}{nat})",
            self.balancer.name()
        )?;
        for b in &self.backends {
            writeln!(
                f,
                "  backend {}: netns {}, {} {} <-> balancer {} {}{}",
                b.index,
                b.name(),
                b.own.dev,
                addrs(&b.own),
                b.lb_end.dev,
                addrs(&b.lb_end),
                if self.vip_on_backends {
                    ", VIP on lo"
                } else {
                    ""
                },
            )?;
        }
        write!(
            f,
            "  enter a namespace with: ip netns exec {} bash",
            self.client.name()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_validates_before_touching_anything() {
        let bad = [
            Fleet::builder().paths(0),
            Fleet::builder().paths(5),
            Fleet::builder().backends(0),
            Fleet::builder().backends(9),
            Fleet::builder().ipv4(false),
            Fleet::builder().path_rate_mbit(2, 10),
            Fleet::builder().rate_mbit(0),
            Fleet::builder().vip_on_backends(false),
        ];
        for builder in bad {
            let result = builder.clone().build();
            assert!(
                matches!(result, Err(Error::InvalidConfig(_))),
                "{builder:?} gave {result:?}"
            );
        }
        let rates = Fleet::builder()
            .paths(3)
            .rate_mbit(10)
            .path_rate_mbit(1, 30)
            .validate()
            .unwrap();
        assert_eq!(rates, [Some(10), Some(30), Some(10)]);
        assert!(Fleet::builder()
            .balancer(Balancer::Nat)
            .vip_on_backends(false)
            .validate()
            .is_ok());
    }

    #[test]
    fn endpoint_flags() {
        assert!(ClientEndpoints::None.flags().is_empty());
        assert_eq!(ClientEndpoints::Subflow.flags(), ["subflow"]);
        assert_eq!(ClientEndpoints::Fullmesh.flags(), ["subflow", "fullmesh"]);
    }
}
