//! `perf`: the runner (`perf run`) and the measured loops (`perf worker ...`,
//! started by the runner inside fresh network namespaces).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use mptcp_perf::driver::{self, Options};
use mptcp_perf::{bulk, calls, conn};

const USAGE: &str = "\
usage:
  perf run [--go PATH] [--bench-exe PATH] [--out DIR] [--items 1,2,3,4,5] [--runs N] [--connections N]
           [--bulk-seconds S] [--demo-runs N] [--demo-seconds S] [--quiet-wait SECS] [--quick]
  perf render [DIR]             rewrite DIR/RESULTS.md (default perf/) from DIR/results.json
  perf worker conn  IMPL N      IMPL: net-std net-tokio net-plain raw raw-tokio mptcp-crate
                                      mptcp-crate-as-shipped tcp
  perf worker conn-seq IMPL N   the same loop in one thread
  perf worker bulk  IMPL SECS   IMPL: net-std net-tokio raw tcp
  perf worker calls FUNC K      FUNC: multipath_tcp mptcp_status mptcp_info subflows
                                      mptcp_status_on_tcp mptcp_crate_status raw_tcp_is_mptcp";

/// A worker that hangs is stopped here, before the runner's own limit.
const WORKER_LIMIT: Duration = Duration::from_secs(140);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("render") => render(&args[1..]),
        Some("worker") => worker(&args[1..]),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("perf: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse<T: std::str::FromStr>(flag: &str, value: Option<&String>) -> Result<T, String> {
    value
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{flag} needs a valid value\n{USAGE}"))
}

fn run(args: &[String]) -> Result<(), String> {
    let perf_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut opts = Options::full(perf_dir.join("target/go/mptcp-perf-go"), perf_dir.clone());
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let s = &mut opts.settings;
        match flag.as_str() {
            "--go" => opts.go = parse(flag, it.next())?,
            "--bench-exe" => opts.bench_exe = Some(parse(flag, it.next())?),
            "--out" => opts.out_dir = parse(flag, it.next())?,
            "--runs" => s.runs = parse(flag, it.next())?,
            "--connections" => s.connections = parse(flag, it.next())?,
            "--bulk-seconds" => s.bulk_seconds = parse(flag, it.next())?,
            "--demo-runs" => s.demo_runs = parse(flag, it.next())?,
            "--demo-seconds" => s.demo_seconds = parse(flag, it.next())?,
            "--quiet-wait" => {
                opts.quiet_wait = Duration::from_secs(parse(flag, it.next())?);
            }
            "--items" => {
                let list: String = parse(flag, it.next())?;
                opts.items = list
                    .split(',')
                    .map(|i| i.trim().parse().map_err(|_| format!("bad item {i:?}")))
                    .collect::<Result<_, _>>()?;
            }
            "--quick" => {
                s.runs = 2;
                s.connections = 2_000;
                s.bulk_seconds = 0.5;
                s.demo_runs = 1;
                s.demo_seconds = 2;
                s.syscall_calls = 1_000;
                s.syscall_connections = 200;
                s.as_shipped_connections = 20;
            }
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    if opts.settings.runs == 0 || opts.settings.connections == 0 {
        return Err("--runs and --connections must be at least 1".into());
    }
    let results = driver::run(&opts).map_err(|e| e.to_string())?;
    for t in &results.targets {
        eprintln!(
            "{:<8} {} : {}",
            if t.met { "MET" } else { "MISSED" },
            t.target,
            t.shown
        );
    }
    for e in &results.errors {
        eprintln!("not measured: {e}");
    }
    eprintln!("whole run: {:.0} s", results.wall_seconds);
    Ok(())
}

/// Rewrites `RESULTS.md` from `results.json` (after a change to the report's
/// wording; the figures and the targets' verdicts are those of the run).
fn render(args: &[String]) -> Result<(), String> {
    let dir = args
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let json = std::fs::read_to_string(dir.join("results.json")).map_err(|e| e.to_string())?;
    let results: mptcp_perf::report::Results =
        serde_json::from_str(&json).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("RESULTS.md"), results.markdown()).map_err(|e| e.to_string())
}

fn worker(args: &[String]) -> Result<(), String> {
    std::thread::spawn(|| {
        std::thread::sleep(WORKER_LIMIT);
        eprintln!("perf worker: still running after {WORKER_LIMIT:?}, giving up");
        std::process::exit(3);
    });
    let (kind, name, value) = match args {
        [kind, name, value] => (kind.as_str(), name.as_str(), value),
        _ => return Err(USAGE.to_string()),
    };
    let json = match kind {
        "conn" | "conn-seq" => {
            let imp = conn::ConnImpl::from_name(name).ok_or(USAGE)?;
            let shape = if kind == "conn" {
                conn::Shape::Threads
            } else {
                conn::Shape::Sequential
            };
            let r = conn::run(imp, parse("N", Some(value))?, shape).map_err(|e| e.to_string())?;
            serde_json::to_string(&r)
        }
        "bulk" => {
            let imp = bulk::BulkImpl::from_name(name).ok_or(USAGE)?;
            let secs: f64 = parse("SECS", Some(value))?;
            let r = bulk::run(imp, Duration::from_secs_f64(secs)).map_err(|e| e.to_string())?;
            serde_json::to_string(&r)
        }
        "calls" => {
            let r = calls::run(name, parse("K", Some(value))?).map_err(|e| e.to_string())?;
            serde_json::to_string(&r)
        }
        _ => return Err(USAGE.to_string()),
    };
    println!("{}", json.map_err(|e| e.to_string())?);
    Ok(())
}
