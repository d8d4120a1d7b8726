//! The runner: every scenario, interleaved, each loopback run a child process
//! in a fresh network namespace; then `results.json` and `RESULTS.md`.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mptcp_bench::demo::{self, DemoOptions};
use mptcp_testnet::Netns;

use crate::conn::{LoopResult, Shape};
use crate::report::{Figure, Machine, Ratio, Results, Settings, SyscallCount};
use crate::stats::Series;
use crate::{bulk::BulkResult, micro, sys};

/// Longest a child process may run before it is killed.
const CHILD_TIMEOUT: Duration = Duration::from_secs(150);

/// What to run and how much.
#[derive(Clone, Debug)]
pub struct Options {
    /// Counts and durations.
    pub settings: Settings,
    /// The Go peer (`perf/go`, built by `perf/core/run.sh`).
    pub go: PathBuf,
    /// The criterion bench binary (`benches/introspection.rs`, built by
    /// `perf/core/run.sh`); item 5's criterion part is skipped without it.
    pub bench_exe: Option<PathBuf>,
    /// Where `results.json` and `RESULTS.md` go.
    pub out_dir: PathBuf,
    /// Items to run (1-5); empty: all.
    pub items: Vec<u8>,
    /// Longest wait, before starting, for the 1-minute load average to drop
    /// below [`QUIET_LOAD`].
    pub quiet_wait: Duration,
}

/// A 1-minute load average below this counts as a quiet machine.
pub const QUIET_LOAD: f64 = 0.5;

/// Waits, at most `limit`, for other work on the machine to end.
fn wait_for_quiet(limit: Duration) {
    let start = Instant::now();
    let mut said = false;
    while loadavg()[0] >= QUIET_LOAD && start.elapsed() < limit {
        if !said {
            eprintln!(
                "waiting up to {limit:?} for the load average ({:.2}) to drop below {QUIET_LOAD}",
                loadavg()[0]
            );
            said = true;
        }
        std::thread::sleep(Duration::from_secs(5));
    }
}

impl Options {
    /// The full run of the issue: 7 rounds (the issue asks for at least 5; a
    /// single 20k-connection run varies by about 10% on a 2-core machine, so
    /// more rounds steady the medians), 20k connections, 2 s bulk, 5 demo
    /// runs.
    pub fn full(go: PathBuf, out_dir: PathBuf) -> Options {
        Options {
            settings: Settings {
                runs: 7,
                connections: 20_000,
                bulk_seconds: 2.0,
                demo_runs: 5,
                demo_seconds: 5,
                demo_rate_mbit: 100,
                syscall_calls: 10_000,
                syscall_connections: 1_000,
                as_shipped_connections: 50,
            },
            go,
            bench_exe: None,
            out_dir,
            items: Vec::new(),
            quiet_wait: Duration::from_secs(120),
        }
    }

    fn wants(&self, item: u8) -> bool {
        self.items.is_empty() || self.items.contains(&item)
    }
}

