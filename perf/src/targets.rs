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

/// What the run measured of two implementations, side by side: time, CPU
/// and system calls per connection.
fn evidence(figures: &[Figure], counts: &[SyscallCount], a: &str, b: &str) -> String {
    let mut out = String::new();
    if let (Some(x), Some(y)) = (find(figures, a), find(figures, b)) {
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
    if let (Some(x), Some(y)) = (count(counts, a), count(counts, b)) {
        out.push_str(&format!(
            " System calls: {a} {:.1} ({}), {b} {:.1} ({}).",
            x.total,
            x.breakdown(),
            y.total,
            y.breakdown()
        ));
    }
    out
}

/// Said when the round-by-round range reaches the threshold: the miss is
/// then within this machine's run-to-run noise.
fn noise_note(f: &Figure, against: &str, threshold: f64) -> String {
    match f.ratio(against).and_then(|r| r.per_round.as_ref()) {
        Some(p) if p.max >= threshold => format!(
            " The rounds range from {:.3}x to {:.3}x: the threshold is inside this run's \
             round-to-round noise, so the median alone does not settle it; more rounds on a \
             quiet machine would.",
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
    let why = (!met).then(|| {
        format!(
            "{}{}{}",
            t.why,
            evidence(t.figures, t.counts, t.id, t.against),
            noise_note(f, t.against, t.threshold)
        )
    });
    Some(Target {
        item: t.item,
        target: t.target,
        figure,
        shown,
        met,
        why,
    })
}

const SAME_CALLS: &str = "mptcp-net's blocking dial makes the raw loop's system calls \
    (socket, connect, one getsockopt for the status; counts below) and its own user-space \
    work (the resolved address list, the policy lookup) is the difference in user CPU time \
    below, under a microsecond per connection; the rest is kernel time, where both do the \
    same. What remains of the gap is run-to-run noise (two threads handing connections to \
    each other on two shared cores), not work mptcp-net could drop.";

const ASYNC_FCNTL: &str = "mptcp-net's `dial_async` opens a blocking socket and then makes \
    it non-blocking (fcntl F_GETFL + F_SETFL: two more system calls per dial) where the raw \
    loop asks for SOCK_NONBLOCK in socket() itself. Fix, in mptcp-net: create the dial_async \
    socket with SOCK_NONBLOCK (socket2 `Type::STREAM.nonblocking()`).";

const TOKIO_VS_GO: &str = "mptcp-net on tokio is at the level of raw MPTCP sockets on tokio \
    (see that ratio), so the gap to Go is tokio's, not mptcp-net's: Go spends more CPU per \
    connection but overlaps the dialing and the accepting goroutines better on two cores, \
    while tokio's two worker threads wake each other through the reactor for every \
    connection. Fixes: in mptcp-net, the two fcntl calls per dial (see the tokio target); \
    beyond that, the runtime (a current-thread runtime was slower still here).";

const SAME_DATA_PATH: &str = "the data path is the kernel's: the same read/write calls on \
    the same kind of socket, with nothing of mptcp-net in between (it returns the standard \
    stream types); a gap is run-to-run noise.";

const FALLBACK: &str = "with MPTCP disabled, each dial first asks for an MPTCP socket: the \
    kernel allocates a socket and its inode before refusing with ENOPROTOOPT, then a TCP \
    socket is opened (one extra, failing socket() per dial). The contract forbids caching \
    ENOPROTOOPT for ever (the sysctl is per namespace and may change); Go pays the same \
    price (its MPTCP-on vs MPTCP-off ratio is in the table). Fix, in mptcp-net: remember \
    ENOPROTOOPT for a short time per network namespace (keyed by the namespace's inode, \
    which costs less than the failing socket()), or document that hosts known to run with \
    MPTCP off should set MPTCP_NET=0 or `set_multipath_tcp(false)`.";

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
    let item1: [(&str, &str, f64, &str, &str); 5] = [
        (
            "net-std",
            "raw",
            0.97,
            "mptcp-net std >= 0.97x raw MPTCP",
            SAME_CALLS,
        ),
        (
            "net-tokio",
            "raw-tokio",
            0.97,
            "mptcp-net tokio >= 0.97x raw MPTCP on tokio",
            ASYNC_FCNTL,
        ),
        (
            "net-std",
            "go",
            1.0,
            "mptcp-net std >= 1.0x Go",
            "Go's dial is non-blocking and goes through its netpoller, with keep-alive and \
             no-delay options set on every socket.",
        ),
        (
            "net-tokio",
            "go",
            1.0,
            "mptcp-net tokio >= 1.0x Go",
            TOKIO_VS_GO,
        ),
        (
            "net-std",
            "mptcp-crate",
            1.0,
            "mptcp-net std >= 1.0x the `mptcp` crate (backlog raised)",
            "the crate's dial is the same socket+connect, and its status check costs two \
             getsockopt calls to mptcp-net's one, so mptcp-net does strictly less work; a \
             gap is run-to-run noise.",
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
    for (figures, suffix) in loops(2) {
        push(ratio_target(RatioTarget {
            item: 2,
            figures,
            counts: &results.syscalls_per_connection_fallback,
            id: "net-std",
            against: "net-plain",
            threshold: 0.95,
            target: format!("fallback: mptcp-net default >= 0.95x mptcp-net plain TCP{suffix}"),
            why: FALLBACK,
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
                why: (!met).then(|| format!("{name} makes {}", c.breakdown())),
            });
        }
    }
    out
}
