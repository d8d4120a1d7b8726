//! The daemon's configuration: a role, per-interface rules by name glob, filters,
//! limits. Read from TOML ([`Config::from_toml`]); every mistake is refused with the
//! line it is on and the reason, before anything is touched.
//!
//! ```toml
//! role = "client"                 # "client": subflow endpoints; "server": signal
//! ipv4 = true                     # per address family on/off
//! ipv6 = true
//! require_default_route = true    # an address needs a default route of its family on its link
//! include = ["eth*", "wl*", "wwan*"]   # only these interfaces (empty or absent: all)
//! exclude = ["docker*", "veth*"]  # never these (absent: the built-in list)
//! resync_interval = 30            # seconds (or "30s", "2m") between full resyncs that repair drift
//!
//! [limits]                        # absent: sized to the endpoints
//! subflows = 4
//! add_addr_accepted = 4
//!
//! [filters]                       # true (the default) skips such addresses
//! temporary = true
//!
//! [[interface]]                   # first matching rule wins
//! name = "wwan*"
//! flags = ["subflow", "backup"]   # replaces the role's flags
//! priority = -10                  # lower priority loses first when over 8 endpoints
//! ipv6 = false
//!
//! [server]                        # role "server" behind a layer-4 balancer
//! vip = ["198.18.200.1"]          # the virtual addresses clients connect to
//! join_port = 20001               # unique per backend: the balancer sends VIP:PORT here
//! announce_own = false            # also announce this host's own addresses (default:
//!                                 # false with a vip, as they are private behind balancers)
//! lb_registry = "198.19.0.254:7010"    # publish this host's MPTCP tokens to `mptcp lb`
//! lb_key = "/etc/mptcp/lb.key"    # the shared secret (at least 16 bytes)
//! ```

use std::fmt;
use std::time::Duration;

use mptcp_net::duration::Written;

use mptcp_netlink::{EndpointFlags, MAX_LIMIT};
use serde::Deserialize;
use toml::Spanned;

/// What the host is: it decides the flags endpoints get when no rule says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Opens extra subflows from every address (`subflow`; not `laminar`, see the
    /// crate docs, "Flags").
    #[default]
    Client,
    /// Announces every address to its peers (`signal`).
    Server,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Client => "client",
            Role::Server => "server",
        })
    }
}

/// The interfaces skipped when the configuration has no `exclude` list: container and
/// virtual-machine bridges and their veth ends, which never lead anywhere else
/// (mptcpd gives them endpoints: its issue #175).
pub const DEFAULT_EXCLUDE: &[&str] = &[
    "docker*", "veth*", "br-*", "virbr*", "lxcbr*", "cni*", "flannel*", "cali*", "vnet*",
];

/// How often the daemon re-reads everything even when nothing was announced.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(30);

/// A shell-style interface name pattern (`wwan*`, `wl?0`, `eth[01]`).
#[derive(Clone)]
pub struct Glob {
    text: String,
    matcher: globset::GlobMatcher,
}

impl Glob {
    /// Compiles `text`.
    ///
    /// # Errors
    /// A message saying what is wrong with the pattern.
    pub fn new(text: &str) -> Result<Glob, String> {
        if text.is_empty() {
            return Err("an empty interface pattern matches nothing".into());
        }
        let glob = globset::GlobBuilder::new(text)
            .literal_separator(false)
            .build()
            .map_err(|e| format!("bad interface pattern {text:?}: {}", e.kind()))?;
        Ok(Glob {
            text: text.to_string(),
            matcher: glob.compile_matcher(),
        })
    }

    /// Whether the interface name `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        self.matcher.is_match(name)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.text)
    }
}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl serde::Serialize for Glob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// A per-interface rule: the first rule whose pattern matches an interface's name
/// decides that interface's flags, priority and families.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Rule {
    /// The interface name pattern.
    pub name: Glob,
    /// The endpoint flags, replacing the role's; `None` keeps the role's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flags: Option<EndpointFlags>,
    /// Higher wins when there are more candidate addresses than the kernel's 8
    /// endpoints (default 0).
    pub priority: i32,
    /// IPv4 addresses of these interfaces on or off; `None` follows the global switch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<bool>,
    /// IPv6 addresses on or off; `None` follows the global switch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<bool>,
}