/// Who runs a loop: a mode of this binary, or the Go peer.
#[derive(Clone, Copy, Debug)]
enum Program {
    /// `perf worker <kind> <name> ...`
    Rust(&'static str),
    /// `mptcp-perf-go <mode> -mptcp=<bool> ...`
    Go { mptcp: bool },
}

#[derive(Clone, Copy, Debug)]
struct Contender {
    id: &'static str,
    label: &'static str,
    program: Program,
    /// Fewer connections than the others, for one that is too slow.
    max_connections: Option<u64>,
}

const fn rust(id: &'static str, label: &'static str) -> Contender {
    Contender {
        id,
        label,
        program: Program::Rust(id),
        max_connections: None,
    }
}

const GO_MPTCP: Contender = Contender {
    id: "go",
    label: "Go `net`, SetMultipathTCP(true)",
    program: Program::Go { mptcp: true },
    max_connections: None,
};

const GO_PLAIN: Contender = Contender {
    id: "go-plain",
    label: "Go `net`, SetMultipathTCP(false)",
    program: Program::Go { mptcp: false },
    max_connections: None,
};

/// The implementations also measured in one thread ([`Shape::Sequential`]):
/// those the tight (3%, 5%, 1.0x) targets compare.
const SEQUENTIAL: [&str; 8] = [
    "net-std",
    "net-std-nokeepalive",
    "net-tokio",
    "raw",
    "raw-keepalive",
    "raw-tokio",
    "go",
    "mptcp-crate",
];

/// Runs everything `opts` asks for and writes the results.
pub fn run(opts: &Options) -> io::Result<Results> {
    wait_for_quiet(opts.quiet_wait);
    let started = Instant::now();
    let mut results = Results {
        settings: opts.settings.clone(),
        machine: machine(opts),
        ..Results::default()
    };
    let s = &opts.settings;
    if opts.wants(1) {
        let item = Instant::now();
        eprintln!("== 1. connection rate on loopback");
        let contenders = [
            rust("net-std", "mptcp-net std (keep-alive on, the default)"),
            rust(
                "net-std-nokeepalive",
                "mptcp-net std, keep-alive off (the calls of raw and the crate)",
            ),
            rust("net-tokio", "mptcp-net tokio"),
            rust("raw", "raw MPTCP (libc, blocking)"),
            rust(
                "raw-keepalive",
                "raw MPTCP + the keep-alive options mptcp-net sets (3 setsockopt)",
            ),
            rust(
                "raw-tokio",
                "raw MPTCP on tokio (libc sockets + the keep-alive calls, tokio I/O)",
            ),
            GO_MPTCP,
            rust(
                "mptcp-crate",
                "the `mptcp` crate 0.1.5 (listener backlog raised to 4096)",
            ),
            Contender {
                max_connections: Some(s.as_shipped_connections),
                ..rust(
                    "mptcp-crate-as-shipped",
                    "the `mptcp` crate 0.1.5 as shipped (backlog 0)",
                )
            },
            rust("tcp", "plain TCP (std)"),
        ];
        let refs = [
            "raw",
            "raw-keepalive",
            "raw-tokio",
            "go",
            "mptcp-crate",
            "tcp",
        ];
        results.connection_rate =
            conn_figures(opts, &contenders, true, Shape::Threads, &mut results.errors);
        add_ratios(&mut results.connection_rate, &refs);
        let precise: Vec<Contender> = contenders
            .iter()
            .filter(|c| SEQUENTIAL.contains(&c.id))
            .copied()
            .collect();
        results.connection_rate_sequential =
            conn_figures(opts, &precise, true, Shape::Sequential, &mut results.errors);
        add_ratios(&mut results.connection_rate_sequential, &refs);
        results.syscalls_per_connection =
            syscalls_per_connection(opts, &contenders, true, &mut results.errors);
        results
            .seconds
            .push(("1".into(), item.elapsed().as_secs_f64()));
    }
    if opts.wants(2) {
        let item = Instant::now();
        eprintln!("== 2. fallback cost (net.mptcp.enabled=0)");
        let contenders = [
            rust("net-std", "mptcp-net, default policy (MPTCP, falls back)"),
            rust("net-plain", "mptcp-net, set_multipath_tcp(false)"),
            GO_MPTCP,
            GO_PLAIN,
        ];
        let refs = ["net-plain", "go", "go-plain"];
        results.fallback = conn_figures(
            opts,
            &contenders,
            false,
            Shape::Threads,
            &mut results.errors,
        );
        add_ratios(&mut results.fallback, &refs);
        results.fallback_sequential = conn_figures(
            opts,
            &contenders[..2],
            false,
            Shape::Sequential,
            &mut results.errors,
        );
        add_ratios(&mut results.fallback_sequential, &refs);
        results.syscalls_per_connection_fallback =
            syscalls_per_connection(opts, &contenders, false, &mut results.errors);
        match failing_socket(opts) {
            Ok(f) => results.failing_socket = Some(f),
            Err(e) => results.errors.push(format!("failing MPTCP socket(): {e}")),
        }
        results
            .seconds
            .push(("2".into(), item.elapsed().as_secs_f64()));
    }
    if opts.wants(3) {
        let item = Instant::now();
        eprintln!("== 3. bulk throughput on loopback");
        results.bulk = bulk_figures(opts, &mut results.errors);
        add_ratios(&mut results.bulk, &["raw", "raw-tokio", "tcp"]);
        results
            .seconds
            .push(("3".into(), item.elapsed().as_secs_f64()));
    }
    if opts.wants(4) {
        let item = Instant::now();
        eprintln!("== 4. two paths x {} Mbit/s", s.demo_rate_mbit);
        results.testnet = testnet_figures(opts, &mut results.errors);
        results
            .seconds
            .push(("4".into(), item.elapsed().as_secs_f64()));
    }
    if opts.wants(5) {
        let item = Instant::now();
        eprintln!("== 5. micro-benchmarks");
        match criterion(opts) {
            Ok(figures) => results.micro = figures,
            Err(e) => results.errors.push(format!("criterion: {e}")),
        }
        // Calls against the raw getsockopt; the parsers do no system call.
        let calls = results
            .micro
            .iter()
            .take_while(|f| micro::group_of(&f.id) == Some(micro::GROUP_CALLS))
            .count();
        add_ratios(&mut results.micro[..calls], &["raw_tcp_is_mptcp"]);
        results.syscalls_per_call = syscalls_per_call(opts, &mut results.errors);
        results
            .seconds
            .push(("5".into(), item.elapsed().as_secs_f64()));
    }
    results.targets = crate::targets::judge(&results);
    results.machine.load_after = loadavg();
    note_load();
    results.machine.load_max = LOAD_MAX.lock().map_or(f64::NAN, |m| *m);
    results.wall_seconds = started.elapsed().as_secs_f64();
    write(&opts.out_dir, &results)?;
    Ok(results)
}

fn write(dir: &Path, results: &Results) -> io::Result<()> {
    let json = serde_json::to_string_pretty(results).map_err(io::Error::other)?;
    std::fs::write(dir.join("results.json"), json + "\n")?;
    std::fs::write(dir.join("RESULTS.md"), results.markdown())?;
    eprintln!(
        "wrote {} and {}",
        dir.join("results.json").display(),
        dir.join("RESULTS.md").display()
    );
    Ok(())
}

/// A fresh namespace for one run: loopback only, the whole port range for the
/// client (20k connections leave up to 20k sockets in TIME_WAIT).
fn fresh_netns(label: &str, mptcp: bool) -> io::Result<Netns> {
    let ns = Netns::new(label).map_err(io::Error::other)?;
    ns.set_sysctl("net.ipv4.ip_local_port_range", "1024 65535")
        .map_err(io::Error::other)?;
    ns.set_sysctl("net.mptcp.enabled", if mptcp { "1" } else { "0" })
        .map_err(io::Error::other)?;
    Ok(ns)
}

/// `program args` inside `ns`, with the MPTCP policy variables cleared so every
/// implementation runs at its built-in default.
fn command(ns: &Netns, opts: &Options, c: Contender, args: &[String]) -> io::Result<Command> {
    let mut cmd = match c.program {
        Program::Rust(_) => ns.command(std::env::current_exe()?),
        Program::Go { .. } => ns.command(&opts.go),
    };
    cmd.args(args).env_remove("MPTCP_NET").env_remove("GODEBUG");
    Ok(cmd)
}

/// Runs `cmd` to completion within [`CHILD_TIMEOUT`]; its stdout.
fn output(mut cmd: Command) -> io::Result<String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{cmd:?} ran over {CHILD_TIMEOUT:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output()?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "{cmd:?} failed ({status}): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn last_json<T: serde::de::DeserializeOwned>(stdout: &str) -> io::Result<T> {
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .map_err(|e| io::Error::other(format!("bad worker output {line:?}: {e}")))
}

/// Arguments of the connection loop for `c`, `n` connections.
fn conn_args(c: Contender, n: u64, shape: Shape) -> Vec<String> {
    let seq = shape == Shape::Sequential;
    match c.program {
        Program::Rust(name) => vec![
            "worker".into(),
            if seq { "conn-seq" } else { "conn" }.into(),
            name.into(),
            n.to_string(),
        ],
        Program::Go { mptcp } => vec![
            "conn".into(),
            format!("-n={n}"),
            format!("-mptcp={mptcp}"),
            format!("-seq={seq}"),
        ],
    }
}

/// Rounds of `one(contender)`, every contender once per round, odd rounds in
/// reverse order; the runs of each contender in round order.
fn rounds<T>(
    contenders: &[Contender],
    runs: usize,
    errors: &mut Vec<String>,
    what: &str,
    mut one: impl FnMut(Contender) -> io::Result<T>,
) -> Vec<(Contender, Vec<T>)> {
    let mut out: Vec<(Contender, Vec<T>)> = contenders.iter().map(|c| (*c, Vec::new())).collect();
    for round in 0..runs {
        note_load();
        let mut order: Vec<usize> = (0..contenders.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let c = contenders[i];
            match one(c) {
                Ok(v) => out[i].1.push(v),
                Err(e) => {
                    eprintln!("   {} {}: {e}", what, c.id);
                    errors.push(format!("{what}, {} (round {round}): {e}", c.id));
                }
            }
        }
    }
    out
}

fn conn_figures(
    opts: &Options,
    contenders: &[Contender],
    mptcp: bool,
    shape: Shape,
    errors: &mut Vec<String>,
) -> Vec<Figure> {
    let what = match (mptcp, shape) {
        (true, Shape::Threads) => "conn",
        (true, Shape::Sequential) => "conn-seq",
        (false, Shape::Threads) => "fallback",
        (false, Shape::Sequential) => "fallback-seq",
    };
    let runs = rounds(contenders, opts.settings.runs, errors, what, |c| {
        let n = c.max_connections.map_or(opts.settings.connections, |m| {
            m.min(opts.settings.connections)
        });
        let ns = fresh_netns(what, mptcp)?;
        // `ip netns exec` execs the program, so the child's CPU time is the loop's
        // (plus its start-up, small next to 20k connections).
        let cpu_before = sys::children_cpu();
        let args = conn_args(c, n, shape);
        let r: LoopResult = last_json(&output(command(&ns, opts, c, &args)?)?)?;
        let cpu_after = sys::children_cpu();
        let per_conn = |a: f64, b: f64| (b - a) * 1e6 / n as f64;
        let cpu = (
            per_conn(cpu_before.0, cpu_after.0),
            per_conn(cpu_before.1, cpu_after.1),
        );
        // A lost handshake costs a 1 s SYN retransmission: count them, so a
        // slow run is explained.
        let counters = ns.counters().map_err(io::Error::other)?;
        let syns = counters.get("TcpExt", "TCPSynRetrans").unwrap_or(0);
        eprintln!(
            "   {:<24} {:>9.0} conn/s  CPU user {:.1} us, system {:.1} us per connection, \
             {syns} SYN retransmissions",
            c.id,
            r.rate(),
            cpu.0,
            cpu.1
        );
        Ok((r, syns, cpu))
    });
    runs.into_iter()
        .filter_map(|(c, rs)| {
            let active: u64 = rs.iter().map(|(r, _, _)| r.active).sum();
            let total: u64 = rs.iter().map(|(r, _, _)| r.count).sum();
            let median = |f: &dyn Fn(&(f64, f64)) -> f64| {
                Series::new(rs.iter().map(|(_, _, cpu)| f(cpu)).collect()).map(|s| s.median)
            };
            Some(Figure {
                id: c.id.into(),
                label: c.label.into(),
                unit: "connections/s".into(),
                series: Series::new(rs.iter().map(|(r, _, _)| r.rate()).collect())?,
                mptcp_on: format!("{active}/{total}"),
                syn_retransmissions: Some(rs.iter().map(|(_, s, _)| s).sum()),
                cpu_us_per_op: Some((median(&|c| c.0)?, median(&|c| c.1)?)),
                ratios: Vec::new(),
            })
        })
        .collect()
}

/// Calls of the failing `socket(IPPROTO_MPTCP)` per run.
const FAILING_SOCKET_CALLS: u64 = 200_000;

/// The cost of the failing `socket(IPPROTO_MPTCP)` with `net.mptcp.enabled=0`,
/// ns per call, over `runs` runs.
fn failing_socket(opts: &Options) -> io::Result<Figure> {
    let c = rust("failing_mptcp_socket", "failing `socket(IPPROTO_MPTCP)`");
    let mut runs = Vec::new();
    for _ in 0..opts.settings.runs {
        let ns = fresh_netns("failing-socket", false)?;
        let args = [
            "worker".to_string(),
            "calls".into(),
            c.id.into(),
            FAILING_SOCKET_CALLS.to_string(),
        ];
        let r: LoopResult = last_json(&output(command(&ns, opts, c, &args)?)?)?;
        runs.push(r.secs * 1e9 / r.count as f64);
    }
    Ok(Figure {
        id: c.id.into(),
        label: c.label.into(),
        unit: "ns/call".into(),
        series: Series::new(runs).ok_or_else(|| io::Error::other("no runs"))?,
        mptcp_on: "no".into(),
        syn_retransmissions: None,
        cpu_us_per_op: None,
        ratios: Vec::new(),
    })
}

fn bulk_figures(opts: &Options, errors: &mut Vec<String>) -> Vec<Figure> {
    let contenders = [
        rust("net-std", "mptcp-net std"),
        rust("net-tokio", "mptcp-net tokio"),
        rust("raw", "raw MPTCP (libc read/write, blocking)"),
        rust(
            "raw-tokio",
            "raw MPTCP on tokio (libc sockets + the keep-alive calls, tokio I/O)",
        ),
        rust("tcp", "plain TCP (std)"),
    ];
    let secs = opts.settings.bulk_seconds;
    let runs = rounds(&contenders, opts.settings.runs, errors, "bulk", |c| {
        let ns = fresh_netns("bulk", true)?;
        let args = vec![
            "worker".into(),
            "bulk".into(),
            c.id.into(),
            secs.to_string(),
        ];
        let r: BulkResult = last_json(&output(command(&ns, opts, c, &args)?)?)?;
        eprintln!("   {:<24} {:>6.2} Gbit/s", c.id, r.gbit_per_s());
        Ok(r)
    });
    runs.into_iter()
        .filter_map(|(c, rs)| {
            let active = rs.iter().filter(|r| r.active).count();
            Some(Figure {
                id: c.id.into(),
                label: c.label.into(),
                unit: "Gbit/s".into(),
                series: Series::new(rs.iter().map(BulkResult::gbit_per_s).collect())?,
                mptcp_on: format!("{active}/{}", rs.len()),
                syn_retransmissions: None,
                cpu_us_per_op: None,
                ratios: Vec::new(),
            })
        })
        .collect()
}

/// Adds, to every figure, its ratio to each reference present.
fn add_ratios(figures: &mut [Figure], refs: &[&str]) {
    let references: Vec<Figure> = figures
        .iter()
        .filter(|f| refs.contains(&f.id.as_str()))
        .cloned()
        .collect();
    for f in figures.iter_mut() {
        for r in &references {
            if r.id == f.id {
                continue;
            }
            let per_round = (f.series.runs.len() == r.series.runs.len())
                .then(|| {
                    Series::new(
                        f.series
                            .runs
                            .iter()
                            .zip(&r.series.runs)
                            .map(|(a, b)| a / b)
                            .collect(),
                    )
                })
                .flatten();
            f.ratios.push(Ratio {
                against: r.id.clone(),
                of_medians: f.series.median / r.series.median,
                per_round,
            });
        }
    }
}

fn testnet_figures(opts: &Options, errors: &mut Vec<String>) -> Vec<Figure> {
    let s = &opts.settings;
    let demo_opts = DemoOptions {
        paths: 2,
        rate_mbit: s.demo_rate_mbit,
        seconds: s.demo_seconds,
        interval: Duration::from_secs(1),
    };
    let mut reports = Vec::new();
    for i in 0..s.demo_runs {
        match demo::run(&demo_opts, None, &mut |_| {}) {
            Ok(r) => {
                eprintln!(
                    "   run {i}: TCP {:.1} Mbit/s, MPTCP {:.1} Mbit/s, stall {:.0} ms{}",
                    r.tcp.mbit_per_s,
                    r.mptcp.mbit_per_s,
                    r.failover_stall_ms,
                    if r.ok() { "" } else { " (problems)" }
                );
                for p in &r.problems {
                    errors.push(format!("test network run {i}: {p}"));
                }
                reports.push(r);
            }
            Err(e) => errors.push(format!("test network run {i}: {e}")),
        }
    }
    let mptcp_on = format!(
        "{}/{}",
        reports.iter().filter(|r| r.mptcp.mptcp_stayed_on).count(),
        reports.len()
    );
    let figure = |id: &str, label: &str, unit: &str, f: &dyn Fn(&demo::DemoReport) -> f64| {
        Some(Figure {
            id: id.into(),
            label: label.into(),
            unit: unit.into(),
            series: Series::new(reports.iter().map(f).collect())?,
            mptcp_on: mptcp_on.clone(),
            syn_retransmissions: None,
            cpu_us_per_op: None,
            ratios: Vec::new(),
        })
    };
    [
        figure("tcp_mbit", "TCP throughput", "Mbit/s", &|r| {
            r.tcp.mbit_per_s
        }),
        figure("mptcp_mbit", "MPTCP throughput", "Mbit/s", &|r| {
            r.mptcp.mbit_per_s
        }),
        figure("mptcp_over_tcp", "MPTCP / TCP", "ratio", &|r| {
            r.mptcp_over_tcp
        }),
        figure(
            "mptcp_share_of_links",
            "MPTCP / sum of link rates",
            "ratio",
            &|r| r.mptcp_share_of_links,
        ),
        figure("failover_stall_ms", "failover stall", "ms", &|r| {
            r.failover_stall_ms
        }),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Runs the criterion benches in a fresh namespace and reads their samples.
fn criterion(opts: &Options) -> io::Result<Vec<Figure>> {
    let exe = opts.bench_exe.as_ref().ok_or_else(|| {
        io::Error::other("no bench binary: run perf/core/run.sh, or pass --bench-exe")
    })?;
    let home = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("criterion");
    let ns = fresh_netns("criterion", true)?;
    let mut cmd = ns.command(exe);
    // What `cargo bench` passes to a bench binary.
    cmd.arg("--bench").env("CRITERION_HOME", &home);
    output(cmd)?;
    micro::BENCHES
        .iter()
        .map(|(group, id, label)| {
            let path = home.join(group).join(id).join("new").join("sample.json");
            let text = std::fs::read_to_string(&path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            let sample: Sample = serde_json::from_str(&text).map_err(io::Error::other)?;
            let per_iter = sample
                .iters
                .iter()
                .zip(&sample.times)
                .map(|(i, t)| t / i)
                .collect();
            Ok(Figure {
                id: (*id).into(),
                label: (*label).into(),
                unit: "ns/call".into(),
                series: Series::new(per_iter)
                    .ok_or_else(|| io::Error::other(format!("{}: no samples", path.display())))?,
                mptcp_on: if *group == micro::GROUP_CALLS {
                    "yes".into()
                } else {
                    "".into()
                },
                syn_retransmissions: None,
                cpu_us_per_op: None,
                ratios: Vec::new(),
            })
        })
        .collect()
}

/// criterion's `sample.json`.
#[derive(serde::Deserialize)]
struct Sample {
    iters: Vec<f64>,
    times: Vec<f64>,
}

/// `strace -f -c` of `args` in a fresh namespace: calls by system call name.
fn strace(
    opts: &Options,
    c: Contender,
    args: &[String],
    mptcp: bool,
) -> io::Result<BTreeMap<String, u64>> {
    let ns = fresh_netns("strace", mptcp)?;
    let file = std::env::temp_dir().join(format!("mptcp-perf-strace-{}", std::process::id()));
    let program = match c.program {
        Program::Rust(_) => std::env::current_exe()?,
        Program::Go { .. } => opts.go.clone(),
    };
    let mut cmd = ns.command("strace");
    cmd.args(["-f", "-c", "-o"])
        .arg(&file)
        .arg(program)
        .args(args)
        .env_remove("MPTCP_NET")
        .env_remove("GODEBUG");
    output(cmd)?;
    let text = std::fs::read_to_string(&file)?;
    let _ = std::fs::remove_file(&file);
    Ok(parse_strace_summary(&text))
}

/// Calls by name from `strace -c`'s table (the `total` row left out).
pub fn parse_strace_summary(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let name = *cols.last()?;
            let calls = cols.get(3)?.parse::<u64>().ok()?;
            (name != "total").then(|| (name.to_string(), calls))
        })
        .collect()
}

/// Per operation: (counts at `2k` - counts at `k`) / `k`.
fn per_op(
    id: &str,
    label: &str,
    k: u64,
    run: impl Fn(u64) -> io::Result<BTreeMap<String, u64>>,
) -> io::Result<SyscallCount> {
    let small = run(k)?;
    let large = run(2 * k)?;
    let mut by_name = BTreeMap::new();
    for (name, n) in &large {
        let d = (*n as f64 - *small.get(name).unwrap_or(&0) as f64) / k as f64;
        if d >= 0.01 {
            by_name.insert(name.clone(), d);
        }
    }
    Ok(SyscallCount {
        id: id.into(),
        label: label.into(),
        total: by_name.values().sum(),
        by_name,
    })
}

/// System calls per connection of each contender (those run at full count).
fn syscalls_per_connection(
    opts: &Options,
    contenders: &[Contender],
    mptcp: bool,
    errors: &mut Vec<String>,
) -> Vec<SyscallCount> {
    contenders
        .iter()
        .filter(|c| c.max_connections.is_none())
        .filter_map(|c| {
            per_op(c.id, c.label, opts.settings.syscall_connections, |n| {
                strace(opts, *c, &conn_args(*c, n, Shape::Threads), mptcp)
            })
            .map_err(|e| errors.push(format!("syscalls per connection, {}: {e}", c.id)))
            .ok()
        })
        .collect()
}

fn syscalls_per_call(opts: &Options, errors: &mut Vec<String>) -> Vec<SyscallCount> {
    let k = opts.settings.syscall_calls;
    let mut rust_fn = |id: &'static str, label: &'static str| {
        let c = rust(id, label);
        per_op(id, label, k, |k| {
            strace(
                opts,
                c,
                &["worker".into(), "calls".into(), id.into(), k.to_string()],
                true,
            )
        })
        .map_err(|e| errors.push(format!("syscalls per call, {id}: {e}")))
        .ok()
    };
    let mut out: Vec<SyscallCount> = [
        rust_fn("multipath_tcp", "`multipath_tcp()` (MPTCP on)"),
        rust_fn("mptcp_status", "`mptcp_status()` (MPTCP on)"),
        rust_fn("mptcp_info", "`mptcp_info()` (MPTCP on)"),
        rust_fn("subflows", "`subflows()` (MPTCP on, 1 subflow)"),
        rust_fn("mptcp_status_on_tcp", "`mptcp_status()` on plain TCP"),
        rust_fn(
            "mptcp_crate_status",
            "peer: the `mptcp` crate's `mptcp_status()`",
        ),
        rust_fn("raw_tcp_is_mptcp", "peer: raw `getsockopt(TCP_IS_MPTCP)`"),
    ]
    .into_iter()
    .flatten()
    .collect();
    match per_op("go_multipath_tcp", "peer: Go's `MultipathTCP()`", k, |k| {
        strace(
            opts,
            GO_MPTCP,
            &["status".into(), format!("-k={k}"), "-mptcp=true".into()],
            true,
        )
    }) {
        Ok(c) => out.push(c),
        Err(e) => errors.push(format!("syscalls per call, Go: {e}")),
    }
    out
}

/// The highest 1-minute load average seen at the start of a round.
static LOAD_MAX: std::sync::Mutex<f64> = std::sync::Mutex::new(0.0);

fn note_load() {
    if let Ok(mut max) = LOAD_MAX.lock() {
        *max = max.max(loadavg()[0]);
    }
}

fn loadavg() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(f64::NAN));
    [
        it.next().unwrap_or(f64::NAN),
        it.next().unwrap_or(f64::NAN),
        it.next().unwrap_or(f64::NAN),
    ]
}

