//! The targets, judged on the figures of one run.
//!
//! A miss carries its explanation, built from what the same run measured
//! (system calls and CPU time per connection, the round-by-round ranges) and
//! the fix that would close it.

use crate::report::{Figure, Results, SyscallCount, Target};

fn find<'a>(figures: &'a [Figure], id: &str) -> Option<&'a Figure> {
    figures.iter().find(|f| f.id == id)
}

fn count<'a>(counts: &'a [SyscallCount], id: &str) -> Option<&'a SyscallCount> {
    counts.iter().find(|c| c.id == id)
}

/// `a/b` with the round-by-round range, e.g. `0.991x [0.962-1.013]`.
fn show_ratio(f: &Figure, against: &str) -> Option<(f64, String)> {
    let r = f.ratio(against)?;
    let shown = match &r.per_round {
        Some(p) => format!("{:.3}x [{:.3}-{:.3}]", r.of_medians, p.min, p.max),
        None => format!("{:.3}x", r.of_medians),
    };
    Some((r.of_medians, shown))
}

/// What the run measured of two implementations, side by side: time and
/// CPU per connection, and how their system calls differ.
fn evidence(figures: &[Figure], counts: &[SyscallCount], a: &str, b: &str) -> String {
    let mut out = String::new();
    if let (Some(x), Some(y)) = (find(figures, a), find(figures, b)) {
        if x.unit == "connections/s" {
            out.push_str(&format!(
                " Per connection: {a} {:.1} µs, {b} {:.1} µs of wall time",
                1e6 / x.series.median,
                1e6 / y.series.median
            ));
            if let (Some((xu, xs)), Some((yu, ys))) = (x.cpu_us_per_op, y.cpu_us_per_op) {
                out.push_str(&format!(
                    "; CPU {xu:.1} µs user + {xs:.1} µs system vs {yu:.1} + {ys:.1}"
                ));
            }
            out.push('.');
        }
    }
    if let (Some(x), Some(y)) = (count(counts, a), count(counts, b)) {
        let more = |p: &str, q: &str, extra: &[(String, f64)]| {
            let list: Vec<String> = extra.iter().map(|(n, d)| format!("{d:.1} {n}")).collect();
            format!(
                " {p} makes more system calls per connection than {q}: {}.",
                list.join(", ")
            )
        };
        let (ab, ba) = (extra_calls(x, y), extra_calls(y, x));
        if ab.is_empty() && ba.is_empty() {
            out.push_str(&format!(
                " Both make the same system calls per connection ({}).",
                x.breakdown()
            ));
        }
        if !ab.is_empty() {
            out.push_str(&more(a, b, &ab));
            if ab.iter().any(|(n, _)| n == "fcntl") {
                out.push_str(
                    " The fcntl calls switch a socket to non-blocking after creating it; \
                     fix: create it with SOCK_NONBLOCK.",
                );
            }
        }
        if !ba.is_empty() {
            out.push_str(&more(b, a, &ba));
        }
    }
    out
}

/// System calls `x` makes at least half a call more often than `y`.
fn extra_calls(x: &SyscallCount, y: &SyscallCount) -> Vec<(String, f64)> {
    x.by_name
        .iter()
        .map(|(n, c)| (n.clone(), c - y.by_name.get(n).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d >= 0.5)
        .collect()
}

/// Said when the round-by-round range reaches the threshold: the miss is
/// then within this machine's run-to-run noise.
fn noise_note(f: &Figure, against: &str, threshold: f64) -> String {
    match f.ratio(against).and_then(|r| r.per_round.as_ref()) {
        Some(p) if p.max >= threshold => format!(
            " The rounds range from {:.3}x to {:.3}x: the threshold is inside this run's \
             round-to-round noise, so the median alone does not settle it.",
            p.min, p.max
        ),
        _ => String::new(),
    }
}

struct RatioTarget<'a> {
    item: u8,
    figures: &'a [Figure],
    counts: &'a [SyscallCount],
    id: &'a str,
    against: &'a str,
    threshold: f64,
    target: String,
    /// Why, in general terms, before the measured evidence.
    why: &'a str,
}