/// Which kinds of addresses are skipped (`true`, the default, skips them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Filters {
    /// 127.0.0.0/8, ::1 and every address of a loopback interface.
    pub loopback: bool,
    /// 169.254.0.0/16 and fe80::/10.
    pub link_local: bool,
    /// IPv6 unique local addresses, fc00::/7.
    pub ula: bool,
    /// IPv6 temporary (privacy) addresses: they change every few hours.
    pub temporary: bool,
    /// Addresses still in duplicate address detection: used once DAD is done.
    pub tentative: bool,
    /// Addresses whose duplicate address detection failed.
    pub dadfailed: bool,
    /// Deprecated addresses (preferred lifetime over): new connections avoid them.
    pub deprecated: bool,
}

impl Default for Filters {
    fn default() -> Self {
        Filters {
            loopback: true,
            link_local: true,
            ula: true,
            temporary: true,
            tentative: true,
            dadfailed: true,
            deprecated: true,
        }
    }
}

/// The limits: sized to the endpoints unless fixed here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct LimitsConfig {
    /// `false` leaves the kernel's limits as they are.
    pub manage: bool,
    /// A fixed `subflows` limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subflows: Option<u32>,
    /// A fixed `add_addr_accepted` limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add_addr_accepted: Option<u32>,
}

/// The whole configuration. [`Config::default`] is what the daemon runs with when no
/// file is given: role client, both families, the default-route rule, the built-in
/// exclude list, every filter on, limits sized to the endpoints.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Config {
    /// The role.
    pub role: Role,
    /// IPv4 addresses on or off.
    pub ipv4: bool,
    /// IPv6 addresses on or off.
    pub ipv6: bool,
    /// NetworkManager's rule: an address gets an endpoint only if its family has a
    /// default route through its interface (in any routing table).
    pub require_default_route: bool,
    /// Only interfaces matching one of these (empty: every interface).
    pub include: Vec<Glob>,
    /// Never interfaces matching one of these.
    pub exclude: Vec<Glob>,
    /// Address filters.
    pub filters: Filters,
    /// Per-interface rules, first match wins.
    pub rules: Vec<Rule>,
    /// Limits.
    pub limits: LimitsConfig,
    /// Time between full resyncs.
    #[serde(serialize_with = "seconds")]
    pub resync_interval: Duration,
    /// The userspace path manager's policies (`mptcp pm run --userspace`).
    pub userspace: UserspaceConfig,
    /// A server behind a layer-4 balancer (the `[server]` table).
    pub server: ServerConfig,
}

/// The `[server]` table: a backend of a fleet behind a layer-4 balancer.
///
/// A balancer hashes every SYN, so a client's joins to the address it first connected
/// to (the VIP) land on a random backend and are reset there. With `vip` set the daemon
/// sets the MP_CAPABLE "C" flag (`net.mptcp.allow_join_initial_addr_port = 0`: "do not
/// join my initial address") and announces what reaches this backend alone: each VIP
/// with this backend's `join_port` (the balancer sends VIP:PORT to this backend; `mptcp
/// lb` keeps that rule), and, with `announce_own`, the host's own addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct ServerConfig {
    /// The virtual addresses this backend serves (held on `lo` in an anycast fleet).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vips: Vec<std::net::IpAddr>,
    /// The port announced with each VIP, unique per backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join_port: Option<u16>,
    /// Announce the host's own addresses too (`signal` endpoints). Default: true
    /// without a VIP (a lone server), false with one (backends' own addresses are
    /// private behind a balancer).
    pub announce_own: bool,
    /// Where `mptcp lb` listens for this backend's token announcements.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lb_registry: Option<std::net::SocketAddr>,
    /// The file holding the registry's shared secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lb_key: Option<std::path::PathBuf>,
}

