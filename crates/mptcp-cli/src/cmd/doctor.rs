//! `mptcp doctor [--target HOST:PORT]`: a checklist that says why connections use one
//! path, and what to do about it.
//!
//! The work is split in two: [`gather`] asks the kernel (through `mptcp_net` and
//! `mptcp_netlink`) and the host's interfaces, once each, into [`Facts`]; [`checks`]
//! turns the facts into [`Check`] lines and is pure, so its judgement is unit-tested
//! without a kernel. A fact that could not be read makes its lines `unknown`
//! (exit status 2 when nothing else is wrong).
//!
//! Decisions where the issue is silent:
//! - "Several usable addresses" counts *interfaces* that are up and carry a
//!   non-loopback, non-link-local address: two addresses on one interface, or the
//!   IPv4 and IPv6 address of one NIC, are one path, not two.
//! - `path_manager = userspace` is a warning: a daemon may well be doing the work,
//!   but nothing here can see it, and without one there is only one subflow.
//! - `add_addr_accepted = 0` alone is fine (it is the kernel's default and right for
//!   clients with subflow endpoints); it becomes a warning when a `--target` peer
//!   announced addresses that were therefore ignored.
//! - Fallback counters are per namespace and count since boot: any non-zero one is a
//!   warning, with what each counter means.
//! - With `--target`, two bytes (CRLF) are sent: extra subflows only come after the
//!   first data exchange. The subflows are watched for `--wait` seconds, less if their
//!   count has been at least 2 and unchanged for half a second.
//!
//! JSON: `{"verdict", "exit_code", "checks": [{"id", "status", "what", "detail",
//! "fix"}], "target": null | {...}}`, see [`Report`] and [`TargetJson`].

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use mptcp_net::{Dialer, MptcpExt, MptcpStatus, Support, Unavailable};
use mptcp_netlink::{
    sysctl, Counters, Endpoint, EndpointFlags, Event, EventKind, Events, Limits, PathManager,
};
use serde::Serialize;

use crate::cli::DoctorArgs;
use crate::error::{Error, EXIT_ERROR, EXIT_OK, EXIT_PROBLEMS};
use crate::output::{self, Output, BAD, DIM, GOOD, WARN};

/// How often the target connection's subflows are looked at.
const POLL: Duration = Duration::from_millis(50);
/// A subflow count of 2 or more that has not changed for this long is final.
const SETTLED: Duration = Duration::from_millis(500);
/// The most events read while watching the target (other connections' included).
const MAX_EVENTS: usize = 10_000;

/// The fallback counters, and what a non-zero value means.
const FALLBACK_COUNTERS: &[(&str, &str)] = &[
    (
        "MPCapableFallbackSYNACK",
        "a peer answered without MP_CAPABLE (no MPTCP there)",
    ),
    (
        "MPCapableFallbackACK",
        "a client's ACK came without MP_CAPABLE (a middlebox?)",
    ),
    (
        "MPCapableDataFallback",
        "first data without an MPTCP mapping",
    ),
    ("DSSCorruptionFallback", "a payload was changed on the way"),
    ("DssFallback", "data without DSS option"),
    ("MPFallbackTokenInit", "no token could be allocated"),
    ("MD5SigFallback", "TCP_MD5SIG in use"),
    ("SimultConnectFallback", "simultaneous connect"),
    (
        "FallbackFailed",
        "a fallback that had to reset the connection",
    ),
];

/// What a line found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, but not as multipath as it could.
    Warn,
    /// Broken.
    Fail,
    /// Could not be checked.
    Unknown,
}

/// One line of the checklist.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// A stable identifier: `mptcp_socket`, `enabled`, `path_manager`, `scheduler`,
    /// `checksum`, `blackhole`, `limits`, `endpoints`, `fallback`, `target_connect`,
    /// `target_subflows`, `target_announced`.
    pub id: &'static str,
    /// ok, warn, fail or unknown.
    pub status: Status,
    /// What was checked, for people.
    pub what: &'static str,
    /// What was found.
    pub detail: String,
    /// What to do, for warn and fail (sometimes for unknown).
    pub fix: Option<String>,
}

impl Check {
    fn new(id: &'static str, what: &'static str, status: Status, detail: String) -> Check {
        Check {
            id,
            status,
            what,
            detail,
            fix: None,
        }
    }

    fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }
}

/// An address of one of this host's interfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddr {
    /// The interface's name.
    pub interface: String,
    /// The address.
    pub ip: IpAddr,
    /// The interface is up.
    pub up: bool,
    /// The interface is a loopback.
    pub loopback: bool,
}

impl HostAddr {
    /// An address a subflow could use: on an interface that is up, not loopback, not
    /// link-local, unicast.
    pub fn usable(&self) -> bool {
        let ip_ok = match self.ip {
            IpAddr::V4(v4) => {
                !(v4.is_loopback()
                    || v4.is_link_local()
                    || v4.is_unspecified()
                    || v4.is_multicast()
                    || v4.is_broadcast())
            }
            IpAddr::V6(v6) => {
                !(v6.is_loopback() || v6.is_unspecified() || v6.is_multicast())
                    && (v6.segments()[0] & 0xffc0) != 0xfe80
            }
        };
        self.up && !self.loopback && ip_ok
    }
}

/// Everything the local checks look at, each read once.
#[derive(Debug)]
pub struct Facts {
    /// Can MPTCP sockets be created here.
    pub support: Result<Support, String>,
    /// The `net.mptcp.*` sysctls by short name; empty when the kernel has none.
    pub sysctls: Result<Vec<(String, String)>, String>,
    /// The path manager's limits.
    pub limits: Result<Limits, String>,
    /// The path manager's endpoints.
    pub endpoints: Result<Vec<Endpoint>, String>,
    /// The host's interface addresses.
    pub addresses: Result<Vec<HostAddr>, String>,
    /// The MPTCP MIB counters.
    pub counters: Result<Counters, String>,
}

