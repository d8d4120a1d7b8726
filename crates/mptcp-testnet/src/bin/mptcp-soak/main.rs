//! `mptcp-soak`: the chaos soak runner (see the `soak` module of mptcp-testnet and
//! `scripts/soak`). It drives the real `mptcp` binary, given by `--mptcp PATH`, so
//! that this crate never depends on mptcp-cli.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mptcp_testnet::soak::{Action, Rng, Schedule, Side};
use mptcp_testnet::{Endpoints, TestNet};

mod daemons;
mod faults;
mod net;
mod report;
mod sink;
mod work;

use daemons::Daemons;

/// The command line.
#[derive(Debug, Clone)]
pub struct Args {
    pub mptcp: PathBuf,
    pub seconds: u64,
    pub seed: u64,
    pub concurrency: usize,
    pub min_size: u64,
    pub max_size: u64,
    pub rate_mbit: u32,
    pub json: bool,
    pub dir: PathBuf,
    /// Violations reported but not failing the run (`--tolerate NAME`).
    pub tolerate: Vec<String>,
    /// The schedule's MPTCP-strip episodes are left out (`--no-strip`).
    pub no_strip: bool,
    /// DSS checksums on both hosts (`--checksum`: `net.mptcp.checksum_enabled`).
    pub checksum: bool,
    /// `net.ipv4.tcp_rto_max_ms` on both hosts (`--rto-max-ms MS`), else the
    /// kernel's (120 s).
    pub rto_max_ms: Option<u64>,
    /// The proxies' `--idle-timeout` (`--idle-timeout SECS`).
    pub idle_timeout: Duration,
    /// `ss -tinM` and `mptcp conns --json` of both hosts every this many seconds
    /// into `sample-<s>.txt` (`--sample-every SECS`), for following connections
    /// through a run.
    pub sample_every: Option<u64>,
    /// The relays' `--notsent-lowat` (`--notsent-lowat BYTES`), else theirs.
    pub notsent_lowat: Option<u64>,
}