impl ServerConfig {
    /// Whether this host is a backend behind a balancer (a VIP or a registry is set):
    /// then its own addresses are not announced unless `announce_own`.
    pub fn behind_balancer(&self) -> bool {
        !self.vips.is_empty() || self.lb_registry.is_some()
    }

    /// Whether clients must not join the initial address (the C flag): with a VIP,
    /// whose joins the balancer would hash anew. With token steering alone the
    /// balancer steers joins to the VIP by token, so stock clients keep joining it.
    pub fn deny_join_initial(&self) -> bool {
        !self.vips.is_empty()
    }

    /// Checks the table on its own and against the role.
    ///
    /// # Errors
    /// A one-line reason.
    pub fn check(&self, role: Role) -> Result<(), String> {
        if role != Role::Server && (self.behind_balancer() || self.join_port.is_some()) {
            return Err("[server] settings need role \"server\" (--role server)".into());
        }
        if self.join_port == Some(0) {
            return Err("join_port 0: give the port the balancer sends to this backend".into());
        }
        if self.join_port.is_some() && self.vips.is_empty() {
            return Err("join_port without vip: the port is announced with a VIP".into());
        }
        if self.lb_registry.is_some() != self.lb_key.is_some() {
            return Err("lb_registry and lb_key go together".into());
        }
        for (i, v) in self.vips.iter().enumerate() {
            if v.is_unspecified() || v.is_multicast() || v.is_loopback() {
                return Err(format!("vip {v} cannot be a service address"));
            }
            if self.vips[..i].contains(v) {
                return Err(format!("vip {v} given twice"));
            }
        }
        Ok(())
    }
}

/// A per-connection path policy (Apple's service types, plus `single`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// A subflow from every usable interface, re-created when it closes while its path
    /// is usable and when a path comes back.
    #[default]
    Aggregate,
    /// Traffic on the primary interface; the others hold backup subflows, promoted
    /// when the primary stalls or goes, demoted when it has been healthy for the hold
    /// time.
    Handover,
    /// The lowest-RTT healthy subflow is the only non-backup one (with hysteresis).
    Interactive,
    /// Never adds subflows.
    Single,
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Policy::Aggregate => "aggregate",
            Policy::Handover => "handover",
            Policy::Interactive => "interactive",
            Policy::Single => "single",
        })
    }
}

/// A rule choosing a connection's policy: every condition given must match; the first
/// matching rule wins, else the default policy.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PolicyRule {
    /// The policy.
    pub policy: Policy,
    /// The remote address or prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<ipnet::IpNet>,
    /// The remote port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_port: Option<u16>,
    /// The local port (a server's listening port).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_port: Option<u16>,
    /// For `handover`: the primary interface (glob); default: the interface of the
    /// connection's first subflow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<Glob>,
}

impl PolicyRule {
    /// Whether a connection from `local` to `remote` matches.
    pub fn matches(&self, local: std::net::SocketAddr, remote: std::net::SocketAddr) -> bool {
        self.remote.is_none_or(|n| n.contains(&remote.ip()))
            && self.remote_port.is_none_or(|p| p == remote.port())
            && self.local_port.is_none_or(|p| p == local.port())
    }
}

/// The `[userspace]` table.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UserspaceConfig {
    /// The policy of connections no rule matches.
    pub default_policy: Policy,
    /// The rules, first match wins.
    pub rules: Vec<PolicyRule>,
    /// `handover`: how long the primary must be healthy before traffic moves back.
    #[serde(serialize_with = "seconds")]
    pub hold_time: Duration,
}

impl Default for UserspaceConfig {
    fn default() -> Self {
        UserspaceConfig {
            default_policy: Policy::Aggregate,
            rules: Vec::new(),
            hold_time: Duration::from_secs(2),
        }
    }
}

