//! `mptcp`, the operator's tool for Linux Multipath TCP.
//!
//! A thin binary over the workspace's libraries (`mptcp-net`, `mptcp-netlink`): it
//! parses the command line ([`cli`]), sets up diagnostics on stderr, enters the
//! network namespace of `--netns`, runs one subcommand ([`cmd`]) and maps the outcome
//! to an exit status ([`error`]). Presentation lives in [`output`]; everything else
//! is the libraries' job.

mod args;
mod cli;
mod cmd;
mod error;
mod netns;
mod output;
mod preload;
mod privilege;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::error::{Error, EXIT_ERROR, EXIT_OK};

/// What `mptcp --version` prints after the name, and `mptcp doctor` at the top of its
/// report: the version, the git commit it was built from, the compiler, the target and
/// the cargo features built in (from `build.rs`), so a bug report says exactly which
/// binary ran.
pub(crate) const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("MPTCP_BUILD_COMMIT"),
    ", rustc ",
    env!("MPTCP_BUILD_RUSTC"),
    ", ",
    env!("MPTCP_BUILD_TARGET"),
    "; features: ",
    env!("MPTCP_BUILD_FEATURES"),
    ")"
);

fn main() -> ExitCode {
    let mut cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version: print them as clap does, status 0.
            let _ = e.print();
            return ExitCode::from(EXIT_OK);
        }
        Err(e) => {
            error::report(&e.render().to_string());
            return ExitCode::from(EXIT_ERROR);
        }
    };
    init_tracing(cli.global.verbose);
    // The exporter enters its namespaces from one thread each; every other command
    // runs in one namespace, entered here before any thread or socket exists (see
    // `netns::enter`).
    if let cli::Command::Exporter(args) = &mut cli.command {
        args.netns = std::mem::take(&mut cli.global.netns);
    }
    match cli.global.netns.as_slice() {
        [] => {}
        [name] => {
            if let Err(e) = netns::enter(name) {
                error::report(&e.to_string());
                return ExitCode::from(EXIT_ERROR);
            }
        }
        [..] => {
            error::report(
                "--netns is given more than once: only `mptcp exporter` takes several namespaces",
            );
            return ExitCode::from(EXIT_ERROR);
        }
    }
    let out = output::Output::new(cli.global.json, cli.global.color);
    match cmd::run(cli.command, &out) {
        Ok(status) => ExitCode::from(status),
        Err(Error::BrokenPipe) => ExitCode::from(EXIT_OK),
        Err(e) => {
            error::report(&e.to_string());
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Diagnostics go to stderr, so stdout stays clean for JSON: warnings by default,
/// more with `-v`, or exactly what `MPTCP_LOG` asks for.
fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("MPTCP_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
