//! The multipath test network: a client and a server namespace (and optionally a
//! router between them) joined by 1 to 8 veth paths, with MPTCP endpoints and limits.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::paths::PathOptions;
use crate::{preflight, Error, Netns};

mod plan;

pub use plan::Endpoints;
use plan::{args, path_ends, path_links, route_commands, rule_commands, End, Family, Link, Role};
pub(crate) use plan::{link_is_up, tbf_burst, TBF_LATENCY};

/// The most paths a [`TestNet`] can have: the kernel's in-kernel path manager allows
/// at most 8 subflows per connection.
pub const MAX_PATHS: usize = 8;

/// The in-kernel path manager keeps at most 8 endpoints per namespace
/// (`MPTCP_PM_ADDR_MAX`); one more fails with ERANGE ("too many addresses").
const MAX_ENDPOINTS: usize = 8;
/// How long a fresh or re-enabled veth may take to become operational.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(3);
pub(crate) const READY_POLL: Duration = Duration::from_millis(5);
/// Both MPTCP limits (`subflows`, `add_addr_accepted`) are set to the kernel's maximum.
pub(crate) const MPTCP_LIMIT: &str = "8";
/// Builds a [`TestNet`]; get one from [`TestNet::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until .build() is called"]
pub struct TestNetBuilder {
    path: PathOptions,
    router: bool,
    endpoints: Endpoints,
    backup: Vec<usize>,
}

impl Default for TestNetBuilder {
    fn default() -> Self {
        TestNetBuilder {
            path: PathOptions::new(2),
            router: false,
            endpoints: Endpoints::default(),
            backup: Vec::new(),
        }
    }
}

impl TestNetBuilder {
    /// Number of paths, 1 to [`MAX_PATHS`] (default 2).
    pub fn paths(mut self, n: usize) -> Self {
        self.path.paths = n;
        self
    }

    /// Shapes every path to `mbit` Mbit/s in each direction (default: unshaped).
    pub fn rate_mbit(mut self, mbit: u32) -> Self {
        self.path.rate_mbit = Some(mbit);
        self
    }

    /// Shapes path `path` to `mbit` Mbit/s, overriding [`rate_mbit`](Self::rate_mbit).
    pub fn path_rate_mbit(mut self, path: usize, mbit: u32) -> Self {
        self.path.path_rates.push((path, mbit));
        self
    }

    /// IPv4 addresses on the paths (default on).
    pub fn ipv4(mut self, on: bool) -> Self {
        self.path.ipv4 = on;
        self
    }

    /// IPv6 addresses on the paths (default off). They are added with `nodad`, so they
    /// are usable at once.
    pub fn ipv6(mut self, on: bool) -> Self {
        self.path.ipv6 = on;
        self
    }

    /// Puts a router namespace between client and server (default off).
    pub fn router(mut self, on: bool) -> Self {
        self.router = on;
        self
    }

    /// Which MPTCP endpoints to configure (default [`Endpoints::ClientSubflow`]).
    pub fn endpoints(mut self, endpoints: Endpoints) -> Self {
        self.endpoints = endpoints;
        self
    }

    /// Marks path `path`'s endpoint `backup`: its subflow is only used when no other
    /// is available. Needs an endpoint on that path, so `path` must be 1 or more and
    /// the endpoints not [`Endpoints::None`].
    pub fn backup_path(mut self, path: usize) -> Self {
        self.backup.push(path);
        self
    }

    fn validate(&self) -> Result<Vec<Option<u32>>, Error> {
        let invalid = |msg: String| Err(Error::InvalidConfig(msg));
        let rates = self.path.check(MAX_PATHS, "a test network")?;
        let families = usize::from(self.path.ipv4) + usize::from(self.path.ipv6);
        let endpoints = (self.path.paths - 1) * families;
        if self.endpoints != Endpoints::None && endpoints > MAX_ENDPOINTS {
            return invalid(format!(
                "{} paths with {families} address families need {endpoints} MPTCP endpoints; \
                 the kernel allows {MAX_ENDPOINTS} per namespace (use fewer paths, one family, \
                 or Endpoints::None)",
                self.path.paths
            ));
        }
        for &path in &self.backup {
            if path == 0 || path >= self.path.paths {
                return invalid(format!(
                    "backup path {path}: only paths 1..{} have endpoints (path 0 carries the initial subflow)",
                    self.path.paths
                ));
            }
            if self.endpoints == Endpoints::None {
                return invalid(format!(
                    "backup path {path} with Endpoints::None: there is no endpoint to mark"
                ));
            }
        }
        Ok(rates)
    }

