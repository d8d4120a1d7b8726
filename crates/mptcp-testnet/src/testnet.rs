//! The multipath test network: a client and a server namespace (and optionally a
//! router between them) joined by 1 to 8 veth paths, with MPTCP endpoints and limits.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::{preflight, Error, Netns};

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
/// Policy routing: path `i` uses table `100 + i`, with a rule at priority `1000 + i`.
const TABLE_BASE: usize = 100;
const RULE_PRIORITY_BASE: usize = 1000;
/// The tbf queue holds this much traffic at the path's rate before it drops.
pub(crate) const TBF_LATENCY: &str = "50ms";
/// The smallest tbf bucket: one 64 KiB GSO/TSO packet plus its per-segment headers,
/// so tbf passes it whole instead of splitting it.
const TBF_MIN_BURST: u64 = 96 * 1024;

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
enum Role {
    Client,
    Server,
    Router,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn flag(self) -> &'static str {
        match self {
            Family::V4 => "-4",
            Family::V6 => "-6",
        }
    }

    fn prefix_len(self) -> u8 {
        match self {
            Family::V4 => 24,
            Family::V6 => 64,
        }
    }
}

/// One end of a veth pair: the host it is in, its name there, its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
struct End {
    role: Role,
    dev: String,
    /// The interface index, distinct from the peer's: see [`path_ends`].
    index: u32,
    v4: Ipv4Addr,
    v6: Ipv6Addr,
}