const USAGE: &str = "usage: mptcp-soak --mptcp PATH [--minutes N | --seconds N] [--seed S] \
[--concurrency N] [--min-size BYTES] [--max-size BYTES] [--rate-mbit N] [--dir DIR] [--json] \
[--tolerate OUTCOME]... [--no-strip] [--checksum] [--rto-max-ms MS] [--idle-timeout SECS] \
[--sample-every SECS] [--notsent-lowat BYTES] (OUTCOME: a JSON \
key, e.g. failed_with_path_up: reported, not fatal; --no-strip: the schedule's MPTCP-strip \
episodes change nothing; --checksum: DSS checksums on both hosts; --rto-max-ms: the \
longest TCP retransmission timeout on both hosts (net.ipv4.tcp_rto_max_ms); --idle-timeout: the \
proxies', default 20; --sample-every: every connection and subflow of both hosts (ss -tinM, \
then mptcp conns --json) every SECS seconds into sample-<s>.txt; --notsent-lowat: the four relays' \
--notsent-lowat, 0 for the kernel's default)";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        mptcp: PathBuf::new(),
        seconds: 60,
        seed: 1,
        concurrency: 200,
        min_size: 1024,
        max_size: 50 << 20,
        rate_mbit: 50,
        json: false,
        dir: PathBuf::new(),
        tolerate: Vec::new(),
        no_strip: false,
        checksum: false,
        rto_max_ms: None,
        idle_timeout: Duration::from_secs(20),
        sample_every: None,
        notsent_lowat: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--json" {
            args.json = true;
            continue;
        }
        if flag == "--no-strip" {
            args.no_strip = true;
            continue;
        }
        if flag == "--checksum" {
            args.checksum = true;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.into());
        }
        let value = it.next().ok_or(format!("{flag} needs a value\n{USAGE}"))?;
        let num = |v: &str| -> Result<u64, String> {
            v.parse::<u64>()
                .map_err(|_| format!("{flag} {v}: not a whole number\n{USAGE}"))
        };
        match flag.as_str() {
            "--mptcp" => args.mptcp = value.into(),
            "--dir" => args.dir = value.into(),
            "--tolerate" => args.tolerate.push(value),
            "--minutes" => {
                let m: f64 = value
                    .parse()
                    .map_err(|_| format!("--minutes {value}: not a number"))?;
                if !(m > 0.0 && m <= 24.0 * 60.0) {
                    return Err(format!("--minutes {value}: 0 to 1440"));
                }
                args.seconds = (m * 60.0).round().max(1.0) as u64;
            }
            "--seconds" => args.seconds = num(&value)?,
            "--seed" => args.seed = num(&value)?,
            "--concurrency" => args.concurrency = num(&value)? as usize,
            "--min-size" => args.min_size = num(&value)?,
            "--max-size" => args.max_size = num(&value)?,
            "--rate-mbit" => args.rate_mbit = num(&value)? as u32,
            "--idle-timeout" => args.idle_timeout = Duration::from_secs(num(&value)?),
            "--rto-max-ms" => {
                let ms = num(&value)?;
                if !(1000..=120_000).contains(&ms) {
                    return Err("--rto-max-ms: 1000 to 120000".into());
                }
                args.rto_max_ms = Some(ms);
            }
            "--notsent-lowat" => {
                let b = num(&value)?;
                if b > u64::from(u32::MAX) {
                    return Err("--notsent-lowat: at most 4294967295 bytes".into());
                }
                args.notsent_lowat = Some(b);
            }
            "--sample-every" => {
                let secs = num(&value)?;
                if !(5..=600).contains(&secs) {
                    return Err("--sample-every: 5 to 600 seconds".into());
                }
                args.sample_every = Some(secs);
            }
            _ => return Err(format!("unknown argument {flag}\n{USAGE}")),
        }
    }
    if args.mptcp.as_os_str().is_empty() {
        return Err(format!("--mptcp PATH is required\n{USAGE}"));
    }
    if !args.mptcp.is_file() {
        return Err(format!("--mptcp {}: no such file", args.mptcp.display()));
    }
    if args.seconds < 30 {
        return Err("a soak lasts at least 30 s".into());
    }
    if !(1..=2000).contains(&args.concurrency) {
        return Err("--concurrency: 1 to 2000".into());
    }
    if args.min_size == 0 || args.min_size > args.max_size || args.max_size > 1 << 34 {
        return Err("sizes: 1 <= --min-size <= --max-size <= 16 GiB".into());
    }
    if !(5..=600).contains(&args.idle_timeout.as_secs()) {
        return Err("--idle-timeout: 5 to 600 s".into());
    }
    if !(1..=10_000).contains(&args.rate_mbit) {
        return Err("--rate-mbit: 1 to 10000".into());
    }
    if args.dir.as_os_str().is_empty() {
        args.dir = std::env::temp_dir().join(format!("mptcp-soak-{}", std::process::id()));
    }
    Ok(args)
}

/// What happened when, as the runner did it: the classifier reads it.
#[derive(Debug, Default)]
pub struct Timeline {
    pub events: Vec<(Instant, Action)>,
}