impl Facts {
    fn sysctl(&self, name: &str) -> Option<&str> {
        self.sysctls
            .as_ref()
            .ok()?
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path manager in use, from `path_manager` or the older `pm_type`.
    fn path_manager(&self) -> Option<&str> {
        self.sysctl("path_manager")
            .or_else(|| match self.sysctl("pm_type")? {
                "0" => Some("kernel"),
                "1" => Some("userspace"),
                other => Some(other),
            })
    }

    fn userspace_pm(&self) -> bool {
        self.path_manager() == Some("userspace")
    }
}

/// What dialing the target gave.
#[derive(Debug)]
pub enum TargetOutcome {
    /// The name did not resolve.
    Unresolved(String),
    /// MPTCP sockets cannot be created here.
    NoMptcp(Unavailable),
    /// The connect failed.
    Failed(String),
    /// Connected.
    Connected(Dialed),
}

/// What was seen on a connection to the target.
#[derive(Debug, Default)]
pub struct Dialed {
    /// The address connected to.
    pub address: Option<SocketAddr>,
    /// MPTCP status of the connection.
    pub status: Option<MptcpStatus>,
    /// The connection token.
    pub token: Option<u32>,
    /// The most subflows seen at once.
    pub subflows: usize,
    /// `mptcp_info.add_addr_accepted`: peer addresses taken up.
    pub add_addr_accepted: Option<u8>,
    /// ANNOUNCED events for this connection (`None` without the event stream).
    pub announced: Option<Vec<Event>>,
    /// Why there were no events, if there were none.
    pub events_error: Option<String>,
    /// `MPCapableFallbackSYNACK` went up during the dial.
    pub synack_without_mptcp: bool,
    /// Writing the probe bytes failed.
    pub write_error: Option<String>,
}

/// The `target` object of the JSON report.
#[derive(Debug, Serialize)]
pub struct TargetJson {
    /// As given on the command line.
    pub target: String,
    /// The address connected to, if any.
    pub address: Option<String>,
    /// `active`, `fell_back`, `plain_tcp`, or null when not connected.
    pub status: Option<&'static str>,
    /// The connection token.
    pub token: Option<u32>,
    /// The most subflows seen at once.
    pub subflows: Option<usize>,
    /// Peer addresses the connection took up (`mptcp_info`).
    pub add_addr_accepted: Option<u8>,
    /// What the peer announced (null without CAP_NET_ADMIN for the event stream).
    pub announced: Option<Vec<AnnouncedJson>>,
    /// Whether the path-manager events could be read.
    pub events: bool,
    /// Why the target could not be checked.
    pub error: Option<String>,
}

/// An address the peer announced.
#[derive(Debug, Serialize)]
pub struct AnnouncedJson {
    /// The peer's address id.
    pub id: Option<u8>,
    /// The address (and port, 0 when none was announced).
    pub address: Option<String>,
}

/// The whole report, as printed with `--json`.
#[derive(Debug, Serialize)]
pub struct Report {
    /// `healthy` (exit 0), `problems` (exit 1) or `incomplete` (exit 2).
    pub verdict: &'static str,
    /// The exit status.
    pub exit_code: u8,
    /// The lines, in order.
    pub checks: Vec<Check>,
    /// The target, with --target.
    pub target: Option<TargetJson>,
}

/// Runs the doctor.
pub fn run(args: &DoctorArgs, out: &Output) -> Result<u8, Error> {
    let facts = gather();
    let mut lines = checks(&facts);
    let target = args.target.as_ref().map(|t| {
        let outcome = dial(t, args.connect_timeout, args.wait);
        lines.extend(target_checks(&facts, t, &outcome));
        target_json(t, &outcome)
    });
    let exit_code = exit_code(&lines);
    let report = Report {
        verdict: match exit_code {
            EXIT_OK => "healthy",
            EXIT_PROBLEMS => "problems",
            _ => "incomplete",
        },
        exit_code,
        checks: lines,
        target,
    };
    if out.json {
        out.json(&report)?;
    } else {
        out.print(&render(&report, out))?;
    }
    Ok(exit_code)
}

/// 1 if a line is warn or fail; else 2 if a line could not be checked; else 0.
pub fn exit_code(lines: &[Check]) -> u8 {
    if lines
        .iter()
        .any(|c| matches!(c.status, Status::Warn | Status::Fail))
    {
        EXIT_PROBLEMS
    } else if lines.iter().any(|c| c.status == Status::Unknown) {
        EXIT_ERROR
    } else {
        EXIT_OK
    }
}

/// Reads everything the local checks need.
pub fn gather() -> Facts {
    let pm = PathManager::open().map_err(|e| e.to_string());
    Facts {
        support: mptcp_net::support().map_err(|e| e.to_string()),
        sysctls: match sysctl::all() {
            Ok(all) => Ok(all),
            // No /proc/sys/net/mptcp: a kernel without MPTCP; the lines say so.
            Err(mptcp_netlink::Error::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(e.to_string()),
        },
        limits: pm
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|pm| pm.limits().map_err(|e| e.to_string())),
        endpoints: pm
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|pm| pm.endpoints().map_err(|e| e.to_string())),
        addresses: host_addresses(),
        counters: Counters::read().map_err(|e| e.to_string()),
    }
}