fn stdout_of(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn machine(opts: &Options) -> Machine {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let repo = manifest
        .parent()
        .unwrap_or(manifest)
        .to_string_lossy()
        .into_owned();
    let mut commit = stdout_of("git", &["-C", &repo, "rev-parse", "--short", "HEAD"]);
    if !stdout_of(
        "git",
        &[
            "-C",
            &repo,
            "status",
            "--porcelain",
            "--",
            "crates",
            "perf/src",
            "perf/benches",
            "perf/go",
        ],
    )
    .is_empty()
    {
        commit.push_str(" (with uncommitted changes)");
    }
    let lock = std::fs::read_to_string(manifest.join("Cargo.lock")).unwrap_or_default();
    let crates = [
        "mptcp",
        "mptcp-net",
        "tokio",
        "socket2",
        "libc",
        "criterion",
    ]
    .iter()
    .filter_map(|name| Some((name.to_string(), locked_version(&lock, name)?)))
    .collect();
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into()),
        rustc: stdout_of("rustc", &["--version"]),
        go: stdout_of(&opts.go.to_string_lossy(), &["version"]),
        crates,
        commit,
        date: stdout_of("date", &["-u", "+%Y-%m-%d %H:%M:%S"]),
        load_before: loadavg(),
        load_after: [0.0; 3],
        load_max: 0.0,
    }
}

/// The version of `name` in a `Cargo.lock`.
fn locked_version(lock: &str, name: &str) -> Option<String> {
    let needle = format!("name = \"{name}\"\n");
    let at = lock.find(&needle)? + needle.len();
    let line = lock[at..].lines().next()?;
    Some(
        line.strip_prefix("version = ")?
            .trim_matches('"')
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strace_table() {
        let text = "% time     seconds  usecs/call     calls    errors syscall\n\
                    ------ ----------- ----------- --------- --------- ----------------\n \
                    60.00    0.000600           3       200           getsockopt\n \
                    40.00    0.000400           4       100        10 socket\n\
                    ------ ----------- ----------- --------- --------- ----------------\n\
                    100.00    0.001000           3       300        10 total\n";
        let m = parse_strace_summary(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m["getsockopt"], 200);
        assert_eq!(m["socket"], 100);
    }

    #[test]
    fn lock_versions() {
        let lock = "[[package]]\nname = \"mptcp\"\nversion = \"0.1.5\"\n";
        assert_eq!(locked_version(lock, "mptcp").as_deref(), Some("0.1.5"));
        assert_eq!(locked_version(lock, "tokio"), None);
    }
}