impl Timeline {
    /// Intervals between a start action and its end (`end` + `grace`), or the end
    /// of the run when never ended.
    pub fn intervals(
        &self,
        start: fn(&Action) -> bool,
        end: fn(&Action) -> bool,
        grace: Duration,
        run_end: Instant,
    ) -> Vec<(Instant, Instant)> {
        let mut out = Vec::new();
        let mut open = None;
        for (at, action) in &self.events {
            if start(action) && open.is_none() {
                open = Some(*at);
            } else if end(action) {
                if let Some(s) = open.take() {
                    out.push((s, *at + grace));
                }
            }
        }
        if let Some(s) = open {
            out.push((s, run_end));
        }
        out
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mptcp-soak: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!(
                "mptcp-soak: FAILED (seed {}); replay with: scripts/soak --seconds {} --seed {} \
                 --concurrency {} --min-size {} --max-size {} --rate-mbit {} --idle-timeout {}{}{}{}; \
                 logs in {}",
                args.seed,
                args.seconds,
                args.seed,
                args.concurrency,
                args.min_size,
                args.max_size,
                args.rate_mbit,
                args.idle_timeout.as_secs(),
                if args.no_strip { " --no-strip" } else { "" },
                if args.checksum { " --checksum" } else { "" },
                args.rto_max_ms.map(|ms| format!(" --rto-max-ms {ms}")).unwrap_or_default(),
                args.dir.display()
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!(
                "mptcp-soak: cannot run (seed {}): {e}; logs in {}",
                args.seed,
                args.dir.display()
            );
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<bool, String> {
    std::fs::create_dir_all(&args.dir).map_err(|e| format!("{}: {e}", args.dir.display()))?;
    let schedule = Schedule::new(args.seed, Duration::from_secs(args.seconds), args.rate_mbit);
    eprintln!(
        "mptcp-soak: seed {}, {} s, {} workers, sizes {}..{} B, 3 x {} Mbit/s, {} scheduled events{}{}{}, logs in {}",
        args.seed,
        args.seconds,
        args.concurrency,
        args.min_size,
        args.max_size,
        args.rate_mbit,
        schedule.events.len(),
        if args.no_strip { " (strips left out)" } else { "" },
        if args.checksum { ", DSS checksums on" } else { "" },
        args.rto_max_ms.map(|ms| format!(", TCP RTO at most {ms} ms")).unwrap_or_default(),
        args.dir.display()
    );
    let tn = TestNet::builder()
        .paths(mptcp_testnet::soak::SOAK_PATHS)
        .rate_mbit(args.rate_mbit)
        .endpoints(Endpoints::None)
        .build()
        .map_err(|e| format!("cannot build the test network: {e}"))?;
    let mut net = net::SoakNet::new(tn, args.no_strip, args.checksum, args.rto_max_ms)?;
    // Absolute: the dumps run it inside the hosts' namespaces by its path.
    net.mptcp = Some(std::fs::canonicalize(&args.mptcp).unwrap_or_else(|_| args.mptcp.clone()));
    let sinks = sink::Sinks::start(&net)?;
    let mut daemons = Daemons::start(args, &net)?;
    let capture = net::Capture::start(&net, &args.dir)?;
    work::wait_ready(&net, &daemons)?;

    let stop_sampling = Arc::new(AtomicBool::new(false));
    let samples = daemons.start_sampler(Arc::clone(&stop_sampling));
    let scrape_before = daemons.scrape()?;
    let counters_before = kernel_counters(&net);
    let idle_fds_before = daemons.fd_counts();

    let start = Instant::now();
    let deadline = start + schedule.duration;
    let timeline = Arc::new(Mutex::new(Timeline::default()));
    let stats = work::Stats::new(start);
    let outsider = work::Outsider::default();
    let pause = work::Pause::default();
    let view = daemons.view();
    let warmup = Duration::from_secs(args.seconds / 4);
    let back_to_idle = back_to_idle_within(args.idle_timeout, &net);
    let mut quiet = None;
    let stop_counters = AtomicBool::new(false);
    let result = std::thread::scope(|s| -> Result<(), String> {
        let workers: Vec<_> = (0..args.concurrency)
            .map(|i| {
                let (net, stats, pause) = (&net, &stats, &pause);
                let mut rng = Rng::new(args.seed ^ (0xA5A5_0000 + i as u64).wrapping_mul(31));
                s.spawn(move || {
                    work::worker(args, net, stats, pause, &mut rng, start + warmup, deadline)
                })
            })
            .collect();
        let out_handle = s.spawn(|| outsider.run(&net, deadline));
        let quiet_handle = s.spawn(|| {
            quiet_point(
                &pause,
                &view,
                &idle_fds_before,
                start + warmup,
                args.concurrency,
                back_to_idle,
                deadline,
            )
        });
        let counters_handle = s.spawn(|| {
            counter_log(
                &net,
                &args.dir,
                start,
                args.sample_every.map(Duration::from_secs),
                &stop_counters,
            )
        });
        let fault_result = faults::run(&schedule, &net, &mut daemons, &timeline, start);
        for w in workers {
            let _ = w.join();
        }
        stop_counters.store(true, Ordering::SeqCst);
        let _ = counters_handle.join();
        let _ = out_handle.join();
        quiet = quiet_handle.join().ok();
        fault_result
    });
    let run_end = Instant::now();
    result?;
    // Idle again: connections the clients gave up on during a blackout can stay
    // open in the far daemons (no path told them) until the proxies' idle timeout,
    // or past it while their peer still acknowledges bytes; wait for them, at most
    // as long as at the quiet point, then take the last samples and scrape.
    let settle = Instant::now() + back_to_idle;
    let mut idle_fds_after = daemons.fd_counts();
    while Instant::now() < settle
        && idle_fds_after.iter().any(|(n, &a)| {
            daemons::holds_connections(n) && idle_fds_before.get(n).is_some_and(|&b| a > b)
        })
    {
        std::thread::sleep(Duration::from_secs(1));
        idle_fds_after = daemons.fd_counts();
    }
    std::thread::sleep(SETTLE_MEMORY);
    let idle_after = view.now();
    let _ = report::dump_ops(&stats, start, &args.dir);
    let scrape_after = daemons.scrape()?;
    let counters_moved = kernel_counters_moved(&net, &counters_before);
    stop_sampling.store(true, Ordering::SeqCst);
    let (endpoints_left, implicit_left) = daemons.stop_pm_and_list_endpoints(&net)?;
    let pm_types = (
        net.tn
            .client()
            .sysctl("net.mptcp.pm_type")
            .unwrap_or_default(),
        net.tn
            .server()
            .sysctl("net.mptcp.pm_type")
            .unwrap_or_default(),
    );
    let dials = capture.finish();
    daemons.stop_all();
    let trap = sinks.trap_accepts();
    let samples = samples.join().unwrap_or_default();
    let _ = report::dump_samples(&samples, start, &args.dir);
    let _ = report::dump_events(&timeline.lock().expect("timeline"), start, &args.dir);

    let ctx = report::Context {
        args,
        start,
        run_end,
        deadline,
        quiet: quiet.as_ref(),
        counters_moved,
        idle_after,
        timeline: &timeline.lock().expect("timeline"),
        stats: &stats,
        sinks: &sinks,
        samples: &samples,
        idle_fds_before,
        idle_fds_after,
        scrape_before,
        scrape_after,
        endpoints_left,
        implicit_left,
        pm_types,
        dials,
        trap,
        outsider: &outsider,
    };
    Ok(report::report(&ctx))
}

/// The client's and the server's kernel counters (`/proc/net/netstat`, `snmp`).
fn kernel_counters(net: &net::SoakNet) -> Vec<Option<mptcp_testnet::Counters>> {
    [net.tn.client(), net.tn.server()]
        .iter()
        .map(|h| h.netns().counters().ok())
        .collect()
}

/// Every second until `stop`, the MPTCP counters (`MPTcpExt`) that moved on each
/// host in that second, as JSON lines in `counters.jsonl` (`at`: seconds from the
/// start, `host`, then counter -> increase): when joins were refused, subflows reset
/// or fell back, next to `events.jsonl` and `ops.jsonl`, for the post-mortem of a
/// stall.
fn counter_log(
    net: &net::SoakNet,
    dir: &std::path::Path,
    start: Instant,
    sample_every: Option<Duration>,
    stop: &AtomicBool,
) {
    use std::io::Write;
    let path = dir.join("counters.jsonl");
    let file = match std::fs::File::create(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("mptcp-soak: cannot create {}: {e}", path.display());
            return;
        }
    };
    let mut out = std::io::LineWriter::new(file);
    let mut last = kernel_counters(net);
    let mut next_sample = sample_every.map(|_| start);
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_secs(1));
        let at = (start.elapsed().as_secs_f64() * 10.0).round() / 10.0;
        if let (Some(every), Some(next)) = (sample_every, next_sample) {
            if Instant::now() >= next {
                next_sample = Some(next + every);
                let path = dir.join(format!("sample-{}.txt", at.round() as u64));
                if let Err(e) = net.dump_sockets(&path) {
                    eprintln!("mptcp-soak: {e}");
                }
            }
        }
        let now = kernel_counters(net);
        for (host, moved) in counters_moved(&now, &last) {
            if moved.is_empty() {
                continue;
            }
            let mut line = serde_json::json!({"at": at, "host": host});
            for (name, v) in moved {
                line[name] = serde_json::json!(v);
            }
            let _ = writeln!(out, "{line}");
        }
        last = now;
    }
}