/// The addresses of this namespace's interfaces (`getifaddrs(3)`).
fn host_addresses() -> Result<Vec<HostAddr>, String> {
    use nix::net::if_::InterfaceFlags;
    let all = nix::ifaddrs::getifaddrs()
        .map_err(|e| format!("cannot list the interfaces' addresses: {e}"))?;
    Ok(all
        .filter_map(|a| {
            let addr = a.address?;
            let ip = if let Some(v4) = addr.as_sockaddr_in() {
                IpAddr::V4(v4.ip())
            } else {
                IpAddr::V6(addr.as_sockaddr_in6()?.ip())
            };
            Some(HostAddr {
                interface: a.interface_name,
                ip,
                up: a.flags.contains(InterfaceFlags::IFF_UP),
                loopback: a.flags.contains(InterfaceFlags::IFF_LOOPBACK),
            })
        })
        .collect())
}

/// The local checks, in order.
pub fn checks(facts: &Facts) -> Vec<Check> {
    vec![
        socket_check(facts),
        enabled_check(facts),
        path_manager_check(facts),
        scheduler_check(facts),
        checksum_check(facts),
        blackhole_check(facts),
        limits_check(facts),
        endpoints_check(facts),
        fallback_check(facts),
    ]
}

fn unknown(id: &'static str, what: &'static str, why: &str) -> Check {
    Check::new(id, what, Status::Unknown, format!("could not check: {why}"))
}

fn socket_check(facts: &Facts) -> Check {
    const ID: &str = "mptcp_socket";
    const WHAT: &str = "MPTCP sockets";
    match &facts.support {
        Ok(Support::Unavailable(why)) => {
            let text = why.to_string();
            let cause = text
                .strip_suffix(why.fix())
                .map_or(text.as_str(), |c| c.trim_end_matches("; "));
            Check::new(ID, WHAT, Status::Fail, cause.to_string()).fix(why.fix())
        }
        Ok(_) => Check::new(
            ID,
            WHAT,
            Status::Ok,
            "can be created in this network namespace".into(),
        ),
        Err(e) => unknown(ID, WHAT, e),
    }
}

fn sysctls_unreadable(facts: &Facts, id: &'static str, what: &'static str) -> Option<Check> {
    facts.sysctls.as_ref().err().map(|e| unknown(id, what, e))
}

fn enabled_check(facts: &Facts) -> Check {
    const ID: &str = "enabled";
    const WHAT: &str = "net.mptcp.enabled";
    if let Some(c) = sysctls_unreadable(facts, ID, WHAT) {
        return c;
    }
    match facts.sysctl("enabled") {
        Some("1") => Check::new(ID, WHAT, Status::Ok, "1".into()),
        Some(v) => Check::new(
            ID,
            WHAT,
            Status::Fail,
            format!("{v}: programs asking for MPTCP get plain TCP or an error"),
        )
        .fix("sysctl -w net.mptcp.enabled=1"),
        None => Check::new(
            ID,
            WHAT,
            Status::Fail,
            "no net.mptcp sysctls: this kernel has no MPTCP".into(),
        )
        .fix("run a kernel built with CONFIG_MPTCP=y (Linux 5.16 or later recommended)"),
    }
}

fn path_manager_check(facts: &Facts) -> Check {
    const ID: &str = "path_manager";
    const WHAT: &str = "path manager";
    if let Some(c) = sysctls_unreadable(facts, ID, WHAT) {
        return c;
    }
    match facts.path_manager() {
        Some("kernel") => Check::new(
            ID,
            WHAT,
            Status::Ok,
            "in-kernel: the endpoints and limits below decide the subflows".into(),
        ),
        Some("userspace") => Check::new(
            ID,
            WHAT,
            Status::Warn,
            "userspace: a daemon (e.g. mptcpd) must create the subflows and announce \
             addresses; without one every connection keeps one subflow"
                .into(),
        )
        .fix(
            "run a path-manager daemon in this namespace, or \
             `sysctl -w net.mptcp.path_manager=kernel`",
        ),
        Some(other) => Check::new(ID, WHAT, Status::Ok, other.to_string()),
        None => Check::new(
            ID,
            WHAT,
            Status::Unknown,
            "neither net.mptcp.path_manager nor net.mptcp.pm_type exists".into(),
        ),
    }
}

fn scheduler_check(facts: &Facts) -> Check {
    const ID: &str = "scheduler";
    const WHAT: &str = "scheduler";
    if let Some(c) = sysctls_unreadable(facts, ID, WHAT) {
        return c;
    }
    let Some(scheduler) = facts.sysctl("scheduler") else {
        return Check::new(
            ID,
            WHAT,
            Status::Ok,
            "default (this kernel has no other)".into(),
        );
    };
    match facts.sysctl("available_schedulers") {
        Some(available) if !available.split_whitespace().any(|s| s == scheduler) => Check::new(
            ID,
            WHAT,
            Status::Warn,
            format!("{scheduler:?} is not among the available ones ({available})"),
        )
        .fix("sysctl -w net.mptcp.scheduler=default"),
        _ => Check::new(ID, WHAT, Status::Ok, scheduler.to_string()),
    }
}

fn checksum_check(facts: &Facts) -> Check {
    const ID: &str = "checksum";
    const WHAT: &str = "DSS checksums";
    if let Some(c) = sysctls_unreadable(facts, ID, WHAT) {
        return c;
    }
    let detail = match facts.sysctl("checksum_enabled") {
        Some("0") => "off (the default; needed only where middleboxes rewrite payloads)",
        Some(_) => "on: every segment is checksummed (costs CPU; needed only where middleboxes rewrite payloads)",
        None => "not on this kernel",
    };
    Check::new(ID, WHAT, Status::Ok, detail.into())
}