impl UserspaceConfig {
    /// The policy (and the rule that chose it) for a connection.
    pub fn choose(
        &self,
        local: std::net::SocketAddr,
        remote: std::net::SocketAddr,
    ) -> (Policy, Option<&PolicyRule>) {
        match self.rules.iter().find(|r| r.matches(local, remote)) {
            Some(r) => (r.policy, Some(r)),
            None => (self.default_policy, None),
        }
    }
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Default for Config {
    fn default() -> Self {
        Config {
            role: Role::Client,
            ipv4: true,
            ipv6: true,
            require_default_route: true,
            include: Vec::new(),
            exclude: DEFAULT_EXCLUDE
                .iter()
                .map(|g| Glob::new(g).expect("the built-in patterns compile"))
                .collect(),
            filters: Filters::default(),
            rules: Vec::new(),
            limits: LimitsConfig {
                manage: true,
                ..LimitsConfig::default()
            },
            resync_interval: DEFAULT_RESYNC,
            userspace: UserspaceConfig::default(),
            server: ServerConfig {
                announce_own: true,
                ..ServerConfig::default()
            },
        }
    }
}

/// A configuration the daemon refuses: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    /// The file (or `<config>`).
    pub source_name: String,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    role: Option<Role>,
    ipv4: Option<bool>,
    ipv6: Option<bool>,
    require_default_route: Option<bool>,
    include: Option<Vec<Spanned<String>>>,
    exclude: Option<Vec<Spanned<String>>>,
    resync_interval: Option<Spanned<Written>>,
    filters: Option<Filters>,
    limits: Option<RawLimits>,
    #[serde(default)]
    interface: Vec<RawRule>,
    userspace: Option<RawUserspace>,
    server: Option<Spanned<RawServer>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    #[serde(default)]
    vip: Vec<Spanned<String>>,
    join_port: Option<u16>,
    announce_own: Option<bool>,
    lb_registry: Option<Spanned<String>>,
    lb_key: Option<std::path::PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUserspace {
    default_policy: Option<Policy>,
    hold_time: Option<Spanned<Written>>,
    #[serde(default)]
    rule: Vec<RawPolicyRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicyRule {
    policy: Policy,
    remote: Option<Spanned<String>>,
    remote_port: Option<u16>,
    local_port: Option<u16>,
    primary: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    manage: Option<bool>,
    subflows: Option<Spanned<u32>>,
    add_addr_accepted: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Spanned<String>,
    flags: Option<Spanned<Vec<String>>>,
    priority: Option<i32>,
    ipv4: Option<bool>,
    ipv6: Option<bool>,
}

impl Config {
    /// Parses and checks a TOML configuration. `source_name` (a file name) prefixes
    /// the error messages.
    ///
    /// # Errors
    /// [`ConfigError`] for bad TOML, an unknown key, a bad pattern, an unknown flag,
    /// flags that cannot go together (`signal` with `fullmesh`, `implicit`), limits
    /// above 8, a resync interval outside 1 s to 1 day.
    ///
    /// ```
    /// use mptcp_pm::{Config, Role};
    ///
    /// let c = Config::from_toml("role = \"server\"\n[[interface]]\nname = \"wwan*\"\nflags = [\"signal\", \"backup\"]\n", "pm.toml")?;
    /// assert_eq!(c.role, Role::Server);
    /// let err = Config::from_toml("[[interface]]\nname = \"eth*\"\nflags = [\"signal\", \"fullmesh\"]\n", "pm.toml").unwrap_err();
    /// assert_eq!(err.to_string(), "pm.toml:3: signal and fullmesh cannot go together (the kernel refuses it)");
    /// # Ok::<(), mptcp_pm::ConfigError>(())
    /// ```
    pub fn from_toml(text: &str, source_name: &str) -> Result<Config, ConfigError> {
        let err = |span: Option<std::ops::Range<usize>>, message: String| ConfigError {
            source_name: source_name.to_string(),
            line: span.map(|s| line_of(text, s.start)),
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            // toml's own message carries a caret drawing over several lines: keep the
            // first sentence, the line comes from the span.
            err(e.span(), e.message().trim().replace('\n', " "))
        })?;
        let globs = |list: Vec<Spanned<String>>| -> Result<Vec<Glob>, ConfigError> {
            list.into_iter()
                .map(|g| Glob::new(g.get_ref()).map_err(|m| err(Some(g.span()), m)))
                .collect()
        };
        let mut config = Config::default();
        if let Some(role) = raw.role {
            config.role = role;
        }
        config.ipv4 = raw.ipv4.unwrap_or(true);
        config.ipv6 = raw.ipv6.unwrap_or(true);
        config.require_default_route = raw.require_default_route.unwrap_or(true);
        if let Some(include) = raw.include {
            config.include = globs(include)?;
        }
        if let Some(exclude) = raw.exclude {
            config.exclude = globs(exclude)?;
        }
        if let Some(filters) = raw.filters {
            config.filters = filters;
        }
        if let Some(v) = raw.resync_interval {
            config.resync_interval = v
                .get_ref()
                .within(Duration::from_secs(1), Duration::from_secs(86_400))
                .map_err(|e| {
                    err(
                        Some(v.span()),
                        format!("resync_interval {e}: it is between 1 s and a day"),
                    )
                })?;
        }
        if let Some(limits) = raw.limits {
            config.limits.manage = limits.manage.unwrap_or(true);
            for (name, value, slot) in [
                ("subflows", limits.subflows, &mut config.limits.subflows),
                (
                    "add_addr_accepted",
                    limits.add_addr_accepted,
                    &mut config.limits.add_addr_accepted,
                ),
            ] {
                if let Some(v) = value {
                    if *v.get_ref() > MAX_LIMIT {
                        return Err(err(
                            Some(v.span()),
                            format!(
                                "limit {name} {} is above the kernel's maximum of {MAX_LIMIT}",
                                v.get_ref()
                            ),
                        ));
                    }
                    *slot = Some(*v.get_ref());
                }
            }
        }
        for rule in raw.interface {
            let name =
                Glob::new(rule.name.get_ref()).map_err(|m| err(Some(rule.name.span()), m))?;
            let flags = match rule.flags {
                None => None,
                Some(list) => {
                    Some(parse_flags(list.get_ref()).map_err(|m| err(Some(list.span()), m))?)
                }
            };
            config.rules.push(Rule {
                name,
                flags,
                priority: rule.priority.unwrap_or(0),
                ipv4: rule.ipv4,
                ipv6: rule.ipv6,
            });
        }
        if let Some(us) = raw.userspace {
            if let Some(p) = us.default_policy {
                config.userspace.default_policy = p;
            }
            if let Some(h) = us.hold_time {
                config.userspace.hold_time = h
                    .get_ref()
                    .within(Duration::ZERO, Duration::from_secs(3600))
                    .map_err(|e| {
                        err(
                            Some(h.span()),
                            format!("hold_time {e}: it is between 0 and an hour"),
                        )
                    })?;
            }
            for r in us.rule {
                let remote = match r.remote {
                    None => None,
                    Some(text) => {
                        Some(parse_prefix(text.get_ref()).map_err(|m| err(Some(text.span()), m))?)
                    }
                };
                let primary = match r.primary {
                    None => None,
                    Some(g) => Some(Glob::new(g.get_ref()).map_err(|m| err(Some(g.span()), m))?),
                };
                config.userspace.rules.push(PolicyRule {
                    policy: r.policy,
                    remote,
                    remote_port: r.remote_port,
                    local_port: r.local_port,
                    primary,
                });
            }
        }
        if let Some(server) = raw.server {
            // A `[server]` table makes the role server unless the file says otherwise.
            if raw.role.is_none() {
                config.role = Role::Server;
            }
            let span = server.span();
            let server = server.into_inner();
            for v in server.vip {
                let ip = v.get_ref().parse().map_err(|_| {
                    err(
                        Some(v.span()),
                        format!("vip {:?} is not an IP address", v.get_ref()),
                    )
                })?;
                config.server.vips.push(ip);
            }
            if let Some(r) = server.lb_registry {
                let addr = r.get_ref().parse().map_err(|_| {
                    err(
                        Some(r.span()),
                        format!("lb_registry {:?} is not ADDR:PORT", r.get_ref()),
                    )
                })?;
                config.server.lb_registry = Some(addr);
            }
            config.server.join_port = server.join_port;
            config.server.lb_key = server.lb_key;
            config.server.announce_own =
                server.announce_own.unwrap_or(config.server.vips.is_empty());
            config
                .server
                .check(config.role)
                .map_err(|m| err(Some(span), m))?;
        }
        Ok(config)
    }

    /// Reads and parses a configuration file.
    ///
    /// # Errors
    /// [`ConfigError`] when the file cannot be read or is refused.
    pub fn from_file(path: &std::path::Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source_name: name.clone(),
            line: None,
            message: format!("cannot read the configuration: {e}"),
        })?;
        Config::from_toml(&text, &name)
    }

    /// The first rule matching the interface `name`.
    pub fn rule_for(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name.matches(name))
    }
}