impl End {
    fn new(role: Role, name: &str, index_base: u32, subnet: u8, path: usize, host: u8) -> End {
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

    fn addr(&self, family: Family) -> IpAddr {
        match family {
            Family::V4 => self.v4.into(),
            Family::V6 => self.v6.into(),
        }
    }

    /// The connected subnet of this end, e.g. `198.18.1.0/24`.
    fn subnet(&self, family: Family) -> String {
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
struct Link {
    ends: [End; 2],
    shaped: bool,
}

/// The client's end, the server's end and (with a router) the router's two ends of a
/// path, following the address plan in the crate docs.
struct PathEnds {
    client: End,
    server: End,
    /// The router's client-facing and server-facing ends.
    router: Option<(End, End)>,
}

///
/// Each end gets its own interface index (client 100+i, router 200+i and 300+i,
/// server 400+i). In fresh namespaces both ends of a veth would otherwise get the
/// same index, and the kernel's link watch then treats the carrier change as not
/// urgent and applies it up to a second later: until then the interface is not
/// operational and IPv6 neighbour discovery stalls the first connection for a
/// second.
fn path_ends(i: usize, router: bool) -> PathEnds {
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
fn path_links(i: usize, router: bool) -> Vec<Link> {
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
fn rule_commands(i: usize, router: bool, family: Family) -> Vec<(Role, Vec<String>)> {
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
fn route_commands(i: usize, router: bool, family: Family) -> Vec<(Role, Vec<String>)> {
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

fn args<const N: usize>(items: [&str; N]) -> Vec<String> {
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

/// Builds a [`TestNet`]; get one from [`TestNet::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until .build() is called"]
pub struct TestNetBuilder {
    paths: usize,
    rate_mbit: Option<u32>,
    path_rates: Vec<(usize, u32)>,
    ipv4: bool,
    ipv6: bool,
    router: bool,
    endpoints: Endpoints,
    backup: Vec<usize>,
}

impl Default for TestNetBuilder {
    fn default() -> Self {
        TestNetBuilder {
            paths: 2,
            rate_mbit: None,
            path_rates: Vec::new(),
            ipv4: true,
            ipv6: false,
            router: false,
            endpoints: Endpoints::default(),
            backup: Vec::new(),
        }
    }
}

impl TestNetBuilder {
    /// Number of paths, 1 to [`MAX_PATHS`] (default 2).
    pub fn paths(mut self, n: usize) -> Self {
        self.paths = n;
        self
    }

    /// Shapes every path to `mbit` Mbit/s in each direction (default: unshaped).
    pub fn rate_mbit(mut self, mbit: u32) -> Self {
        self.rate_mbit = Some(mbit);
        self
    }

    /// Shapes path `path` to `mbit` Mbit/s, overriding [`rate_mbit`](Self::rate_mbit).
    pub fn path_rate_mbit(mut self, path: usize, mbit: u32) -> Self {
        self.path_rates.push((path, mbit));
        self
    }

    /// IPv4 addresses on the paths (default on).
    pub fn ipv4(mut self, on: bool) -> Self {
        self.ipv4 = on;
        self
    }

    /// IPv6 addresses on the paths (default off). They are added with `nodad`, so they
    /// are usable at once.
    pub fn ipv6(mut self, on: bool) -> Self {
        self.ipv6 = on;
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
        if !(1..=MAX_PATHS).contains(&self.paths) {
            return invalid(format!(
                "{} paths requested; a test network has 1 to {MAX_PATHS}",
                self.paths
            ));
        }
        if !self.ipv4 && !self.ipv6 {
            return invalid("neither IPv4 nor IPv6 enabled".into());
        }
        let mut rates = vec![self.rate_mbit; self.paths];
        for &(path, mbit) in &self.path_rates {
            match rates.get_mut(path) {
                Some(rate) => *rate = Some(mbit),
                None => {
                    return invalid(format!(
                        "rate for path {path}, but there are only {} paths",
                        self.paths
                    ))
                }
            }
        }
        if rates.contains(&Some(0)) {
            return invalid("a rate of 0 Mbit/s; leave the rate unset for an unshaped path".into());
        }
        let families = usize::from(self.ipv4) + usize::from(self.ipv6);
        let endpoints = (self.paths - 1) * families;
        if self.endpoints != Endpoints::None && endpoints > MAX_ENDPOINTS {
            return invalid(format!(
                "{} paths with {families} address families need {endpoints} MPTCP endpoints; \
                 the kernel allows {MAX_ENDPOINTS} per namespace (use fewer paths, one family, \
                 or Endpoints::None)",
                self.paths
            ));
        }
        for &path in &self.backup {
            if path == 0 || path >= self.paths {
                return invalid(format!(
                    "backup path {path}: only paths 1..{} have endpoints (path 0 carries the initial subflow)",
                    self.paths
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
            let ends: Vec<End> = (0..self.paths)
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
                v4: if self.ipv4 {
                    ends.iter().map(|e| e.v4).collect()
                } else {
                    Vec::new()
                },
                v6: if self.ipv6 {
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
            ipv4: self.ipv4,
            ipv6: self.ipv6,
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
mod tests {
    use super::*;

    fn line(cmd: &(Role, Vec<String>)) -> String {
        format!("{:?}: {}", cmd.0, cmd.1.join(" "))
    }

    #[test]
    fn address_plan_without_router() {
        let links = path_links(3, false);
        assert_eq!(links.len(), 1);
        let [c, s] = &links[0].ends;
        assert_eq!((c.dev.as_str(), c.v4), ("p3", Ipv4Addr::new(198, 18, 3, 1)));
        assert_eq!((s.dev.as_str(), s.v4), ("p3", Ipv4Addr::new(198, 18, 3, 2)));
        assert_eq!(c.v6, "2001:db8:3::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(s.v6, "2001:db8:3::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(c.subnet(Family::V4), "198.18.3.0/24");
        assert_eq!(c.subnet(Family::V6), "2001:db8:3::/64");
        assert!(links[0].shaped);
    }

    #[test]
    fn address_plan_with_router() {
        let ends = path_ends(7, true);
        let (rc, rs) = ends.router.unwrap();
        assert_eq!(ends.client.v4, Ipv4Addr::new(198, 18, 7, 1));
        assert_eq!(
            (rc.dev.as_str(), rc.v4),
            ("c7", Ipv4Addr::new(198, 18, 7, 254))
        );
        assert_eq!(
            (rs.dev.as_str(), rs.v4),
            ("s7", Ipv4Addr::new(198, 19, 7, 254))
        );
        assert_eq!(ends.server.v4, Ipv4Addr::new(198, 19, 7, 2));
        assert_eq!(rc.v6, "2001:db8:7::fe".parse::<Ipv6Addr>().unwrap());
        assert_eq!(rs.v6, "2001:db8:17::fe".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            ends.server.v6,
            "2001:db8:17::2".parse::<Ipv6Addr>().unwrap()
        );
        let shaped: Vec<bool> = path_links(7, true).iter().map(|l| l.shaped).collect();
        assert_eq!(
            shaped,
            [false, true],
            "only the router-server link is shaped"
        );
    }

    #[test]
    fn routing_without_router() {
        let rules: Vec<String> = rule_commands(1, false, Family::V4)
            .iter()
            .map(line)
            .collect();
        assert_eq!(
            rules,
            ["Client: -4 rule add from 198.18.1.1 table 101 priority 1001"]
        );
        let routes: Vec<String> = route_commands(1, false, Family::V6)
            .iter()
            .map(line)
            .collect();
        assert_eq!(
            routes,
            ["Client: -6 route replace default via 2001:db8:1::2 dev p1 table 101"]
        );
    }

    #[test]
    fn routing_with_router() {
        let rules: Vec<String> = rule_commands(0, true, Family::V4)
            .iter()
            .map(line)
            .collect();
        assert_eq!(
            rules,
            [
                "Client: -4 rule add from 198.18.0.1 table 100 priority 1000",
                "Router: -4 rule add iif c0 table 100 priority 1000",
            ]
        );
        let routes: Vec<String> = route_commands(2, true, Family::V4)
            .iter()
            .map(line)
            .collect();
        assert_eq!(
            routes,
            [
                "Client: -4 route replace default via 198.18.2.254 dev p2 table 102",
                "Client: -4 route replace 198.19.2.0/24 via 198.18.2.254 dev p2",
                "Server: -4 route replace 198.18.2.0/24 via 198.19.2.254 dev p2",
                "Router: -4 route replace default via 198.19.2.2 dev s2 table 102",
            ]
        );
    }

    #[test]
    fn operational_state_from_ip_link() {
        let text =
            "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT\n\
                    2: p0@if400: <BROADCAST,UP,LOWER_UP> mtu 1500 qdisc tbf state UP mode DEFAULT\n\
                    3: p1@if401: <NO-CARRIER,UP> mtu 1500 qdisc noqueue state DOWN mode DEFAULT\n";
        assert!(link_is_up(text, "p0"));
        assert!(!link_is_up(text, "p1"));
        assert!(!link_is_up(text, "p"));
        assert!(!link_is_up(text, "lo"));
    }

    #[test]
    fn burst_fits_a_gso_packet() {
        assert_eq!(tbf_burst(1), TBF_MIN_BURST);
        assert_eq!(tbf_burst(20), TBF_MIN_BURST);
        assert_eq!(tbf_burst(10_000), 5_000_000);
        assert!(tbf_burst(u32::MAX) > TBF_MIN_BURST);
    }

    #[test]
    fn builder_validates_before_touching_anything() {
        let bad = [
            TestNet::builder().paths(0),
            TestNet::builder().paths(9),
            TestNet::builder().ipv4(false),
            TestNet::builder().paths(2).path_rate_mbit(2, 10),
            TestNet::builder().rate_mbit(0),
            TestNet::builder().backup_path(0),
            TestNet::builder().paths(2).backup_path(2),
            TestNet::builder().paths(6).ipv6(true),
            TestNet::builder().endpoints(Endpoints::None).backup_path(1),
        ];
        for builder in bad {
            let result = builder.clone().build();
            assert!(
                matches!(result, Err(Error::InvalidConfig(_))),
                "{builder:?} gave {result:?}"
            );
        }
        let rates = TestNet::builder()
            .paths(3)
            .rate_mbit(10)
            .path_rate_mbit(1, 30)
            .validate()
            .unwrap();
        assert_eq!(rates, [Some(10), Some(30), Some(10)]);
        assert_eq!(
            TestNet::builder().paths(1).validate().unwrap(),
            [None],
            "unshaped by default"
        );
    }
}