fn blackhole_check(facts: &Facts) -> Check {
    const ID: &str = "blackhole";
    const WHAT: &str = "blackhole detection";
    let counters = match &facts.counters {
        Ok(c) => c,
        Err(e) => return unknown(ID, WHAT, e),
    };
    let timeout = facts.sysctl("blackhole_timeout");
    let blackholes = counters.get("Blackhole").unwrap_or(0);
    if blackholes > 0 {
        let disabled = counters.get("MPCapableSYNTXDisabled").unwrap_or(0);
        return Check::new(
            ID,
            WHAT,
            Status::Warn,
            format!(
                "MPTCP SYNs were dropped on the way (a firewall blackhole) {blackholes} time(s): \
                 active MPTCP was then turned off for net.mptcp.blackhole_timeout = {} s, \
                 doubling each time ({disabled} SYNs sent as plain TCP)",
                timeout.unwrap_or("?")
            ),
        )
        .fix(
            "find the firewall or middlebox that drops SYNs with MPTCP options; \
             `sysctl -w net.mptcp.blackhole_timeout=0` turns the detection off",
        );
    }
    let detail = match timeout {
        Some("0") => "detection off (net.mptcp.blackhole_timeout = 0)".to_string(),
        Some(t) => format!("no blackhole seen (detection on, timeout {t} s)"),
        None => "no blackhole detection on this kernel".to_string(),
    };
    Check::new(ID, WHAT, Status::Ok, detail)
}

fn subflow_endpoints(endpoints: &[Endpoint]) -> usize {
    endpoints
        .iter()
        .filter(|e| e.flags.contains(EndpointFlags::SUBFLOW))
        .count()
}

fn limits_check(facts: &Facts) -> Check {
    const ID: &str = "limits";
    const WHAT: &str = "limits";
    let limits = match &facts.limits {
        Ok(l) => l,
        Err(e) => return unknown(ID, WHAT, e),
    };
    let (s, a) = (limits.subflows, limits.add_addr_accepted);
    let values = format!("subflows {s}, add_addr_accepted {a}");
    if facts.userspace_pm() {
        return Check::new(
            ID,
            WHAT,
            Status::Ok,
            format!("{values} (not used by the userspace path manager)"),
        );
    }
    if s == 0 {
        let detail = if a == 0 {
            "subflows 0 and add_addr_accepted 0: no extra subflows will ever be made".to_string()
        } else {
            format!(
                "subflows 0 (add_addr_accepted {a}): no connection will ever get a second subflow"
            )
        };
        return Check::new(ID, WHAT, Status::Warn, detail)
            .fix("mptcp limits set --subflows 2 (up to 8)");
    }
    let wanted = facts.endpoints.as_ref().map_or(0, |e| subflow_endpoints(e));
    if wanted > s as usize {
        return Check::new(
            ID,
            WHAT,
            Status::Warn,
            format!(
                "{wanted} subflow endpoints but subflows {s}: only {s} of them are used per connection"
            ),
        )
        .fix(format!("mptcp limits set --subflows {}", wanted.min(8)));
    }
    let note = if a == 0 {
        " (addresses announced by peers are not used)"
    } else {
        ""
    };
    Check::new(ID, WHAT, Status::Ok, format!("{values}{note}"))
}

fn endpoints_check(facts: &Facts) -> Check {
    const ID: &str = "endpoints";
    const WHAT: &str = "endpoints";
    let endpoints = match &facts.endpoints {
        Ok(e) => e,
        Err(e) => return unknown(ID, WHAT, e),
    };
    let addresses = match &facts.addresses {
        Ok(a) => a,
        Err(e) => return unknown(ID, WHAT, e),
    };
    let usable: Vec<&HostAddr> = addresses.iter().filter(|a| a.usable()).collect();
    // In the kernel's order (by interface index), without repeats.
    let mut interfaces: Vec<&str> = Vec::new();
    for a in &usable {
        if !interfaces.contains(&a.interface.as_str()) {
            interfaces.push(&a.interface);
        }
    }
    let listing = usable
        .iter()
        .map(|a| format!("{} {}", a.interface, a.ip))
        .collect::<Vec<_>>()
        .join(", ");

    let stale: Vec<&Endpoint> = endpoints
        .iter()
        .filter(|e| !addresses.iter().any(|a| a.ip == e.address))
        .collect();
    if let Some(first) = stale.first() {
        let names: Vec<String> = stale
            .iter()
            .map(|e| format!("{} (id {})", e.address, e.id))
            .collect();
        return Check::new(
            ID,
            WHAT,
            Status::Warn,
            format!(
                "{} not on any interface of this host: subflows from there cannot be made",
                names.join(", ")
            ),
        )
        .fix(format!(
            "mptcp endpoint del --id {} (or add the address back to its interface)",
            first.id
        ));
    }

    let active = EndpointFlags::SUBFLOW | EndpointFlags::SIGNAL | EndpointFlags::LAMINAR;
    let used: Vec<&Endpoint> = endpoints
        .iter()
        .filter(|e| e.flags.intersects(active))
        .collect();
    if used.is_empty() && interfaces.len() >= 2 && !facts.userspace_pm() {
        // Suggest the addresses of every interface but the first: it usually carries
        // the initial subflow.
        let first = interfaces.first().copied().unwrap_or_default();
        let suggestion = usable
            .iter()
            .filter(|a| a.interface != first)
            .map(|a| {
                format!(
                    "mptcp endpoint add {} --dev {} --subflow",
                    a.ip, a.interface
                )
            })
            .next()
            .unwrap_or_default();
        let consequence = match &facts.limits {
            Ok(l) if l.add_addr_accepted > 0 => {
                "this host opens no extra subflow of its own, only towards addresses a peer \
                 announces"
            }
            _ => "every connection stays on its first path",
        };
        return Check::new(
            ID,
            WHAT,
            Status::Warn,
            format!(
                "{} interfaces with usable addresses ({listing}) but no subflow or signal \
                 endpoint: {consequence}",
                interfaces.len()
            ),
        )
        .fix(format!(
            "on a client, a subflow endpoint per extra interface (`{suggestion}`); on a \
             server, --signal instead of --subflow"
        ));
    }
    let detail = if used.is_empty() {
        match interfaces.len() {
            0 => "none, and no usable address besides loopback".to_string(),
            _ => format!(
                "none; one interface with usable addresses ({listing}): nothing else to use"
            ),
        }
    } else {
        let names: Vec<String> = used.iter().map(|e| e.to_string()).collect();
        format!(
            "{} for {} usable interface(s)",
            names.join("; "),
            interfaces.len()
        )
    };
    Check::new(ID, WHAT, Status::Ok, detail)
}

