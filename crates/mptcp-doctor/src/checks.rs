//! The local checks: each a pure function from [`Facts`] to one [`Check`] line.
//!
//! A new check is one function here and one line in [`LOCAL_CHECKS`]; its unit test
//! builds the facts by hand (see the crate's tests) and needs no kernel.

use mptcp_net::Support;
use mptcp_netlink::{mib, Endpoint, EndpointFlags};

use crate::check::{unknown, Check, Status};
use crate::facts::{Facts, HostAddr};

/// The counters that count fallbacks to TCP; what each means is in
/// [`mptcp_netlink::mib`].
const FALLBACK_COUNTERS: &[&str] = &[
    "MPCapableFallbackSYNACK",
    "MPCapableFallbackACK",
    "MPCapableDataFallback",
    "DSSCorruptionFallback",
    "DssFallback",
    "MPFallbackTokenInit",
    "MD5SigFallback",
    "SimultConnectFallback",
    "FallbackFailed",
];

/// A local check: reads the facts, says one line.
pub type LocalCheck = fn(&Facts) -> Check;

/// The local checks, in the order they are printed.
pub const LOCAL_CHECKS: &[LocalCheck] = &[
    socket_check,
    enabled_check,
    path_manager_check,
    scheduler_check,
    checksum_check,
    blackhole_check,
    limits_check,
    endpoints_check,
    fallback_check,
    balancer_check,
];

/// The local checks' lines, in order.
pub fn checks(facts: &Facts) -> Vec<Check> {
    LOCAL_CHECKS.iter().map(|check| check(facts)).collect()
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
        Some("0") => {
            "off (the default; turn on at both ends where a middlebox may rewrite payloads \
             or strip MPTCP options mid-connection, which can misplace data without them)"
        }
        Some(_) => {
            "on: every mapping is checksummed (costs CPU; guards against middleboxes that \
             rewrite payloads or strip MPTCP options)"
        }
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

pub(crate) fn subflow_endpoints(endpoints: &[Endpoint]) -> usize {
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
    // Linux 6.18 counts a `subflow laminar` endpoint again in a connection's
    // `local_addr_used` each time it opens a subflow from it towards an address the
    // peer announced, and removing the endpoint takes only one back: past the limit
    // the connection gets no subflow from any endpoint again (mptcp-pm's crate docs,
    // "Flags").
    let both = EndpointFlags::SUBFLOW | EndpointFlags::LAMINAR;
    if let Some(e) = used.iter().find(|e| e.flags.contains(both)) {
        return Check::new(
            ID,
            WHAT,
            Status::Warn,
            format!(
                "{e}: `laminar` beside `subflow` makes the kernel count this address again \
                 in a connection's used addresses each time it follows an announcement \
                 from it; past local_addr_max the connection opens no subflow at all, \
                 even after its endpoints are removed and added back"
            ),
        )
        .fix(format!(
            "mptcp endpoint del --id {id}; mptcp endpoint add {} --id {id} --subflow{} \
             (add --fullmesh to follow announcements from every path)",
            e.address,
            e.ifindex
                .and(e.interface.as_deref())
                .map(|i| format!(" --dev {i}"))
                .unwrap_or_default(),
            id = e.id
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
        .filter_map(|name| {
            let n = counters.get(name).filter(|&n| n > 0)?;
            let meaning = mib::help(name).unwrap_or("a fallback");
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

/// A server behind a layer-4 balancer: joins that reached a backend which does not
/// know their token (`MPJoinNoTokenFound`), or a port nobody announced
/// (`MismatchPortSynRx`), while nothing keeps clients' joins off the VIP.
fn balancer_check(facts: &Facts) -> Check {
    const ID: &str = "balancer_joins";
    const WHAT: &str = "joins reset behind a balancer";
    let counters = match &facts.counters {
        Ok(c) => c,
        Err(e) => return unknown(ID, WHAT, e),
    };
    let get = |n: &str| counters.get(n).unwrap_or(0);
    let (no_token, bad_port, joins) = (
        get("MPJoinNoTokenFound"),
        get("MismatchPortSynRx"),
        get("MPJoinSynRx"),
    );
    if no_token == 0 && bad_port == 0 {
        return Check::new(ID, WHAT, Status::Ok, "none since boot".into());
    }
    let c_flag = facts.sysctl("allow_join_initial_addr_port") == Some("0");
    let port_endpoint = facts.endpoints.as_ref().is_ok_and(|eps| {
        eps.iter()
            .any(|e| e.port.is_some() && e.flags.contains(EndpointFlags::SIGNAL))
    });
    let seen = format!(
        "since boot: {no_token} join(s) with a token no connection here has (MPJoinNoTokenFound), \
         {bad_port} to a port that was not announced (MismatchPortSynRx), of {joins} join SYNs"
    );
    if c_flag && port_endpoint {
        return Check::new(
            ID,
            WHAT,
            Status::Ok,
            format!(
                "{seen}; the C flag is set and a join port announced, so new connections' \
                 joins reach this backend (older counts may predate that)"
            ),
        );
    }
    Check::new(
        ID,
        WHAT,
        Status::Warn,
        format!(
            "{seen}: the sign of a server behind a layer-4 balancer that hashes each join \
             anew to a random backend{}",
            match (c_flag, port_endpoint) {
                (false, false) => "; no C flag is set and no join port is announced",
                (true, false) => "; the C flag is set but no join port is announced",
                _ => "; a join port is announced but the C flag is not set",
            }
        ),
    )
    .fix(
        "on each backend `mptcp pm run --role server --vip VIP --join-port PORT` (a port of \
         its own), and on the balancer `mptcp lb run --vip VIP:PORT --backend \
         ADDR,join-port=PORT ...`; or token steering (`mptcp lb run --steer-tokens`, \
         `mptcp pm run --role server --lb-registry ...`) for stock clients",
    )
}