/// The MPTCP counters (`MPTcpExt`) that moved on each host since `before`, by host:
/// what the kernel saw (fallbacks, DSS mismatches, MP_FAILs, resets...), for the
/// post-mortem of a failed run.
fn kernel_counters_moved(
    net: &net::SoakNet,
    before: &[Option<mptcp_testnet::Counters>],
) -> BTreeMap<String, BTreeMap<String, u64>> {
    counters_moved(&kernel_counters(net), before)
}

/// The MPTCP counters that moved between two readings of [`kernel_counters`], by host
/// (a host missing from either reading is left out).
fn counters_moved(
    now: &[Option<mptcp_testnet::Counters>],
    before: &[Option<mptcp_testnet::Counters>],
) -> BTreeMap<String, BTreeMap<String, u64>> {
    ["client", "server"]
        .iter()
        .zip(now.iter().zip(before))
        .filter_map(|(host, (n, b))| {
            let delta = n.as_ref()?.delta(b.as_ref()?);
            let moved: BTreeMap<String, u64> = delta
                .non_zero()
                .filter(|(g, _, _)| *g == "MPTcpExt")
                .map(|(_, name, v)| (name.to_string(), v))
                .collect();
            Some((host.to_string(), moved))
        })
        .collect()
}

/// How long the daemons may take to close the connections they still hold once
/// the clients have stopped. A relay keeps a connection past its idle timeout
/// while its peer still acknowledges bytes: slowly after a blackout (up to two
/// idle timeouts), or from the MPTCP socket of a killed server proxy, which the
/// kernel keeps orphaned and taking data until `net.mptcp.close_timeout` after
/// the kill (60 s by default; the 60 s CI soak saw the reset come 61 s after it).
fn back_to_idle_within(idle_timeout: Duration, net: &net::SoakNet) -> Duration {
    let close_timeout = [net.tn.client(), net.tn.server()]
        .iter()
        .filter_map(|h| h.sysctl("net.mptcp.close_timeout").ok()?.parse().ok())
        .max()
        .unwrap_or(60);
    (idle_timeout * 2).max(Duration::from_secs(close_timeout)) + Duration::from_secs(5)
}