fn fallback_check(facts: &Facts) -> Check {
    const ID: &str = "fallback";
    const WHAT: &str = "fallbacks to TCP";
    let counters = match &facts.counters {
        Ok(c) => c,
        Err(e) => return unknown(ID, WHAT, e),
    };
    let seen: Vec<String> = FALLBACK_COUNTERS
        .iter()
        .filter_map(|(name, meaning)| {
            let n = counters.get(name).filter(|&n| n > 0)?;
            Some(format!("{name} {n}: {meaning}"))
        })
        .collect();
    if seen.is_empty() {
        return Check::new(ID, WHAT, Status::Ok, "none since boot".into());
    }
    Check::new(
        ID,
        WHAT,
        Status::Warn,
        format!(
            "connections fell back to plain TCP ({}); peers without MPTCP, or middleboxes \
             that strip MPTCP options (TCP option 30)",
            seen.join("; ")
        ),
    )
    .fix(
        "expected with peers that do not speak MPTCP; otherwise test a path with \
         `mptcp doctor --target HOST:PORT`",
    )
}

/// Dials the target with MPTCP and watches the connection.
pub fn dial(target: &str, connect_timeout: Duration, wait: Duration) -> TargetOutcome {
    let addrs: Vec<SocketAddr> = match target.to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => return TargetOutcome::Unresolved(format!("cannot resolve {target}: {e}")),
    };
    let before = Counters::read().ok();
    // Subscribe before dialing, so the peer's announcements are not missed.
    let mut events = Events::subscribe().map_err(|e| e.to_string());
    let mut dialer = Dialer::new();
    dialer
        .require_multipath_tcp(true)
        .set_timeout(Some(connect_timeout));
    let mut stream = match dialer.dial(&addrs[..]) {
        Ok(s) => s,
        Err(e) => {
            if let Some(why) = e.get_ref().and_then(|r| r.downcast_ref::<Unavailable>()) {
                return TargetOutcome::NoMptcp(*why);
            }
            return TargetOutcome::Failed(format!("cannot connect to {target}: {e}"));
        }
    };
    let mut dialed = Dialed {
        address: stream.peer_addr().ok(),
        status: stream.mptcp_status().ok(),
        ..Dialed::default()
    };
    // Extra subflows come after the first data exchange.
    if let Err(e) = stream.write_all(b"\r\n") {
        dialed.write_error = Some(e.to_string());
    }
    let mut seen = Vec::new();
    dialed.subflows = watch_subflows(&stream, wait, &mut events, &mut seen);
    if let Ok(Some(info)) = stream.mptcp_info() {
        dialed.token = Some(info.token);
        dialed.add_addr_accepted = Some(info.add_addr_accepted);
    }
    drain(&mut events, &mut seen);
    match events {
        Ok(_) => {
            dialed.announced = Some(
                seen.into_iter()
                    .filter(|e| e.kind == EventKind::Announced && e.token == dialed.token)
                    .collect(),
            )
        }
        Err(e) => dialed.events_error = Some(e),
    }
    close_gently(stream);
    if let (Some(before), Ok(after)) = (before, Counters::read()) {
        dialed.synack_without_mptcp = after.delta(&before).get("MPCapableFallbackSYNACK") > Some(0);
    }
    TargetOutcome::Connected(dialed)
}

/// Closes without a reset: a socket closed with unread data sends RST, so whatever
/// the peer answered is read first (at most 64 KiB, for at most 200 ms).
fn close_gently(mut stream: TcpStream) {
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 4096];
    for _ in 0..16 {
        if !matches!(std::io::Read::read(&mut stream, &mut buf), Ok(n) if n > 0) {
            break;
        }
    }
}

/// The most subflows `stream` had at once within `wait`; stops early once a count of
/// 2 or more has settled. Reads events meanwhile, so the socket's queue cannot fill.
fn watch_subflows(
    stream: &TcpStream,
    wait: Duration,
    events: &mut Result<Events, String>,
    seen: &mut Vec<Event>,
) -> usize {
    let start = Instant::now();
    let (mut most, mut last, mut since) = (0, 0, start);
    while start.elapsed() < wait {
        let n = stream.subflows().map_or(0, |s| s.len());
        most = most.max(n);
        if n != last {
            (last, since) = (n, Instant::now());
        } else if n >= 2 && since.elapsed() >= SETTLED {
            break;
        }
        drain(events, seen);
        std::thread::sleep(POLL);
    }
    most
}