    /// Checks the configuration and the machine ([`preflight`]), then creates the
    /// namespaces, links, qdiscs, routes and MPTCP endpoints.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a bad configuration (checked first, before anything
    /// is created), [`Error::Preflight`], or the failing command. Whatever was created
    /// before the failure is removed.
    pub fn build(self) -> Result<TestNet, Error> {
        let rates = self.validate()?;
        preflight()?;
        let host = |role: Role, label: &str| -> Result<Host, Error> {
            let ends: Vec<End> = (0..self.path.paths)
                .map(|i| {
                    let ends = path_ends(i, self.router);
                    match role {
                        Role::Client => ends.client,
                        Role::Server => ends.server,
                        Role::Router => ends.router.map_or(ends.client, |(c, _)| c),
                    }
                })
                .collect();
            Ok(Host {
                netns: Netns::new(label)?,
                v4: if self.path.ipv4 {
                    ends.iter().map(|e| e.v4).collect()
                } else {
                    Vec::new()
                },
                v6: if self.path.ipv6 {
                    ends.iter().map(|e| e.v6).collect()
                } else {
                    Vec::new()
                },
            })
        };
        let net = TestNet {
            client: host(Role::Client, "client")?,
            server: host(Role::Server, "server")?,
            router: if self.router {
                Some(host(Role::Router, "router")?)
            } else {
                None
            },
            rates,
            ipv4: self.path.ipv4,
            ipv6: self.path.ipv6,
            endpoints: self.endpoints,
            backup: self.backup,
            strip: AtomicBool::new(false),
        };
        net.setup()?;
        tracing::info!(net = %net, "test network ready");
        Ok(net)
    }
}

/// One host of a [`TestNet`]: its namespace (reachable through `Deref`) and its
/// addresses, one per path and family.
#[derive(Debug)]
pub struct Host {
    netns: Netns,
    v4: Vec<Ipv4Addr>,
    v6: Vec<Ipv6Addr>,
}

impl Host {
    /// The host's namespace: run closures, read counters, set sysctls there.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// The host's IPv4 address on path `path`; `None` if there is no such path or
    /// IPv4 is off. For the router, its address on the client side of the path.
    pub fn addr(&self, path: usize) -> Option<IpAddr> {
        self.v4.get(path).map(|&a| a.into())
    }

    /// The host's IPv6 address on path `path`; `None` if there is no such path or
    /// IPv6 is off. For the router, its address on the client side of the path.
    pub fn addr6(&self, path: usize) -> Option<IpAddr> {
        self.v6.get(path).map(|&a| a.into())
    }
}

impl Deref for Host {
    type Target = Netns;

    fn deref(&self) -> &Netns {
        &self.netns
    }
}

/// A client and a server joined by several paths, each its own veth pair (through a
/// router namespace if asked), with rate limits, MPTCP endpoints and a middlebox.
///
/// Dropping it removes every namespace, and with them every link, qdisc and rule.
/// The crate docs describe the address plan, the routing and the shaping.
///
/// ```no_run
/// use mptcp_testnet::TestNet;
///
/// let net = TestNet::builder().paths(2).rate_mbit(20).build()?;
/// let server = net.server().addr(0).expect("IPv4 is on by default");
/// println!("{net}\nconnect to {server}:5201 from {}", net.client().name());
/// net.path_down(1)?; // the second path fails ...
/// net.path_up(1)?; // ... and comes back
/// # Ok::<(), mptcp_testnet::Error>(())
/// ```
#[derive(Debug)]
pub struct TestNet {
    client: Host,
    server: Host,
    router: Option<Host>,
    rates: Vec<Option<u32>>,
    ipv4: bool,
    ipv6: bool,
    endpoints: Endpoints,
    backup: Vec<usize>,
    strip: AtomicBool,
}