fn ratio_target(t: RatioTarget<'_>) -> Option<Target> {
    let f = find(t.figures, t.id)?;
    let (figure, shown) = show_ratio(f, t.against)?;
    let met = figure >= t.threshold;
    let range = f.ratio(t.against).and_then(|r| r.per_round.as_ref());
    // Two or three rounds on one side of a threshold prove little.
    let settled = range
        .filter(|p| p.runs.len() >= 5)
        .map(|p| (p.min >= t.threshold) || (p.max < t.threshold));
    let why = (!met).then(|| {
        let extra = match (count(t.counts, t.id), count(t.counts, t.against)) {
            (Some(x), Some(y)) => Some(extra_calls(x, y)),
            _ => None,
        };
        let fix = match (extra.as_deref(), settled) {
            // The fixes for extra calls are named with them (fcntl) or in `why` (item 2).
            (Some([_, ..]), _) => "",
            (_, Some(false)) => {
                " Fix: nothing in mptcp-net that this run can point to; more rounds on a \
                 quiet machine would settle the figure."
            }
            (_, Some(true)) => {
                " The gap holds in every round and is not in the system calls mptcp-net \
                 adds: a profile of both (perf record) would locate it."
            }
            _ => " Too few rounds to tell a real gap from noise: run the full harness.",
        };
        format!(
            "{}{}{}{}",
            t.why,
            evidence(t.figures, t.counts, t.id, t.against),
            noise_note(f, t.against, t.threshold),
            fix
        )
    });
    Some(Target {
        item: t.item,
        target: t.target,
        figure,
        shown,
        met,
        settled,
        why,
    })
}

const SAME_CALLS: &str = "mptcp-net's blocking dial is the raw loop's sequence (socket, \
    connect, one getsockopt for the status) plus its own user-space work (the resolved \
    address list, the policy lookup), which is the user CPU time difference below.";

const ASYNC: &str = "both loops run on the same tokio runtime; mptcp-net adds its dial's \
    user-space work and any system calls listed below.";

const TOKIO_VS_GO: &str = "raw MPTCP sockets on tokio fare about the same against Go (see \
    the table), so what separates tokio from Go here is the runtime, not mptcp-net: Go \
    spends more CPU per connection but overlaps its dialing and accepting goroutines better \
    on two cores, while tokio's worker threads wake each other through the reactor for \
    every connection. Nothing in mptcp-net to fix beyond its own per-dial work (the tokio \
    target).";

const SAME_DATA_PATH: &str = "the data path is the kernel's: the same read/write calls on \
    the same kind of socket, with nothing of mptcp-net in between (it returns the standard \
    stream types).";

fn fallback_why(results: &Results) -> String {
    let mut why = String::from(
        "with MPTCP disabled, each dial first asks for an MPTCP socket, which the kernel \
         allocates and initialises before refusing it with ENOPROTOOPT (mptcp_init_sock \
         checks net.mptcp.enabled), then opens a TCP one.",
    );
    if let (Some(sock), Some(plain)) = (
        &results.failing_socket,
        find(&results.fallback_sequential, "net-plain")
            .or_else(|| find(&results.fallback, "net-plain")),
    ) {
        let plain_us = 1e6 / plain.series.median;
        why.push_str(&format!(
            " That failing socket() alone costs {:.1} µs, {:.0}% of a plain TCP \
             dial+accept+close ({plain_us:.1} µs here).",
            sock.series.median / 1e3,
            sock.series.median / 1e3 / plain_us * 100.0
        ));
    }
    why.push_str(
        " The contract forbids caching ENOPROTOOPT for ever (the sysctl is per namespace \
         and may change), and Go pays the same (its MPTCP-on over MPTCP-off ratio is in \
         the table). Fix, in mptcp-net: remember ENOPROTOOPT for a short time (say 1 s) per \
         thread, since a thread changes namespace only through setns, so a busy dialer pays \
         the failing socket() once a second instead of on every dial; and document \
         MPTCP_NET=0 / `set_multipath_tcp(false)` for hosts known to run with MPTCP off.",
    );
    why
}