/// The daemons read idle after the warm-up (see [`work::Pause`]).
pub struct Quiet {
    /// Seconds after the start.
    pub at: f64,
    /// Every worker was waiting and every daemon back to its idle descriptors.
    pub idle: bool,
    /// Daemon name -> its pid and sample then.
    pub daemons: BTreeMap<String, (u32, daemons::Sample)>,
}

/// Once idle, the proxies free their copy buffers unused for 2 s (checked every
/// second): memory is read idle after this long.
const SETTLE_MEMORY: Duration = Duration::from_millis(3500);

/// At `warm` the workers are asked to pause; once all wait (120 s at most) and
/// every daemon holds no more descriptors than before the load (the proxies'
/// idle timeout and 5 s at most), the daemons are sampled [`SETTLE_MEMORY`] later
/// and the workers go on.
fn quiet_point(
    pause: &work::Pause,
    view: &daemons::View,
    idle_fds: &BTreeMap<String, u64>,
    warm: Instant,
    workers: usize,
    back_to_idle: Duration,
    deadline: Instant,
) -> Quiet {
    let start = Instant::now();
    while Instant::now() < warm.min(deadline) {
        std::thread::sleep(Duration::from_millis(50));
    }
    pause.request();
    let all_wait = Instant::now() + Duration::from_secs(120);
    while pause.waiting() < workers && Instant::now() < all_wait.min(deadline) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let workers_idle = pause.waiting() == workers;
    let fds_back = Instant::now() + back_to_idle;
    // The daemons holding more descriptors than before the load (connections).
    let busy = |now: &BTreeMap<String, (u32, daemons::Sample)>| -> Vec<String> {
        now.iter()
            .filter(|(n, (_, s))| {
                daemons::holds_connections(n) && idle_fds.get(*n).is_some_and(|&b| s.fds > b)
            })
            .map(|(n, (_, s))| format!("{n} {} fds", s.fds))
            .collect()
    };
    let mut now = view.now();
    while !busy(&now).is_empty() && Instant::now() < fds_back.min(deadline) {
        std::thread::sleep(Duration::from_millis(100));
        now = view.now();
    }
    // Judged before the settle: a path manager opens a netlink socket now and then,
    // and one sample after it could catch that.
    let busy = busy(&now);
    let idle = workers_idle && busy.is_empty();
    std::thread::sleep(SETTLE_MEMORY);
    now = view.now();
    eprintln!(
        "mptcp-soak: quiet point after the warm-up ({}; {} of {workers} workers paused{}): {}",
        if idle { "idle" } else { "NOT idle" },
        pause.waiting(),
        if busy.is_empty() {
            String::new()
        } else {
            format!("; not idle: {}", busy.join(", "))
        },
        now.iter()
            .map(|(n, (_, s))| format!("{n} {} kB", s.rss_kb))
            .collect::<Vec<_>>()
            .join(", ")
    );
    pause.release();
    Quiet {
        at: (Instant::now() - start).as_secs_f64(),
        idle,
        daemons: now,
    }
}

/// Per-daemon sample series keyed by daemon name, each a list of instances.
pub type Samples = BTreeMap<String, Vec<Vec<daemons::Sample>>>;

/// Which side a pm daemon name belongs to.
pub fn pm_name(side: Side) -> &'static str {
    match side {
        Side::Client => "pm-client",
        Side::Server => "pm-server",
    }
}
