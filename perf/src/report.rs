//! What a run found: `perf/results.json` (serde) and `perf/RESULTS.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::stats::Series;

/// Everything one run of the harness measured.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Results {
    /// Where and with what it ran.
    pub machine: Machine,
    /// Counts and durations used.
    pub settings: Settings,
    /// Item 1: connections per second on loopback.
    pub connection_rate: Vec<Figure>,
    /// Item 1, the same loop in one thread: the precise instrument.
    pub connection_rate_sequential: Vec<Figure>,
    /// Item 1: system calls per connection, by implementation.
    pub syscalls_per_connection: Vec<SyscallCount>,
    /// Item 2: connections per second with `net.mptcp.enabled=0`.
    pub fallback: Vec<Figure>,
    /// Item 2, the same loop in one thread.
    pub fallback_sequential: Vec<Figure>,
    /// Item 2: system calls per connection with `net.mptcp.enabled=0`.
    pub syscalls_per_connection_fallback: Vec<SyscallCount>,
    /// Item 2: what the failing `socket(IPPROTO_MPTCP)` costs, ns per call.
    pub failing_socket: Option<Figure>,
    /// Item 3: one connection's throughput on loopback, Gbit/s.
    pub bulk: Vec<Figure>,
    /// Item 4: the two-path test network.
    pub testnet: Vec<Figure>,
    /// Item 5: criterion, nanoseconds per call.
    pub micro: Vec<Figure>,
    /// Item 5: system calls per call.
    pub syscalls_per_call: Vec<SyscallCount>,
    /// Every target, met or not.
    pub targets: Vec<Target>,
    /// What could not be measured, and why.
    pub errors: Vec<String>,
    /// Wall time of the whole run, seconds.
    pub wall_seconds: f64,
    /// Wall time of each item, seconds.
    pub seconds: Vec<(String, f64)>,
}

/// The machine, the software, the moment.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model (`/proc/cpuinfo`).
    pub cpu: String,
    /// Cores available to this process.
    pub cores: usize,
    /// `uname -r`.
    pub kernel: String,
    /// `rustc --version`.
    pub rustc: String,
    /// Go's `runtime.Version()` of the Go peer.
    pub go: String,
    /// Versions of the Rust crates measured or measuring, from `perf/Cargo.lock`.
    pub crates: BTreeMap<String, String>,
    /// `git rev-parse --short HEAD` of the workspace (with `-dirty` when it has changes).
    pub commit: String,
    /// UTC start time.
    pub date: String,
    /// `/proc/loadavg` (1, 5, 15 minutes) before the first measurement.
    pub load_before: [f64; 3],
    /// The same after the last.
    pub load_after: [f64; 3],
    /// The highest 1-minute load average seen at the start of a round.
    pub load_max: f64,
}

/// Counts and durations of this run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Settings {
    /// Runs per figure (items 1-4).
    pub runs: usize,
    /// Connections per connection-rate run.
    pub connections: u64,
    /// Seconds of sending per bulk run.
    pub bulk_seconds: f64,
    /// Runs of the test-network demo.
    pub demo_runs: usize,
    /// Seconds per demo act.
    pub demo_seconds: u64,
    /// Rate of each of the two test-network paths, Mbit/s.
    pub demo_rate_mbit: u32,
    /// Calls per syscall-count run (the difference between two runs).
    pub syscall_calls: u64,
    /// Connections per syscall-count run (the difference between two runs).
    pub syscall_connections: u64,
    /// Connections per run for the `mptcp` crate's listener as shipped: with
    /// a lost handshake (1 s) every few connections, 20k would take hours.
    pub as_shipped_connections: u64,
}

/// One measured quantity of one implementation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Figure {
    /// Stable key, e.g. `net-std`.
    pub id: String,
    /// What was measured, for people.
    pub label: String,
    /// Unit of the series.
    pub unit: String,
    /// The runs.
    pub series: Series,
    /// How many runs (connections) had MPTCP on, e.g. `20000/20000`.
    pub mptcp_on: String,
    /// SYN retransmissions in the runs' namespaces, all runs together (each is
    /// a handshake that waited 1 s); loopback connection loops only.
    pub syn_retransmissions: Option<u64>,
    /// Median user and system CPU microseconds per operation (client and
    /// server together); loopback connection loops only.
    pub cpu_us_per_op: Option<(f64, f64)>,
    /// This figure over others'.
    pub ratios: Vec<Ratio>,
}