/// Takes the events already queued, without waiting.
fn drain(events: &mut Result<Events, String>, seen: &mut Vec<Event>) {
    let Ok(ev) = events else { return };
    while seen.len() < MAX_EVENTS {
        match ev.next_timeout(Duration::ZERO) {
            Ok(Some(e)) => seen.push(e),
            Ok(None) => break,
            Err(mptcp_netlink::Error::EventsLost) => continue,
            Err(e) => {
                tracing::warn!("path-manager events: {e}");
                break;
            }
        }
    }
}

/// The lines about the target.
pub fn target_checks(facts: &Facts, target: &str, outcome: &TargetOutcome) -> Vec<Check> {
    const CONNECT: &str = "target_connect";
    const CONNECT_WHAT: &str = "target speaks MPTCP";
    let dialed = match outcome {
        TargetOutcome::Unresolved(e) | TargetOutcome::Failed(e) => {
            return vec![unknown(CONNECT, CONNECT_WHAT, e)];
        }
        TargetOutcome::NoMptcp(why) => {
            return vec![Check::new(
                CONNECT,
                CONNECT_WHAT,
                Status::Fail,
                format!("cannot test {target}: {why}"),
            )
            .fix(why.fix())];
        }
        TargetOutcome::Connected(d) => d,
    };
    let token = dialed
        .token
        .map(output::token)
        .unwrap_or_else(|| "?".into());
    let mut lines = Vec::new();
    match dialed.status {
        Some(MptcpStatus::Active) => lines.push(Check::new(
            CONNECT,
            CONNECT_WHAT,
            Status::Ok,
            format!("{target} speaks MPTCP (connection token {token})"),
        )),
        Some(MptcpStatus::FellBack) => {
            let seen = if dialed.synack_without_mptcp {
                "its SYN-ACK came back without MP_CAPABLE; "
            } else {
                ""
            };
            lines.push(
                Check::new(
                    CONNECT,
                    CONNECT_WHAT,
                    Status::Fail,
                    format!(
                        "the connection to {target} fell back to plain TCP: {seen}one path only"
                    ),
                )
                .fix(
                    "likely causes: the peer does not speak MPTCP (a Go server before 1.24, \
                     nginx without `multipath` on its listen line, a program that does not ask \
                     for IPPROTO_MPTCP, or net.mptcp.enabled=0 on the server), or a middlebox \
                     on the way strips TCP option 30",
                ),
            );
            return lines;
        }
        Some(_) | None => {
            lines.push(Check::new(
                CONNECT,
                CONNECT_WHAT,
                Status::Unknown,
                format!("connected to {target}, but its MPTCP status could not be read"),
            ));
            return lines;
        }
    }

    let announced = dialed.announced.as_deref().unwrap_or_default();
    let accepted = dialed.add_addr_accepted.unwrap_or(0);
    let local_paths = facts.endpoints.as_ref().map_or(0, |e| subflow_endpoints(e));
    let expect_more = local_paths > 0 || !announced.is_empty() || accepted > 0;
    let subflows = match dialed.subflows {
        n if n >= 2 => Check::new(
            "target_subflows",
            "target subflows",
            Status::Ok,
            format!("{n} subflows"),
        ),
        n if expect_more => {
            let write = dialed
                .write_error
                .as_ref()
                .map(|e| format!(" (sending the first bytes failed: {e})"))
                .unwrap_or_default();
            Check::new(
                "target_subflows",
                "target subflows",
                Status::Warn,
                format!(
                    "{n} subflow although there is more to use ({local_paths} local subflow \
                     endpoint(s), {} address(es) announced by the peer){write}",
                    announced.len().max(accepted.into())
                ),
            )
            .fix(
                "check that the extra addresses reach the peer (routing by source address, \
                 firewalls on the other paths) and the endpoints and limits lines above",
            )
        }
        n => Check::new(
            "target_subflows",
            "target subflows",
            Status::Ok,
            format!(
                "{n} subflow: nothing else to use (no subflow endpoint here, no address \
                 announced by the peer)"
            ),
        ),
    };
    lines.push(subflows);

    const ANNOUNCED: &str = "target_announced";
    const ANNOUNCED_WHAT: &str = "peer announcements";
    let limit = facts.limits.as_ref().ok().map(|l| l.add_addr_accepted);
    let line = match (&dialed.announced, &dialed.events_error) {
        (Some(list), _) if !list.is_empty() => {
            let addrs: Vec<String> = list
                .iter()
                .map(|e| {
                    let addr = e.remote.map_or_else(|| "?".into(), announced_addr);
                    match e.remote_id {
                        Some(id) => format!("{addr} (id {id})"),
                        None => addr,
                    }
                })
                .collect();
            let detail = format!("the peer announced {}", addrs.join(", "));
            if limit == Some(0) {
                Check::new(
                    ANNOUNCED,
                    ANNOUNCED_WHAT,
                    Status::Warn,
                    format!("{detail}, ignored: add_addr_accepted is 0"),
                )
                .fix(format!(
                    "mptcp limits set --add-addr-accepted {}",
                    list.len().min(8)
                ))
            } else {
                Check::new(
                    ANNOUNCED,
                    ANNOUNCED_WHAT,
                    Status::Ok,
                    format!("{detail}; {accepted} taken up"),
                )
            }
        }
        (Some(_), _) => Check::new(
            ANNOUNCED,
            ANNOUNCED_WHAT,
            Status::Ok,
            "the peer announced no address".into(),
        ),
        (None, Some(why)) => Check::new(
            ANNOUNCED,
            ANNOUNCED_WHAT,
            Status::Ok,
            format!(
                "{accepted} peer address(es) taken up (what the peer announced is not known \
                 without the event stream: {why})"
            ),
        ),
        (None, None) => Check::new(
            ANNOUNCED,
            ANNOUNCED_WHAT,
            Status::Ok,
            format!("{accepted} peer address(es) taken up"),
        ),
    };
    lines.push(line);
    lines
}