/// Flag names as `ip mptcp` spells them, checked for what the kernel refuses.
fn parse_flags(names: &[String]) -> Result<EndpointFlags, String> {
    let mut flags = EndpointFlags::empty();
    for name in names {
        let unknown = || {
            format!(
                "unknown endpoint flag {name:?} (use subflow, signal, backup, fullmesh, laminar)"
            )
        };
        // Names only: the flag parser also takes hexadecimal bits, which a config
        // should not smuggle in.
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(unknown());
        }
        let f: EndpointFlags = name.parse().map_err(|_| unknown())?;
        if f.contains(EndpointFlags::IMPLICIT) {
            return Err("implicit is set by the kernel, never by a path manager".into());
        }
        flags |= f;
    }
    if flags.contains(EndpointFlags::SIGNAL | EndpointFlags::FULLMESH) {
        return Err("signal and fullmesh cannot go together (the kernel refuses it)".into());
    }
    if flags.contains(EndpointFlags::FULLMESH) && !flags.contains(EndpointFlags::SUBFLOW) {
        return Err("fullmesh needs subflow".into());
    }
    if !flags.intersects(EndpointFlags::SIGNAL | EndpointFlags::SUBFLOW | EndpointFlags::LAMINAR) {
        return Err(
            "the flags give the kernel nothing to do: add subflow, signal or laminar".into(),
        );
    }
    Ok(flags)
}

