//! One module per subcommand. Each has a `run` that takes its arguments and the
//! [`Output`], prints text or JSON, and returns the exit status.
//!
//! Each module owns its JSON shape: small `Serialize` structs with stable snake_case
//! field names (a field that has no value is left out, never `null`), rather than the libraries' own `Serialize` output, so a library
//! change cannot silently change what scripts read.

pub mod bench;
pub mod completions;
pub mod conns;
pub mod demo;
pub mod doctor;
pub mod endpoint;
pub mod exporter;
pub mod lb;
pub mod limits;
pub mod man;
pub mod monitor;
pub mod pm;
pub mod proxy;
pub mod run;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::cli::Command;
use crate::error::Error;
use crate::output::Output;

/// Runs `command`; the exit status on success.
pub fn run(command: Command, out: &Output) -> Result<u8, Error> {
    match command {
        Command::Doctor(args) => doctor::run(&args, out),
        Command::Endpoint(cmd) => endpoint::run(cmd, out),
        Command::Limits(cmd) => limits::run(cmd, out),
        Command::Monitor(args) => monitor::run(&args, out),
        Command::Conns(args) => conns::run(&args, out),
        Command::Bench(cmd) => bench::run(cmd, out),
        Command::Demo(args) => demo::run(&args, out),
        Command::Pm(cmd) => pm::run(cmd, out),
        Command::Lb(cmd) => lb::run(cmd, out),
        Command::Exporter(args) => exporter::run(&args, out),
        Command::Proxy(args) => proxy::run(&args, out),
        Command::Completions(args) => completions::run(&args, out),
        Command::Run(args) => run::run(&args, out),
        Command::Man(args) => man::run(&args, out),
    }
}

/// A flag raised by Ctrl-C (SIGINT), SIGTERM or SIGHUP (the terminal went away),
/// for the commands that run until stopped; they look at it at least every 200 ms
/// and end cleanly.
pub fn stop_flag() -> Result<Arc<AtomicBool>, Error> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    stop_flag_on(&[SIGINT, SIGTERM, SIGHUP])
}

/// [`stop_flag`] without SIGHUP, for a daemon that re-reads its configuration on
/// it (`mptcp lb run`). The `ctrlc` crate used before took SIGHUP as a stop too, so
/// a reload also stopped the balancer right after applying it.
pub fn stop_flag_without_hup() -> Result<Arc<AtomicBool>, Error> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    stop_flag_on(&[SIGINT, SIGTERM])
}

fn stop_flag_on(signals: &[i32]) -> Result<Arc<AtomicBool>, Error> {
    let flag = Arc::new(AtomicBool::new(false));
    for &sig in signals {
        signal_hook::flag::register(sig, Arc::clone(&flag))
            .map_err(|e| Error::msg(format!("cannot handle signal {sig}: {e}")))?;
    }
    Ok(flag)
}