impl TestNet {
    /// A builder with the defaults: 2 unshaped paths, IPv4 only, no router,
    /// [`Endpoints::ClientSubflow`].
    pub fn builder() -> TestNetBuilder {
        TestNetBuilder::default()
    }

    /// The client host.
    pub fn client(&self) -> &Host {
        &self.client
    }

    /// The server host.
    pub fn server(&self) -> &Host {
        &self.server
    }

    /// The router host, if the network has one.
    pub fn router(&self) -> Option<&Host> {
        self.router.as_ref()
    }

    /// The number of paths.
    pub fn paths(&self) -> usize {
        self.rates.len()
    }

    /// The endpoints configured at build time.
    pub fn endpoints(&self) -> Endpoints {
        self.endpoints
    }

    /// The configured rate of path `path` in Mbit/s; `None` if unshaped or no such path.
    pub fn path_rate_mbit(&self, path: usize) -> Option<u32> {
        self.rates.get(path).copied().flatten()
    }

    /// The sum of all paths' rates in Mbit/s, the ceiling of a multipath transfer;
    /// `None` if any path is unshaped.
    pub fn sum_rate_mbit(&self) -> Option<u64> {
        self.rates.iter().map(|r| r.map(u64::from)).sum()
    }

    /// Takes path `path` down (`false`) or brings it back up (`true`).
    ///
    /// Down cuts the path at the client, as when a phone loses its Wi-Fi: the
    /// client's interface on the path goes down (`ip link set down`), so the client
    /// drops the path's routes and its sends there fail at once with `ENETUNREACH`;
    /// the far end (server or router) only loses carrier, and what it sends on the
    /// path vanishes. The server's interfaces stay up, so its address on the path
    /// stays a local address, reachable over the other paths: subflows that other
    /// paths carry towards it survive (which they would not if the server's
    /// interface went down too: IPv6 would drop the address's local route). MPTCP
    /// moves the data of the dead subflow to the others after its retransmission
    /// timeout. Up sets every end of the path up, puts the routes back and waits
    /// until the path carries traffic again.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if there is no such path; the failing `ip` command.
    pub fn set_path_up(&self, path: usize, up: bool) -> Result<(), Error> {
        if path >= self.paths() {
            return Err(Error::InvalidConfig(format!(
                "no path {path}: the network has {} paths",
                self.paths()
            )));
        }
        let state = if up { "up" } else { "down" };
        for link in path_links(path, self.router.is_some()) {
            for end in link.ends.iter().filter(|e| up || e.role == Role::Client) {
                self.host(end.role)
                    .ip(["link", "set", "dev", &end.dev, state])?;
            }
        }
        if up {
            self.apply_routes(path)?;
            self.wait_links_up(path..path + 1)?;
        }
        tracing::info!(path, state, "path state changed");
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

    /// Turns the middlebox on or off: it strips TCP option 30 (MPTCP) from every TCP
    /// packet it forwards or receives, so MPTCP connections fall back to plain TCP.
    ///
    /// The rule is `iptables -t mangle -A PREROUTING -p tcp -j TCPOPTSTRIP
    /// --strip-options 30` (and the same with `ip6tables` when IPv6 is on), in the
    /// router's namespace when there is a router (it then sees both directions), else
    /// in the server's (it sees what the client sends). Turning it off deletes the
    /// rule; setting the current state again does nothing.
    ///
    /// # Errors
    /// [`Error::MissingTool`] ("install iptables") if iptables is not installed; the
    /// failing iptables command (e.g. when the kernel lacks `xt_TCPOPTSTRIP`).
    pub fn set_strip_mptcp(&self, on: bool) -> Result<(), Error> {
        if self.strip.load(Ordering::SeqCst) == on {
            return Ok(());
        }
        let host = self.router.as_ref().unwrap_or(&self.server);
        let action = if on { "-A" } else { "-D" };
        let tools = [(self.ipv4, "iptables"), (self.ipv6, "ip6tables")];
        for (_, tool) in tools.iter().filter(|(enabled, _)| *enabled) {
            host.exec(
                tool,
                [
                    "-w",
                    "-t",
                    "mangle",
                    action,
                    "PREROUTING",
                    "-p",
                    "tcp",
                    "-j",
                    "TCPOPTSTRIP",
                    "--strip-options",
                    "30",
                ],
            )?;
        }
        self.strip.store(on, Ordering::SeqCst);
        tracing::info!(on, netns = %host.name(), "MPTCP option stripping");
        Ok(())
    }

    /// Whether the middlebox is on.
    pub fn strip_mptcp(&self) -> bool {
        self.strip.load(Ordering::SeqCst)
    }

    fn host(&self, role: Role) -> &Host {
        match role {
            Role::Client => &self.client,
            Role::Server => &self.server,
            // Router ends only exist when the router does.
            Role::Router => self.router.as_ref().unwrap_or(&self.server),
        }
    }

    fn families(&self) -> impl Iterator<Item = Family> {
        [(self.ipv4, Family::V4), (self.ipv6, Family::V6)]
            .into_iter()
            .filter_map(|(on, family)| on.then_some(family))
    }

    fn setup(&self) -> Result<(), Error> {
        let router = self.router.is_some();
        for host in [Some(&self.client), Some(&self.server), self.router.as_ref()]
            .into_iter()
            .flatten()
        {
            self.set_host_sysctls(host)?;
        }
        if let Some(host) = &self.router {
            if self.ipv4 {
                host.set_sysctl("net.ipv4.ip_forward", "1")?;
            }
            if self.ipv6 {
                host.set_sysctl("net.ipv6.conf.all.forwarding", "1")?;
            }
        }
        for i in 0..self.paths() {
            for link in path_links(i, router) {
                self.add_link(&link, self.rates[i])?;
            }
            for family in self.families() {
                for (role, rule) in rule_commands(i, router, family) {
                    self.host(role).ip(rule)?;
                }
            }
            self.apply_routes(i)?;
        }
        self.configure_mptcp()?;
        self.wait_links_up(0..self.paths())
    }

    /// Waits until every veth end of the given paths is operational (`state UP`):
    /// the kernel applies a carrier change from its link-watch work, shortly after
    /// `ip link set up` returns, and drops traffic on the interface until then.
    fn wait_links_up(&self, paths: std::ops::Range<usize>) -> Result<(), Error> {
        let router = self.router.is_some();
        let ends: Vec<End> = paths
            .flat_map(|i| path_links(i, router))
            .flat_map(|link| link.ends)
            .collect();
        let deadline = Instant::now() + READY_TIMEOUT;
        for role in [Role::Client, Role::Server, Role::Router] {
            let devs: Vec<&str> = ends
                .iter()
                .filter(|e| e.role == role)
                .map(|e| e.dev.as_str())
                .collect();
            if devs.is_empty() {
                continue;
            }
            let host = self.host(role);
            loop {
                let out = host.ip(["-o", "link", "show", "up"])?;
                let text = String::from_utf8_lossy(&out.stdout);
                if devs.iter().all(|dev| link_is_up(&text, dev)) {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(Error::Unsupported {
                        what: format!(
                            "operational state UP for {} in {} after {READY_TIMEOUT:?}",
                            devs.join(","),
                            host.name()
                        ),
                        hint: "check `ip -n NS link` for the veth state".into(),
                    });
                }
                std::thread::sleep(READY_POLL);
            }
        }
        Ok(())
    }

    fn set_host_sysctls(&self, host: &Host) -> Result<(), Error> {
        host.set_sysctl("net.mptcp.enabled", "1")?;
        // Subflows arrive on one path addressed to another path's address; strict
        // reverse-path filtering would drop them if the host inherited it.
        host.set_sysctl("net.ipv4.conf.all.rp_filter", "0")?;
        host.set_sysctl("net.ipv4.conf.default.rp_filter", "0")?;
        if self.ipv6 {
            for key in ["all", "default"] {
                // No duplicate address detection (link-local addresses too), and
                // addresses that survive a path going down.
                host.set_sysctl(&format!("net.ipv6.conf.{key}.accept_dad"), "0")?;
                host.set_sysctl(&format!("net.ipv6.conf.{key}.keep_addr_on_down"), "1")?;
            }
        }
        Ok(())
    }

    fn add_link(&self, link: &Link, rate_mbit: Option<u32>) -> Result<(), Error> {
        let [a, b] = &link.ends;
        let (host_a, host_b) = (self.host(a.role), self.host(b.role));
        host_a.ip([
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
            host_b.name(),
        ])?;
        for (end, host) in [(a, host_a), (b, host_b)] {
            for family in self.families() {
                let addr = format!("{}/{}", end.addr(family), family.prefix_len());
                let mut cmd = args([family.flag(), "addr", "add", &addr, "dev", &end.dev]);
                if family == Family::V6 {
                    cmd.push("nodad".into());
                }
                host.ip(cmd)?;
            }
            host.ip(["link", "set", "dev", &end.dev, "up"])?;
            if let (true, Some(rate)) = (link.shaped, rate_mbit) {
                host.tc([
                    "qdisc",
                    "replace",
                    "dev",
                    &end.dev,
                    "root",
                    "tbf",
                    "rate",
                    &format!("{rate}mbit"),
                    "burst",
                    &tbf_burst(rate).to_string(),
                    "latency",
                    TBF_LATENCY,
                ])?;
            }
        }
        Ok(())
    }

    fn apply_routes(&self, path: usize) -> Result<(), Error> {
        for family in self.families() {
            for (role, route) in route_commands(path, self.router.is_some(), family) {
                self.host(role).ip(route)?;
            }
        }
        Ok(())
    }

    fn configure_mptcp(&self) -> Result<(), Error> {
        for host in [&self.client, &self.server] {
            host.ip([
                "mptcp",
                "limits",
                "set",
                "subflows",
                MPTCP_LIMIT,
                "add_addr_accepted",
                MPTCP_LIMIT,
            ])?;
        }
        let (role, flag) = match self.endpoints {
            Endpoints::ClientSubflow => (Role::Client, "subflow"),
            Endpoints::ServerSignal => (Role::Server, "signal"),
            Endpoints::None => return Ok(()),
        };
        let host = self.host(role);
        for i in 1..self.paths() {
            let ends = path_ends(i, self.router.is_some());
            let end = if role == Role::Client {
                ends.client
            } else {
                ends.server
            };
            for family in self.families() {
                let addr = end.addr(family).to_string();
                let mut cmd = args(["mptcp", "endpoint", "add", &addr, "dev", &end.dev, flag]);
                if self.backup.contains(&i) {
                    cmd.push("backup".into());
                }
                host.ip(cmd)?;
            }
        }
        Ok(())
    }
}

/// A summary: hosts, paths with their addresses and rates, and how to enter a host.
impl fmt::Display for TestNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let families: Vec<&str> = self
            .families()
            .map(|fam| match fam {
                Family::V4 => "IPv4",
                Family::V6 => "IPv6",
            })
            .collect();
        writeln!(
            f,
            "test network: {} path(s), {}, {}, endpoints {:?}",
            self.paths(),
            families.join("+"),
            if self.router.is_some() {
                "via a router"
            } else {
                "direct veths"
            },
            self.endpoints,
        )?;
        for (label, host) in [
            ("client", Some(&self.client)),
            ("server", Some(&self.server)),
            ("router", self.router.as_ref()),
        ] {
            if let Some(host) = host {
                writeln!(f, "  {label}: netns {}", host.name())?;
            }
        }
        for i in 0..self.paths() {
            let links: Vec<String> = path_links(i, self.router.is_some())
                .iter()
                .map(|link| {
                    let [a, b] = &link.ends;
                    let show = |e: &End| {
                        let addrs: Vec<String> =
                            self.families().map(|fam| e.addr(fam).to_string()).collect();
                        format!("{:?} {} {}", e.role, e.dev, addrs.join(","))
                    };
                    format!("{} <-> {}", show(a), show(b))
                })
                .collect();
            let rate = self
                .path_rate_mbit(i)
                .map_or("unshaped".to_string(), |r| format!("{r} Mbit/s"));
            let backup = if self.backup.contains(&i) {
                ", backup"
            } else {
                ""
            };
            writeln!(f, "  path {i}: {} ({rate}{backup})", links.join(" | "))?;
        }
        write!(
            f,
            "  enter a host with: ip netns exec {} bash",
            self.client.name()
        )
    }
}

#[cfg(test)]
mod tests;
