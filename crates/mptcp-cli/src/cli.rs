//! The command line, as clap sees it: the global options and one [`Command`] per
//! subcommand. Each command's arguments (and its `--help` examples) live in its own
//! `cmd/` module; the value parsers several commands share are in [`crate::args`].
//!
//! Values are checked here, by clap's value parsers, so a bad address, id, limit or
//! duration is refused before anything runs, with clap's message naming the value
//! (exit status 2). What only the kernel or the libraries can judge (a port without
//! `--signal`, an interface that does not exist) is refused by them, also with exit
//! status 2.

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

/// The exit statuses, for the top-level help.
const EXIT_STATUS: &str = "\
Exit status:
  0  success (doctor: every check passed)
  1  doctor found a problem (a line is warn or fail)
  2  bad input, an error, or doctor could not check

JSON (--json): one document on stdout, or one document per line for streams
(monitor, conns --watch). Field names are snake_case and stable; each subcommand's
--help lists them. Diagnostics always go to stderr.

Environment:
  NO_COLOR      when set and not empty, no colour (unless --color always)
  MPTCP_LOG     log filter for diagnostics on stderr, e.g. debug or mptcp_netlink=trace";

const MAIN_EXAMPLES: &str = "\
Examples:
  mptcp doctor                         why do my connections use one path?
  mptcp doctor --target 198.18.0.2:443 does that server speak MPTCP?
  mptcp endpoint add 198.18.1.1 --dev eth1 --subflow
  mptcp limits set --subflows 4 --add-addr-accepted 4
  mptcp monitor                        path-manager events, live
  mptcp conns --watch                  connections and their subflows
  mptcp --netns blue conns --json      inside the namespace `ip netns add blue` made";

/// The operator's tool for Linux Multipath TCP.
///
/// One command instead of sysctl, `ip mptcp`, `ss -M` and `nstat`: check a host,
/// manage the path manager's endpoints and limits, watch its events and the
/// connections' subflows.
#[derive(Debug, Parser)]
#[command(
    name = "mptcp",
    version = crate::VERSION_LINE,
    about = "The operator's tool for Linux Multipath TCP",
    after_help = MAIN_EXAMPLES,
    after_long_help = format!("{MAIN_EXAMPLES}\n\n{EXIT_STATUS}"),
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Options that every subcommand takes.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options that every subcommand takes (before or after the subcommand's name).
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Print JSON on stdout instead of text (JSON lines for streams).
    #[arg(long, global = true)]
    pub json: bool,

    /// Act inside the network namespace NAME (as listed by `ip netns list`). Only
    /// `exporter` takes it more than once (one `netns` label per namespace).
    #[arg(long, global = true, value_name = "NAME", value_parser = netns_name, action = ArgAction::Append)]
    pub netns: Vec<String>,

    /// When to colour the output.
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    pub color: ColorWhen,

    /// More diagnostics on stderr (-v: info, -vv: debug, -vvv: trace).
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
}

/// When to colour the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    /// Only on a terminal, and never when NO_COLOR is set.
    Auto,
    /// Always, even into a pipe.
    Always,
    /// Never.
    Never,
}

/// The subcommands. A new one is a variant here, a module under `cmd/`, and an arm
/// in [`crate::cmd::run()`].
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check this host for MPTCP, say what is wrong and how to fix it.
    #[command(after_help = crate::cmd::doctor::DOCTOR_HELP)]
    Doctor(crate::cmd::doctor::DoctorArgs),

    /// Manage the path manager's endpoints (the addresses MPTCP may use).
    #[command(subcommand, after_help = crate::cmd::endpoint::ENDPOINT_HELP)]
    Endpoint(crate::cmd::endpoint::EndpointCommand),

    /// Show or set the path manager's limits.
    #[command(subcommand, after_help = crate::cmd::limits::LIMITS_HELP)]
    Limits(crate::cmd::limits::LimitsCommand),

    /// Print the path manager's events as they happen.
    #[command(after_help = crate::cmd::monitor::MONITOR_HELP)]
    Monitor(crate::cmd::monitor::MonitorArgs),

    /// List the MPTCP connections and their subflows.
    #[command(after_help = crate::cmd::conns::CONNS_HELP)]
    Conns(crate::cmd::conns::ConnsArgs),

    /// Measure throughput to a bench server, subflow by subflow (iperf-like).
    #[command(subcommand, after_help = crate::cmd::bench::BENCH_HELP)]
    Bench(crate::cmd::bench::BenchCommand),

    /// Show what MPTCP does, live, on a multipath network built in namespaces.
    #[command(after_help = crate::cmd::demo::DEMO_HELP)]
    Demo(crate::cmd::demo::DemoArgs),

    /// The path-manager daemon: endpoints and limits in step with the links.
    #[command(subcommand, after_help = crate::cmd::pm::PM_HELP)]
    Pm(crate::cmd::pm::PmCommand),

    /// The balancer side of a server fleet: every subflow to its backend.
    #[command(subcommand, after_help = crate::cmd::lb::LB_HELP)]
    Lb(crate::cmd::lb::LbCommand),

    /// Run a program with its TCP sockets made MPTCP (LD_PRELOAD or seccomp+ptrace).
    #[command(after_help = crate::cmd::run::RUN_HELP)]
    Run(crate::cmd::run::RunArgs),

    /// Serve Prometheus metrics: counters, connections, endpoints, limits, sysctls.
    #[command(after_help = crate::cmd::exporter::EXPORTER_HELP)]
    Exporter(crate::cmd::exporter::ExporterArgs),

    /// Relay TCP <-> MPTCP: MPTCP in front of a TCP server, or behind a TCP client.
    #[command(after_help = crate::cmd::proxy::PROXY_HELP)]
    Proxy(crate::cmd::proxy::ProxyArgs),

    /// Print a shell completion script.
    #[command(after_help = crate::cmd::completions::COMPLETIONS_HELP)]
    Completions(crate::cmd::completions::CompletionsArgs),

    /// Write the man pages (mptcp.1 and one per subcommand) into a directory.
    #[command(hide = true)]
    Man(crate::cmd::man::ManArgs),
}

/// A namespace name as `ip netns` makes them: a file name under /run/netns.
fn netns_name(s: &str) -> Result<String, String> {
    if s.is_empty() || s == "." || s == ".." || s.contains(['/', '\0']) {
        return Err("not a network namespace name (see `ip netns list`)".into());
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn values() {
        assert!(netns_name("blue").is_ok());
        for bad in ["", ".", "..", "a/b", "../x"] {
            assert!(netns_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoint_del_needs_exactly_one_of_id_and_address() {
        assert!(Cli::try_parse_from(["mptcp", "endpoint", "del"]).is_err());
        assert!(
            Cli::try_parse_from(["mptcp", "endpoint", "del", "--id", "1", "198.18.0.1"]).is_err()
        );
        assert!(Cli::try_parse_from(["mptcp", "endpoint", "del", "198.18.0.1"]).is_ok());
        assert!(Cli::try_parse_from([
            "mptcp",
            "endpoint",
            "set",
            "--id",
            "1",
            "--backup",
            "--no-backup"
        ])
        .is_err());
        assert!(Cli::try_parse_from(["mptcp", "endpoint", "set", "--id", "1"]).is_err());
        assert!(
            Cli::try_parse_from(["mptcp", "endpoint", "set", "--id", "1", "--fullmesh"]).is_ok()
        );
        assert!(Cli::try_parse_from(["mptcp", "limits", "set"]).is_err());
        assert!(Cli::try_parse_from(["mptcp", "conns", "--interval", "2"]).is_err());
    }
}