/// Every target the run has figures for.
pub fn judge(results: &Results) -> Vec<Target> {
    let mut out = Vec::new();
    let mut push = |t: Option<Target>| out.extend(t);

    // Each loopback connection target is judged twice: on the loop the issue
    // describes (two threads) and on the one-thread loop, which has a few
    // times less run-to-run spread.
    let loops = |item: u8| match item {
        1 => [
            (&results.connection_rate, ""),
            (&results.connection_rate_sequential, " (one thread)"),
        ],
        _ => [
            (&results.fallback, ""),
            (&results.fallback_sequential, " (one thread)"),
        ],
    };
    // Like with like: keep-alive is on by default in mptcp-net (as in Go), which
    // costs three setsockopt calls per dial; raw sockets and the `mptcp` crate set
    // none. So mptcp-net with keep-alive off meets raw and the crate, and the
    // default (on) meets raw plus the same three calls, and Go (which sets them
    // and TCP_KEEPCNT too).
    let item1: [(&str, &str, f64, &str, &str); 6] = [
        (
            "net-std-nokeepalive",
            "raw",
            0.97,
            "mptcp-net std, keep-alive off >= 0.97x raw MPTCP",
            SAME_CALLS,
        ),
        (
            "net-std",
            "raw-keepalive",
            0.97,
            "mptcp-net std (keep-alive on) >= 0.97x raw MPTCP + the same keep-alive calls",
            SAME_CALLS,
        ),
        (
            "net-tokio",
            "raw-tokio",
            0.97,
            "mptcp-net tokio >= 0.97x raw MPTCP on tokio",
            ASYNC,
        ),
        (
            "net-std",
            "go",
            1.0,
            "mptcp-net std (keep-alive on) >= 1.0x Go (keep-alive on)",
            "Go's dial is non-blocking and goes through its netpoller, with keep-alive \
             (four setsockopt calls, TCP_KEEPCNT included) and no-delay set on every socket.",
        ),
        (
            "net-tokio",
            "go",
            1.0,
            "mptcp-net tokio >= 1.0x Go",
            TOKIO_VS_GO,
        ),
        (
            "net-std-nokeepalive",
            "mptcp-crate",
            1.0,
            "mptcp-net std, keep-alive off >= 1.0x the `mptcp` crate (backlog raised)",
            "the crate's dial is the same socket+connect, and its status check costs two \
             getsockopt calls to mptcp-net's one.",
        ),
    ];
    for (id, against, threshold, target, why) in item1 {
        for (figures, suffix) in loops(1) {
            push(ratio_target(RatioTarget {
                item: 1,
                figures,
                counts: &results.syscalls_per_connection,
                id,
                against,
                threshold,
                target: format!("{target}{suffix}"),
                why,
            }));
        }
    }
    let fallback = fallback_why(results);
    for (figures, suffix) in loops(2) {
        push(ratio_target(RatioTarget {
            item: 2,
            figures,
            counts: &results.syscalls_per_connection_fallback,
            id: "net-std",
            against: "net-plain",
            threshold: 0.95,
            target: format!("fallback: mptcp-net default >= 0.95x mptcp-net plain TCP{suffix}"),
            why: &fallback,
        }));
    }
    for (id, name, against, limit) in [
        ("net-std", "std", "raw", "raw MPTCP"),
        ("net-tokio", "tokio", "raw-tokio", "raw MPTCP on tokio"),
    ] {
        push(ratio_target(RatioTarget {
            item: 3,
            figures: &results.bulk,
            counts: &[],
            id,
            against,
            threshold: 0.97,
            target: format!("bulk: mptcp-net {name} >= 0.97x {limit}"),
            why: SAME_DATA_PATH,
        }));
    }

    let testnet = &results.testnet;
    let median = |id: &str| find(testnet, id).map(|f| (f.series.median, f.series.show(2)));
    if let Some((v, shown)) = median("mptcp_share_of_links") {
        out.push(Target {
            item: 4,
            target: "MPTCP >= 0.9x the sum of the link rates".into(),
            figure: v,
            shown,
            met: v >= 0.9,
            settled: None,
            why: (v < 0.9).then(|| {
                "the receiver counts payload (goodput): TCP/IP and MPTCP option headers, \
                 the tbf shapers and slow start at the beginning of each act take their \
                 share of the raw link rate; a longer act would amortise slow start."
                    .to_string()
            }),
        });
    }
    if let Some((v, shown)) = median("mptcp_over_tcp") {
        out.push(Target {
            item: 4,
            target: "MPTCP >= 1.8x TCP".into(),
            figure: v,
            shown,
            met: v >= 1.8,
            settled: None,
            why: (v < 1.8).then(|| {
                "MPTCP did not fill the second path as fully as TCP fills one (see the \
                 share of the link rates)."
                    .to_string()
            }),
        });
    }
    if let Some((v, shown)) = median("failover_stall_ms") {
        out.push(Target {
            item: 4,
            target: "failover stall <= 1 s".into(),
            figure: v,
            shown: format!("{shown} ms"),
            met: v <= 1000.0,
            settled: None,
            why: (v > 1000.0).then(|| {
                "the kernel path manager does not react to a link going down: data in \
                 flight on the dead subflow is re-injected on the other one only after that \
                 subflow's retransmission timer fires."
                    .to_string()
            }),
        });
    }

    for (id, name) in [
        ("mptcp_status", "`mptcp_status()`"),
        ("mptcp_info", "`mptcp_info()`"),
    ] {
        if let Some(c) = count(&results.syscalls_per_call, id) {
            let met = (c.total - 1.0).abs() < 0.05;
            out.push(Target {
                item: 5,
                target: format!("{name}: one system call per call (MPTCP on)"),
                figure: c.total,
                shown: format!("{:.2} ({})", c.total, c.breakdown()),
                met,
                settled: None,
                why: (!met).then(|| format!("{name} makes {}", c.breakdown())),
            });
        }
    }
    out
}