/// An address (a /32 or /128) or a prefix such as `198.18.0.0/15`.
fn parse_prefix(text: &str) -> Result<ipnet::IpNet, String> {
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Ok(ipnet::IpNet::from(ip));
    }
    let net: ipnet::IpNet = text
        .parse()
        .map_err(|_| format!("{text:?} is not an address or a prefix such as 198.18.0.0/15"))?;
    if net.trunc() != net {
        return Err(format!(
            "{text:?} has host bits set: did you mean {}?",
            net.trunc()
        ));
    }
    Ok(net)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> String {
        Config::from_toml(text, "f.toml").unwrap_err().to_string()
    }

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(Config::from_toml("", "f").unwrap(), Config::default());
    }

    #[test]
    fn full_file() {
        let c = Config::from_toml(
            r#"
role = "server"
ipv6 = false
require_default_route = false
include = ["eth*", "wl?0"]
exclude = []
resync_interval = 2.5
[limits]
subflows = 3
[filters]
ula = false
[[interface]]
name = "wwan*"
flags = ["signal", "backup"]
priority = -1
ipv4 = false
[[interface]]
name = "eth[01]"
"#,
            "f",
        )
        .unwrap();
        assert_eq!(c.role, Role::Server);
        assert!(c.ipv4 && !c.ipv6 && !c.require_default_route);
        assert!(c.include[1].matches("wlp0") && !c.include[1].matches("wlan10"));
        assert!(c.exclude.is_empty());
        assert_eq!(c.resync_interval, Duration::from_millis(2500));
        assert_eq!(c.limits.subflows, Some(3));
        assert_eq!(c.limits.add_addr_accepted, None);
        assert!(c.limits.manage);
        assert!(!c.filters.ula && c.filters.temporary);
        let r = c.rule_for("wwan0").unwrap();
        assert_eq!(r.flags, Some(EndpointFlags::SIGNAL | EndpointFlags::BACKUP));
        assert_eq!((r.priority, r.ipv4, r.ipv6), (-1, Some(false), None));
        assert_eq!(c.rule_for("eth1").unwrap().flags, None);
        assert!(c.rule_for("eth2").is_none());
    }

    #[test]
    fn mistakes_name_their_line() {
        assert_eq!(
            refused("role = \"client\"\nbogus = 1\n"),
            "f.toml:2: unknown field `bogus`, expected one of `role`, `ipv4`, `ipv6`, \
             `require_default_route`, `include`, `exclude`, `resync_interval`, `filters`, \
             `limits`, `interface`, `userspace`, `server`"
        );
        assert_eq!(
            refused("\n\ninclude = [\"eth*\", \"wl[\"]\n"),
            "f.toml:3: bad interface pattern \"wl[\": unclosed character class; missing ']'"
        );
        assert_eq!(
            refused("[[interface]]\nname = \"x\"\nflags = [\"subflow\", \"bogus\"]\n"),
            "f.toml:3: unknown endpoint flag \"bogus\" (use subflow, signal, backup, fullmesh, laminar)"
        );
        assert_eq!(
            refused("[[interface]]\nname = \"x\"\nflags = [\"signal\", \"fullmesh\"]\n"),
            "f.toml:3: signal and fullmesh cannot go together (the kernel refuses it)"
        );
        assert!(refused("[[interface]]\nname = \"x\"\nflags = [\"implicit\"]").contains(":3:"));
        assert!(
            refused("[[interface]]\nname = \"x\"\nflags = [\"backup\"]").contains("nothing to do")
        );
        assert!(
            refused("[[interface]]\nname = \"x\"\nflags = [\"fullmesh\"]")
                .contains("needs subflow")
        );
        assert_eq!(
            refused("[limits]\nsubflows = 9\n"),
            "f.toml:2: limit subflows 9 is above the kernel's maximum of 8"
        );
        assert!(refused("role = \"router\"").starts_with("f.toml:1: unknown variant `router`"));
        assert!(refused("[[interface]]\nflags = [\"subflow\"]").contains("missing field `name`"));
        let c = Config::from_toml("resync_interval = \"1m 30s\"", "f").unwrap();
        assert_eq!(c.resync_interval, Duration::from_secs(90));
        assert!(refused("resync_interval = 0").contains("resync_interval `0` is shorter than 1s"));
        assert!(refused("resync_interval = \"2d\"").contains("`2d` is longer than 1day"));
        assert!(refused("resync_interval = \"soon\"").contains("`soon` is not a duration"));
        assert!(refused("resync_interval = -1").contains("`-1` is not a duration"));
        assert!(refused("[userspace]\nhold_time = 3601").contains("`3601` is longer than 1h"));
        assert!(refused("[filters]\nbogus = true").starts_with("f.toml:2: unknown field"));
        assert!(refused("ipv4 = \"yes\"").starts_with("f.toml:1:"));
        assert!(refused("[[interface]]\nname = \"\"").contains("empty"));
        assert!(refused("include = [").starts_with("f.toml:1:"));
    }

    #[test]
    fn userspace_rules() {
        let c = Config::from_toml(
            r#"
[userspace]
default_policy = "single"
hold_time = 1.5
[[userspace.rule]]
policy = "interactive"
remote_port = 22
[[userspace.rule]]
policy = "handover"
remote = "198.18.0.0/16"
local_port = 8080
primary = "wl*"
[[userspace.rule]]
policy = "aggregate"
remote = "2001:db8::1"
"#,
            "f",
        )
        .unwrap();
        let u = &c.userspace;
        assert_eq!(u.hold_time, Duration::from_millis(1500));
        let sa = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        assert_eq!(
            u.choose(sa("198.18.0.1:5000"), sa("203.0.113.1:22")).0,
            Policy::Interactive
        );
        let (p, r) = u.choose(sa("198.18.0.1:8080"), sa("198.18.9.9:5000"));
        assert_eq!(p, Policy::Handover);
        assert!(r.unwrap().primary.as_ref().unwrap().matches("wlan0"));
        assert_eq!(
            u.choose(sa("198.18.0.1:8081"), sa("198.18.9.9:5000")).0,
            Policy::Single
        );
        assert_eq!(
            u.choose(sa("[2001:db8::2]:1"), sa("[2001:db8::1]:443")).0,
            Policy::Aggregate
        );
        assert_eq!(refused("[userspace]\n[[userspace.rule]]\npolicy = \"fast\""), "f.toml:3: unknown variant `fast`, expected one of `aggregate`, `handover`, `interactive`, `single`");
        assert_eq!(
            refused(
                "[userspace]\n[[userspace.rule]]\npolicy = \"single\"\nremote = \"198.18.0.1/16\""
            ),
            "f.toml:4: \"198.18.0.1/16\" has host bits set: did you mean 198.18.0.0/16?"
        );
        assert!(refused("[userspace]\nbogus = 1").starts_with("f.toml:2: unknown field `bogus`"));
        assert!(
            refused("[userspace]\n[[userspace.rule]]\npolicy = \"single\"\nremote = \"x\"")
                .contains("not an address or a prefix")
        );
    }

    #[test]
    fn default_excludes_compile() {
        let c = Config::default();
        assert!(c.exclude.iter().any(|g| g.matches("docker0")));
        assert!(!c.exclude.iter().any(|g| g.matches("eth0")));
    }

    #[test]
    fn server_table() {
        let c = Config::from_toml(
            "[server]\nvip = [\"198.18.200.1\", \"2001:db8:200::1\"]\njoin_port = 20001\n\
             lb_registry = \"198.19.0.254:7010\"\nlb_key = \"/etc/mptcp/lb.key\"\n",
            "f.toml",
        )
        .unwrap();
        assert_eq!(c.role, Role::Server, "a [server] table implies the role");
        assert_eq!(c.server.vips.len(), 2);
        assert_eq!(c.server.join_port, Some(20001));
        assert!(
            !c.server.announce_own,
            "own addresses are private behind a balancer"
        );
        assert!(c.server.behind_balancer());
        assert!(Config::default().server.announce_own);
    }

    #[test]
    fn bad_server_tables() {
        assert_eq!(
            refused("[server]\nvip = [\"not-an-ip\"]\n"),
            "f.toml:2: vip \"not-an-ip\" is not an IP address"
        );
        assert!(
            refused("role = \"client\"\n[server]\nvip = [\"198.18.200.1\"]\n")
                .contains("need role \"server\"")
        );
        assert!(refused("[server]\njoin_port = 20001\n").contains("join_port without vip"));
        assert!(
            refused("[server]\nvip = [\"198.18.200.1\"]\njoin_port = 0\n").contains("join_port 0")
        );
        assert!(
            refused("[server]\nvip = [\"198.18.200.1\", \"198.18.200.1\"]\n")
                .contains("given twice")
        );
        assert!(refused("[server]\nlb_registry = \"198.19.0.254:7010\"\n").contains("go together"));
        assert!(
            refused("[server]\nlb_registry = \"198.19.0.254\"\nlb_key = \"k\"\n")
                .contains("ADDR:PORT")
        );
        assert!(refused("[server]\nvip = [\"0.0.0.0\"]\n").contains("cannot be a service address"));
    }
}