/// An announced address: with its port when one was announced.
fn announced_addr(a: SocketAddr) -> String {
    if a.port() == 0 {
        a.ip().to_string()
    } else {
        a.to_string()
    }
}

fn target_json(target: &str, outcome: &TargetOutcome) -> TargetJson {
    let mut json = TargetJson {
        target: target.to_string(),
        address: None,
        status: None,
        token: None,
        subflows: None,
        add_addr_accepted: None,
        announced: None,
        events: false,
        error: None,
    };
    match outcome {
        TargetOutcome::Unresolved(e) | TargetOutcome::Failed(e) => json.error = Some(e.clone()),
        TargetOutcome::NoMptcp(why) => json.error = Some(why.to_string()),
        TargetOutcome::Connected(d) => {
            json.address = d.address.map(|a| a.to_string());
            json.status = d.status.map(|s| s.as_str());
            json.token = d.token;
            json.subflows = Some(d.subflows);
            json.add_addr_accepted = d.add_addr_accepted;
            json.events = d.announced.is_some();
            json.announced = d.announced.as_ref().map(|list| {
                list.iter()
                    .map(|e| AnnouncedJson {
                        id: e.remote_id,
                        address: e.remote.map(announced_addr),
                    })
                    .collect()
            });
        }
    }
    json
}