/// `figure / reference`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ratio {
    /// The reference's id.
    pub against: String,
    /// Median over median.
    pub of_medians: f64,
    /// Run-by-run ratios of the same round (runs are interleaved).
    pub per_round: Option<Series>,
}

/// System calls per operation, from `strace -c`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SyscallCount {
    /// Stable key.
    pub id: String,
    /// What was counted.
    pub label: String,
    /// All system calls per operation.
    pub total: f64,
    /// Per system call name, per operation (those at or above 0.01).
    pub by_name: BTreeMap<String, f64>,
}

impl SyscallCount {
    /// `getsockopt 1, socket 1, ...`, most frequent first.
    pub fn breakdown(&self) -> String {
        let mut v: Vec<_> = self.by_name.iter().collect();
        v.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
        v.iter()
            .map(|(n, c)| format!("{n} {}", trim(**c)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A number with at most two decimals, without trailing zeros.
fn trim(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// One target of the issue, next to its figure.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Target {
    /// Item number (1-5).
    pub item: u8,
    /// The target, e.g. `mptcp-net std >= 0.97x raw`.
    pub target: String,
    /// The figure it is judged on.
    pub figure: f64,
    /// The figure as shown.
    pub shown: String,
    /// Met or missed.
    pub met: bool,
    /// For a ratio: whether every round fell on the same side of the threshold
    /// (`false`: the threshold is within the run-to-run noise).
    pub settled: Option<bool>,
    /// For a miss: why, and what would fix it.
    pub why: Option<String>,
}

impl Figure {
    /// The ratio against `id`, if computed.
    pub fn ratio(&self, id: &str) -> Option<&Ratio> {
        self.ratios.iter().find(|r| r.against == id)
    }
}

/// The references of item 1's tables.
const ITEM1_REFS: [(&str, &str); 5] = [
    ("raw", "raw"),
    ("raw-tokio", "raw on tokio"),
    ("go", "Go"),
    ("mptcp-crate", "mptcp crate"),
    ("tcp", "plain TCP"),
];

fn table(out: &mut String, head: &[&str], rows: Vec<Vec<String>>) {
    let _ = writeln!(out, "| {} |", head.join(" | "));
    let _ = writeln!(out, "|{}", head.iter().map(|_| "---|").collect::<String>());
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out.push('\n');
}

fn ratio_cell(f: &Figure, against: &str) -> String {
    match f.ratio(against) {
        None => "".into(),
        Some(r) => match &r.per_round {
            Some(p) => format!("{:.3}x [{:.3}-{:.3}]", r.of_medians, p.min, p.max),
            None => format!("{:.3}x", r.of_medians),
        },
    }
}

fn figure_table(out: &mut String, figures: &[Figure], refs: &[(&str, &str)], digits: usize) {
    let Some(first) = figures.first() else {
        out.push_str("(not measured)\n\n");
        return;
    };
    let unit = format!("{} median [min-max]", first.unit);
    let syns = figures.iter().any(|f| f.syn_retransmissions.is_some());
    let mut head = vec!["implementation", unit.as_str(), "MPTCP on"];
    if syns {
        head.push("SYN retransmits");
    }
    let cpu = figures.iter().any(|f| f.cpu_us_per_op.is_some());
    if cpu {
        head.push("CPU µs/conn user + system");
    }
    let ratio_heads: Vec<String> = refs.iter().map(|(_, h)| format!("vs {h}")).collect();
    head.extend(ratio_heads.iter().map(String::as_str));
    let rows = figures
        .iter()
        .map(|f| {
            let mut row = vec![f.label.clone(), f.series.show(digits), f.mptcp_on.clone()];
            if syns {
                row.push(
                    f.syn_retransmissions
                        .map_or(String::new(), |n| n.to_string()),
                );
            }
            if cpu {
                row.push(
                    f.cpu_us_per_op
                        .map_or(String::new(), |(u, s)| format!("{u:.1} + {s:.1}")),
                );
            }
            row.extend(refs.iter().map(|(id, _)| {
                if *id == f.id {
                    "1 (ref)".into()
                } else {
                    ratio_cell(f, id)
                }
            }));
            row
        })
        .collect();
    table(out, &head, rows);
}

fn syscall_table(out: &mut String, counts: &[SyscallCount], what: &str) {
    if counts.is_empty() {
        out.push_str("(not measured)\n\n");
        return;
    }
    let head = ["what", what, "breakdown"];
    let rows = counts
        .iter()
        .map(|c| vec![c.label.clone(), trim(c.total), c.breakdown()])
        .collect();
    table(out, &head, rows);
}

impl Results {
    /// `perf/RESULTS.md`.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let s = &self.settings;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# Performance: mptcp-net side by side with raw syscalls, Go, the `mptcp` crate and plain TCP\n"
        );
        out.push_str(
            "Written by `perf/core/run.sh` (root; see perf/README.md). Benchmarks, not tests: nothing here \
             gates CI. Every figure is a median [min-max] of runs taken side by side in this one \
             run; the implementations are interleaved round by round (odd rounds in reverse order) \
             so drift hits all alike, and every loopback run is its own process in a fresh network \
             namespace. Ratios are median over median, with the range of the round-by-round ratios \
             in brackets.\n\n",
        );
        let crates = m
            .crates
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(out, "| | |\n|---|---|");
        let _ = writeln!(out, "| date (UTC) | {} |", m.date);
        let _ = writeln!(out, "| machine | {}, {} cores |", m.cpu, m.cores);
        let _ = writeln!(out, "| kernel | {} |", m.kernel);
        let _ = writeln!(out, "| Rust | {} |", m.rustc);
        let _ = writeln!(out, "| Go | {} |", m.go);
        let _ = writeln!(out, "| crates | {crates} |");
        let _ = writeln!(out, "| workspace commit | {} |", m.commit);
        let _ = writeln!(
            out,
            "| load average before / highest seen / after | {:.2} {:.2} {:.2} / {:.2} / {:.2} {:.2} {:.2} |",
            m.load_before[0],
            m.load_before[1],
            m.load_before[2],
            m.load_max,
            m.load_after[0],
            m.load_after[1],
            m.load_after[2]
        );
        let _ = writeln!(
            out,
            "| settings | {} runs; {} connections per run; bulk {} s per run; test network {} runs of {} s acts, 2 paths x {} Mbit/s |",
            s.runs, s.connections, s.bulk_seconds, s.demo_runs, s.demo_seconds, s.demo_rate_mbit
        );
        let items = self
            .seconds
            .iter()
            .map(|(i, t)| format!("{i}: {t:.0} s"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            out,
            "| whole run | {:.0} s (items {items}; building not included) |\n",
            self.wall_seconds
        );
        // The harness itself keeps both cores busy (load about 2); more than
        // that at a round's start means someone else was working too.
        if m.load_before[0] > 1.0 || m.load_max > 2.5 {
            out.push_str(
                "**Note:** the machine was not quiet (load average above); other work competed for \
                 the two cores, so absolute figures are low and ranges wide. The ratios are less \
                 affected, since the runs are interleaved.\n\n",
            );
        }

        out.push_str(
            "## Targets\n\n\"Within noise\": the round-by-round ratios fall on both sides of \
             the threshold, so another run on this machine may flip the result.\n\n",
        );
        let rows = self
            .targets
            .iter()
            .map(|t| {
                vec![
                    t.item.to_string(),
                    t.target.clone(),
                    t.shown.clone(),
                    format!(
                        "{}{}",
                        if t.met { "MET" } else { "**MISSED**" },
                        if t.settled == Some(false) {
                            " (within noise)"
                        } else {
                            ""
                        }
                    ),
                ]
            })
            .collect();
        table(&mut out, &["item", "target", "figure", "result"], rows);
        let misses: Vec<&Target> = self.targets.iter().filter(|t| !t.met).collect();
        if !misses.is_empty() {
            out.push_str("### Why each miss, and what would fix it\n\n");
            for t in misses {
                let _ = writeln!(
                    out,
                    "- **{}** ({}): {}\n",
                    t.target,
                    t.shown,
                    t.why.as_deref().unwrap_or("no explanation recorded")
                );
            }
        }
        if !self.errors.is_empty() {
            out.push_str("### Not measured\n\n");
            for e in &self.errors {
                let _ = writeln!(out, "- {e}");
            }
            out.push('\n');
        }

        let _ = writeln!(
            out,
            "## 1. Connection rate on loopback\n\n{} sequential connections per run: dial, accept \
             (one accepting thread, task or goroutine), one status check on the client \
             (`multipath_tcp()`, Go's `MultipathTCP()`, the crate's `mptcp_status()`, \
             `getsockopt(TCP_IS_MPTCP)` for raw and plain TCP), close both. Every listener has \
             Go's backlog, 4096 (std's 128 lets a briefly descheduled accepting thread cost a \
             lost handshake and a 1 s SYN retransmission); the `mptcp` crate is measured with \
             that too, and as shipped (backlog 0) on {} connections per run. The blocking \
             implementations are judged against raw blocking sockets, the tokio ones against \
             raw sockets driven by tokio (an async dial needs reactor round trips a blocking \
             one does not; the blocking ratio is shown too). CPU time is the child \
             process's (client and server), from `getrusage`.\n",
            s.connections,
            s.as_shipped_connections.min(s.connections)
        );
        figure_table(&mut out, &self.connection_rate, &ITEM1_REFS, 0);
        out.push_str(
            "The same loop in one thread (dial, check, close; accept, close; no hand-off \
             between threads, so a few times less spread from run to run): the instrument the \
             tight targets are also judged with.\n\n",
        );
        // Plain TCP is not run in one thread: no target compares with it there.
        figure_table(
            &mut out,
            &self.connection_rate_sequential,
            &ITEM1_REFS[..4],
            0,
        );
        let _ = writeln!(
            out,
            "System calls per connection (client and server together; `strace -f -c`, the \
             difference of two runs of {} and {} connections, divided by the difference):\n",
            s.syscall_connections,
            2 * s.syscall_connections
        );
        syscall_table(&mut out, &self.syscalls_per_connection, "per connection");
        out.push_str(
            "`strace -f` counts every thread: Go's `nanosleep` and `futex` are mostly its \
             runtime's background threads.\n\n",
        );

        out.push_str(
            "## 2. Fallback cost: `net.mptcp.enabled=0`\n\nThe same loop in a namespace where \
             MPTCP sockets cannot be created. mptcp-net's default policy asks for an MPTCP socket \
             on each dial (ENOPROTOOPT is per namespace and may change, so it is not cached) and \
             falls back; `set_multipath_tcp(false)` goes straight to TCP.\n\n",
        );
        let refs = [
            ("net-plain", "mptcp-net plain TCP"),
            ("go", "Go MPTCP on"),
            ("go-plain", "Go MPTCP off"),
        ];
        figure_table(&mut out, &self.fallback, &refs, 0);
        out.push_str("The same loop in one thread:\n\n");
        figure_table(&mut out, &self.fallback_sequential, &refs, 0);
        out.push_str("System calls per connection with `net.mptcp.enabled=0`:\n\n");
        syscall_table(
            &mut out,
            &self.syscalls_per_connection_fallback,
            "per connection",
        );
        if let Some(f) = &self.failing_socket {
            let _ = writeln!(
                out,
                "The extra, failing `socket(IPPROTO_MPTCP)` (ENOPROTOOPT) alone: {} ns per call \
                 (median [min-max] of {} runs of a loop of such calls in a namespace with \
                 `net.mptcp.enabled=0`).\n",
                f.series.show(0),
                f.series.runs.len()
            );
        }

        let _ = writeln!(
            out,
            "## 3. Bulk throughput of one connection on loopback\n\nThe sender writes 128 KiB \
             blocks for {} s; the receiver's bytes over its time from accept to EOF.\n",
            s.bulk_seconds
        );
        figure_table(
            &mut out,
            &self.bulk,
            &[
                ("raw", "raw MPTCP"),
                ("raw-tokio", "raw on tokio"),
                ("tcp", "plain TCP"),
            ],
            2,
        );

        let _ = writeln!(
            out,
            "## 4. Two paths x {} Mbit/s (mptcp-testnet, `mptcp_bench::demo::run`)\n\nEach run: one \
             TCP transfer, one MPTCP transfer over both paths, then an MPTCP transfer with path 0 \
             cut at the client a third of the way in; the stall is the longest gap the receiver \
             saw.\n",
            s.demo_rate_mbit
        );
        figure_table(&mut out, &self.testnet, &[], 2);

        out.push_str(
            "## 5. Micro-benchmarks (criterion)\n\nPer call, on an established loopback MPTCP \
             connection (status and introspection) or on bytes the kernel returned (parsers). \
             Median [min-max] of criterion's samples; the ratio is time over the raw \
             getsockopt's time (below 1 is faster).\n\n",
        );
        figure_table(
            &mut out,
            &self.micro,
            &[("raw_tcp_is_mptcp", "raw getsockopt")],
            1,
        );
        let _ = writeln!(
            out,
            "System calls per call (`strace -f -c`, the difference of runs of {} and {} calls):\n",
            s.syscall_calls,
            2 * s.syscall_calls
        );
        syscall_table(&mut out, &self.syscalls_per_call, "per call");
        out.push_str(
            "`strace -f` counts every thread: the `nanosleep` and `futex` calls in Go's rows are \
             its runtime's background threads (sysmon), which tick with time, not per call.\n",
        );
        out
    }
}
