//! The targets, judged on the figures of one run.
//!
//! A miss carries its explanation: why, from what the run measured (system
//! call counts, ranges), and what would fix it.

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

/// The system call counts of two implementations side by side, as evidence.
fn syscall_evidence(results: &Results, a: &str, b: &str) -> String {
    let c = &results.syscalls_per_connection;
    match (count(c, a), count(c, b)) {
        (Some(x), Some(y)) => format!(
            " System calls per connection: {} {:.1} ({}) vs {} {:.1} ({}).",
            a,
            x.total,
            x.breakdown(),
            b,
            y.total,
            y.breakdown()
        ),
        _ => String::new(),
    }
}

/// Whether the round-by-round range straddles the threshold: then the miss is
/// within this machine's noise.
fn noise_note(f: &Figure, against: &str, threshold: f64) -> String {
    match f.ratio(against).and_then(|r| r.per_round.as_ref()) {
        Some(p) if p.max >= threshold => format!(
            " The rounds range from {:.3}x to {:.3}x, so the threshold is inside this \
             machine's run-to-run noise; more runs on a quiet machine would settle it.",
            p.min, p.max
        ),
        _ => String::new(),
    }
}

struct RatioTarget<'a> {
    item: u8,
    figures: &'a [Figure],
    id: &'a str,
    against: &'a str,
    threshold: f64,
    target: String,
    why: String,
}

fn ratio_target(results: &Results, t: RatioTarget<'_>) -> Option<Target> {
    let f = find(t.figures, t.id)?;
    let (figure, shown) = show_ratio(f, t.against)?;
    let met = figure >= t.threshold;
    let why = (!met).then(|| {
        let mut why = t.why.clone();
        why.push_str(&noise_note(f, t.against, t.threshold));
        if t.item == 1 {
            why.push_str(&syscall_evidence(results, t.id, t.against));
        }
        why
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

/// Every target the run has figures for.
pub fn judge(results: &Results) -> Vec<Target> {
    let conn = &results.connection_rate;
    let mut out = Vec::new();
    let mut push = |t: Option<Target>| out.extend(t);

    push(ratio_target(
        results,
        RatioTarget {
            item: 1,
            figures: conn,
            id: "net-std",
            against: "raw",
            threshold: 0.97,
            target: "mptcp-net std >= 0.97x raw MPTCP".into(),
            why: "mptcp-net's dial is the raw sequence (socket, connect; the status check is one \
              getsockopt) plus user-space work: address resolution into a Vec, the policy \
              lookup, the fallback plan."
                .into(),
        },
    ));
    push(ratio_target(
        results,
        RatioTarget {
            item: 1,
            figures: conn,
            id: "net-tokio",
            against: "raw-tokio",
            threshold: 0.97,
            target: "mptcp-net tokio >= 0.97x raw MPTCP on tokio".into(),
            why: "mptcp-net's async dial opens a blocking socket and then makes it \
              non-blocking (fcntl F_GETFL + F_SETFL: two system calls per dial) where the raw \
              loop asks for SOCK_NONBLOCK in the socket() call. Creating the socket \
              non-blocking in mptcp-net's dial_async would remove both."
                .into(),
        },
    ));
    for id in ["net-std", "net-tokio"] {
        let name = if id == "net-std" { "std" } else { "tokio" };
        push(ratio_target(
            results,
            RatioTarget {
                item: 1,
                figures: conn,
                id,
                against: "go",
                threshold: 1.0,
                target: format!("mptcp-net {name} >= 1.0x Go"),
                why: "Go's dial is non-blocking and goes through its netpoller; see the system \
                  call counts."
                    .into(),
            },
        ));
    }
    push(ratio_target(
        results,
        RatioTarget {
            item: 1,
            figures: conn,
            id: "net-std",
            against: "mptcp-crate",
            threshold: 1.0,
            target: "mptcp-net std >= 1.0x the `mptcp` crate".into(),
            why: "the crate's dial is the same socket+connect; its status check costs two \
              getsockopt calls to our one."
                .into(),
        },
    ));
    push(ratio_target(
        results,
        RatioTarget {
            item: 2,
            figures: &results.fallback,
            id: "net-std",
            against: "net-plain",
            threshold: 0.95,
            target: "fallback: mptcp-net default >= 0.95x mptcp-net plain TCP".into(),
            why: "each dial first asks for an MPTCP socket, which fails with ENOPROTOOPT, then \
              opens a TCP one: one extra socket() per dial. Caching ENOPROTOOPT for a short \
              time (it is per namespace and may change, so not for ever) would remove it."
                .into(),
        },
    ));
    for (id, name, against, limit) in [
        ("net-std", "std", "raw", "raw MPTCP"),
        ("net-tokio", "tokio", "raw-tokio", "raw MPTCP on tokio"),
    ] {
        push(ratio_target(
            results,
            RatioTarget {
                item: 3,
                figures: &results.bulk,
                id,
                against,
                threshold: 0.97,
                target: format!("bulk: mptcp-net {name} >= 0.97x {limit}"),
                why: "the data path is the kernel's: the same read/write calls on the same kind \
                  of socket, with nothing of mptcp-net in between."
                    .into(),
            },
        ));
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
                 the tbf shapers' bucket behaviour and slow start at the beginning of each \
                 5 s act take their share of the raw link rate."
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
                "MPTCP did not fill the second path as fully as TCP fills one: see the \
                 share of the link rates."
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
                target: format!("{name}: one system call per call"),
                figure: c.total,
                shown: format!("{:.2} ({})", c.total, c.breakdown()),
                met,
                why: (!met).then(|| format!("{name} makes {}", c.breakdown())),
            });
        }
    }
    out
}