/// The report as text: one line per check, its fix indented below it.
fn render(report: &Report, out: &Output) -> String {
    let width = report
        .checks
        .iter()
        .map(|c| c.what.len())
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    for c in &report.checks {
        let (tag, style) = match c.status {
            Status::Ok => ("ok", GOOD),
            Status::Warn => ("warn", WARN),
            Status::Fail => ("fail", BAD),
            Status::Unknown => ("?", WARN),
        };
        let tag = format!("{tag:<4}");
        text.push_str(&format!(
            "{}  {:<width$}  {}\n",
            out.paint(style, &tag),
            c.what,
            c.detail
        ));
        if let Some(fix) = &c.fix {
            let pad = " ".repeat(4 + 2 + width + 2);
            text.push_str(&format!(
                "{pad}{}\n",
                out.paint(DIM, &format!("fix: {fix}"))
            ));
        }
    }
    let count = |s: Status| report.checks.iter().filter(|c| c.status == s).count();
    let (warn, fail, unknown) = (
        count(Status::Warn),
        count(Status::Fail),
        count(Status::Unknown),
    );
    let summary = match report.exit_code {
        EXIT_OK => out.paint(GOOD, "healthy"),
        EXIT_PROBLEMS => out.paint(
            BAD,
            &format!("{} problem(s): {fail} fail, {warn} warn", fail + warn),
        ),
        _ => out.paint(
            WARN,
            &format!("incomplete: {unknown} line(s) could not be checked"),
        ),
    };
    text.push_str(&format!("\nverdict: {summary}\n"));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use mptcp_netlink::codec::AddressAttrs;

    fn endpoint(id: u8, ip: &str, flags: EndpointFlags) -> Endpoint {
        let mut attrs = AddressAttrs::from_ip(ip.parse().unwrap());
        attrs.id = Some(id);
        attrs.flags = Some(flags.bits());
        Endpoint::try_from(&attrs).unwrap()
    }

    fn addr(interface: &str, ip: &str) -> HostAddr {
        HostAddr {
            interface: interface.into(),
            ip: ip.parse().unwrap(),
            up: true,
            loopback: interface == "lo",
        }
    }

    /// A healthy two-interface client with one subflow endpoint.
    fn healthy() -> Facts {
        let sysctls = [
            ("enabled", "1"),
            ("path_manager", "kernel"),
            ("scheduler", "default"),
            ("available_schedulers", "default"),
            ("checksum_enabled", "0"),
            ("blackhole_timeout", "3600"),
        ];
        Facts {
            support: Ok(Support::Available),
            sysctls: Ok(sysctls
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()),
            limits: Ok(Limits {
                subflows: 2,
                add_addr_accepted: 0,
            }),
            endpoints: Ok(vec![endpoint(1, "198.18.1.1", EndpointFlags::SUBFLOW)]),
            addresses: Ok(vec![
                addr("lo", "127.0.0.1"),
                addr("lo", "::1"),
                addr("eth0", "198.18.0.1"),
                addr("eth0", "fe80::1"),
                addr("eth1", "198.18.1.1"),
            ]),
            counters: Ok(Counters::parse(
                "MPTcpExt: MPCapableFallbackSYNACK Blackhole\nMPTcpExt: 0 0\n",
            )
            .unwrap()),
        }
    }

    fn status_of(facts: &Facts, id: &str) -> Status {
        checks(facts)
            .into_iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("no {id} line"))
            .status
    }

    #[test]
    fn a_healthy_host_is_all_ok() {
        let lines = checks(&healthy());
        assert!(lines.iter().all(|c| c.status == Status::Ok), "{lines:#?}");
        assert_eq!(exit_code(&lines), EXIT_OK);
    }

    #[test]
    fn two_interfaces_without_endpoints_warn_with_a_fix() {
        let mut f = healthy();
        f.endpoints = Ok(vec![]);
        let line = checks(&f)
            .into_iter()
            .find(|c| c.id == "endpoints")
            .unwrap();
        assert_eq!(line.status, Status::Warn);
        assert!(line.detail.contains("eth1 198.18.1.1"), "{}", line.detail);
        assert!(line
            .fix
            .unwrap()
            .contains("mptcp endpoint add 198.18.1.1 --dev eth1 --subflow"));
        // One interface with two addresses is one path: nothing to warn about.
        f.addresses = Ok(vec![
            addr("eth0", "198.18.0.1"),
            addr("eth0", "2001:db8::1"),
        ]);
        assert_eq!(status_of(&f, "endpoints"), Status::Ok);
        // A down interface does not count.
        f.addresses = Ok(vec![
            addr("eth0", "198.18.0.1"),
            HostAddr {
                up: false,
                ..addr("eth1", "198.18.1.1")
            },
        ]);
        assert_eq!(status_of(&f, "endpoints"), Status::Ok);
    }

    #[test]
    fn a_stale_endpoint_warns() {
        let mut f = healthy();
        f.endpoints = Ok(vec![endpoint(4, "198.18.9.9", EndpointFlags::SUBFLOW)]);
        let line = checks(&f)
            .into_iter()
            .find(|c| c.id == "endpoints")
            .unwrap();
        assert_eq!(line.status, Status::Warn);
        assert!(line.fix.unwrap().contains("--id 4"));
    }

    #[test]
    fn limits_of_zero_and_too_many_endpoints_warn() {
        let mut f = healthy();
        f.limits = Ok(Limits {
            subflows: 0,
            add_addr_accepted: 0,
        });
        let line = checks(&f).into_iter().find(|c| c.id == "limits").unwrap();
        assert_eq!(line.status, Status::Warn);
        assert!(line.detail.contains("no extra subflows will ever be made"));
        f.limits = Ok(Limits {
            subflows: 1,
            add_addr_accepted: 0,
        });
        f.endpoints = Ok(vec![
            endpoint(1, "198.18.1.1", EndpointFlags::SUBFLOW),
            endpoint(2, "198.18.0.1", EndpointFlags::SUBFLOW),
        ]);
        assert_eq!(status_of(&f, "limits"), Status::Warn);
    }

    #[test]
    fn disabled_mptcp_fails_with_the_fix() {
        let mut f = healthy();
        f.support = Ok(Support::Unavailable(Unavailable::DisabledBySysctl));
        f.sysctls = Ok(vec![("enabled".into(), "0".into())]);
        let lines = checks(&f);
        let socket = lines.iter().find(|c| c.id == "mptcp_socket").unwrap();
        assert_eq!(socket.status, Status::Fail);
        assert!(!socket.detail.contains("sysctl -w"), "{}", socket.detail);
        assert!(socket.fix.as_ref().unwrap().contains("net.mptcp.enabled=1"));
        let enabled = lines.iter().find(|c| c.id == "enabled").unwrap();
        assert_eq!(enabled.status, Status::Fail);
        assert_eq!(exit_code(&lines), EXIT_PROBLEMS);
    }

    #[test]
    fn counters_and_path_manager() {
        let mut f = healthy();
        f.counters = Ok(Counters::parse(
            "MPTcpExt: MPCapableFallbackSYNACK Blackhole MPCapableSYNTXDisabled\nMPTcpExt: 3 1 2\n",
        )
        .unwrap());
        assert_eq!(status_of(&f, "fallback"), Status::Warn);
        assert_eq!(status_of(&f, "blackhole"), Status::Warn);
        let mut f = healthy();
        f.sysctls = Ok(vec![
            ("enabled".into(), "1".into()),
            ("pm_type".into(), "1".into()),
        ]);
        assert_eq!(status_of(&f, "path_manager"), Status::Warn);
        // The userspace PM does not use endpoints: no endpoint warning then.
        f.endpoints = Ok(vec![]);
        assert_eq!(status_of(&f, "endpoints"), Status::Ok);
    }

    #[test]
    fn unreadable_facts_are_unknown_and_exit_2() {
        let mut f = healthy();
        f.limits = Err("boom".into());
        f.endpoints = Err("boom".into());
        let lines = checks(&f);
        assert_eq!(
            lines.iter().find(|c| c.id == "limits").unwrap().status,
            Status::Unknown
        );
        assert_eq!(exit_code(&lines), EXIT_ERROR);
    }

    #[test]
    fn target_lines() {
        let f = healthy();
        let fell_back = TargetOutcome::Connected(Dialed {
            status: Some(MptcpStatus::FellBack),
            subflows: 1,
            synack_without_mptcp: true,
            ..Dialed::default()
        });
        let lines = target_checks(&f, "h:1", &fell_back);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].status, Status::Fail);
        assert!(lines[0].detail.contains("without MP_CAPABLE"));
        assert!(lines[0]
            .fix
            .as_ref()
            .unwrap()
            .contains("Go server before 1.24"));

        let mut announce = Event::new(EventKind::Announced);
        announce.remote = Some("198.18.1.2:0".parse().unwrap());
        announce.remote_id = Some(1);
        let active = TargetOutcome::Connected(Dialed {
            status: Some(MptcpStatus::Active),
            subflows: 1,
            announced: Some(vec![announce]),
            ..Dialed::default()
        });
        let lines = target_checks(&f, "h:1", &active);
        let by = |id: &str| lines.iter().find(|c| c.id == id).unwrap();
        assert_eq!(by("target_connect").status, Status::Ok);
        assert_eq!(by("target_subflows").status, Status::Warn);
        let announced = by("target_announced");
        assert_eq!(announced.status, Status::Warn, "{announced:?}");
        assert!(announced.detail.contains("198.18.1.2 (id 1)"));
        assert!(announced
            .fix
            .as_ref()
            .unwrap()
            .contains("--add-addr-accepted 1"));

        let refused = TargetOutcome::Failed("refused".into());
        assert_eq!(
            target_checks(&f, "h:1", &refused)[0].status,
            Status::Unknown
        );
    }
}
