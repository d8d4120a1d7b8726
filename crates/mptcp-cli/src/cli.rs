//! The command line, as clap sees it: one [`Command`] per subcommand, each with
//! examples in its `--help`.
//!
//! Values are checked here, by clap's value parsers, so a bad address, id, limit or
//! duration is refused before anything runs, with clap's message naming the value
//! (exit status 2). What only the kernel or the libraries can judge (a port without
//! `--signal`, an interface that does not exist) is refused by them, also with exit
//! status 2.

use std::net::IpAddr;
use std::time::Duration;

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
    version,
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
    #[command(after_help = DOCTOR_HELP)]
    Doctor(DoctorArgs),

    /// Manage the path manager's endpoints (the addresses MPTCP may use).
    #[command(subcommand, after_help = ENDPOINT_HELP)]
    Endpoint(EndpointCommand),

    /// Show or set the path manager's limits.
    #[command(subcommand, after_help = LIMITS_HELP)]
    Limits(LimitsCommand),

    /// Print the path manager's events as they happen.
    #[command(after_help = MONITOR_HELP)]
    Monitor(MonitorArgs),

    /// List the MPTCP connections and their subflows.
    #[command(after_help = CONNS_HELP)]
    Conns(ConnsArgs),

    /// Measure throughput to a bench server, subflow by subflow (iperf-like).
    #[command(subcommand, after_help = crate::cmd::bench::BENCH_HELP)]
    Bench(crate::cmd::bench::BenchCommand),

    /// Show what MPTCP does, live, on a multipath network built in namespaces.
    #[command(after_help = crate::cmd::demo::DEMO_HELP)]
    Demo(crate::cmd::demo::DemoArgs),

    /// The path-manager daemon: endpoints and limits in step with the links.
    #[command(subcommand, after_help = crate::cmd::pm::PM_HELP)]
    Pm(crate::cmd::pm::PmCommand),

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
    #[command(after_help = COMPLETIONS_HELP)]
    Completions(CompletionsArgs),
}

const DOCTOR_HELP: &str = "\
Each line is a check: ok, warn or fail, what was checked, what was found, and for
a problem the fix. Checks: MPTCP sockets, net.mptcp.enabled, path manager, scheduler,
checksums, blackhole detection, limits, endpoints against this host's addresses,
fallback counters; with --target: the connection's MPTCP status, its subflows and what
the peer announced.

Exit status: 0 every check passed, 1 a line is warn or fail, 2 could not check.

Examples:
  mptcp doctor
  mptcp doctor --target 198.18.0.2:5201
  mptcp --netns blue doctor --json | jq '.checks[] | select(.status != \"ok\")'

JSON: {\"verdict\": \"healthy\"|\"problems\"|\"incomplete\", \"exit_code\": 0|1|2,
       \"checks\": [{\"id\", \"status\": \"ok\"|\"warn\"|\"fail\"|\"unknown\", \"what\", \"detail\", \"fix\"}],
       \"target\": {\"target\", \"address\", \"status\": \"active\"|\"fell_back\"|\"plain_tcp\",
                   \"token\", \"subflows\", \"add_addr_accepted\", \"announced\": [{\"id\", \"address\"}],
                   \"events\": true|false, \"error\"}}
A field without a value (a fix on an ok line, the target without --target) is left out.
Check ids: mptcp_socket, enabled, path_manager, scheduler, checksum, blackhole, limits,
endpoints, fallback, target_connect, target_subflows, target_announced.";

/// `mptcp doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Also dial HOST:PORT with MPTCP and tell whether the peer speaks it, how many
    /// subflows appear and what the peer announces. Sends two bytes (CRLF).
    #[arg(long, value_name = "HOST:PORT", value_parser = host_port)]
    pub target: Option<String>,

    /// Give up on connecting to the target after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = seconds)]
    pub connect_timeout: Duration,

    /// Watch the target connection's subflows for this many seconds.
    #[arg(long, value_name = "SECONDS", default_value = "2", value_parser = seconds)]
    pub wait: Duration,
}

const ENDPOINT_HELP: &str = "\
Endpoints tell the in-kernel path manager which local addresses to use: `subflow` on
clients (open extra subflows from it), `signal` on servers (announce it to peers).

Examples:
  mptcp endpoint list
  mptcp endpoint add 198.18.1.1 --dev eth1 --subflow
  mptcp endpoint add 198.18.1.2 --signal --port 5202
  mptcp endpoint set --id 2 --backup
  mptcp endpoint del 198.18.1.1
  mptcp endpoint flush

JSON: an endpoint is {\"id\", \"address\", \"port\", \"flags\": [\"signal\"|\"subflow\"|\"backup\"|
\"fullmesh\"|\"implicit\"|\"laminar\"], \"ifindex\", \"interface\"} (left out when unset).
list: {\"endpoints\": [...]}; add and set: the endpoint; del and flush: {\"deleted\": [...]}.";

/// `mptcp endpoint ...`.
#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// List the endpoints.
    #[command(visible_alias = "show")]
    List,
    /// Add an endpoint.
    #[command(after_help = "\
Examples:
  mptcp endpoint add 198.18.1.1 --dev eth1 --subflow          a client's second path
  mptcp endpoint add 198.18.1.1 --dev eth1 --subflow --backup only when the others fail
  mptcp endpoint add 198.18.1.2 --signal                      a server's second address
  mptcp endpoint add 198.18.1.2 --signal --port 5202 --id 9   announced with a port")]
    Add(EndpointAdd),
    /// Delete an endpoint, by id or by address.
    #[command(
        visible_alias = "delete",
        after_help = "Examples:\n  mptcp endpoint del --id 2\n  mptcp endpoint del 198.18.1.1"
    )]
    Del(EndpointRef),
    /// Delete every endpoint.
    Flush,
    /// Change an endpoint's backup and fullmesh flags.
    #[command(
        visible_alias = "change",
        after_help = "Examples:\n  mptcp endpoint set --id 2 --backup\n  \
                      mptcp endpoint set 198.18.1.1 --no-backup --fullmesh"
    )]
    Set(EndpointSet),
}

/// `mptcp endpoint add`.
#[derive(Debug, Args)]
pub struct EndpointAdd {
    /// The local address (IPv4 or IPv6).
    #[arg(value_name = "ADDR")]
    pub addr: IpAddr,
    /// The endpoint id, 1-255 (default: the kernel picks one).
    #[arg(long, value_parser = endpoint_id)]
    pub id: Option<u8>,
    /// A port for a signal endpoint: the kernel listens on it and announces it.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// Bind subflows from this address to this interface.
    #[arg(long, value_name = "IFNAME")]
    pub dev: Option<String>,
    /// Announce this address to peers (servers).
    #[arg(long)]
    pub signal: bool,
    /// Open extra subflows from this address (clients).
    #[arg(long)]
    pub subflow: bool,
    /// Use subflows from this address only when the others fail.
    #[arg(long)]
    pub backup: bool,
    /// Open a subflow from this address to every address of the peer (with --subflow).
    #[arg(long)]
    pub fullmesh: bool,
    /// Use this address for subflows towards addresses the peer announces (Linux 6.18).
    #[arg(long)]
    pub laminar: bool,
}

/// An endpoint named by `--id N` or by its address.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct EndpointRef {
    /// The endpoint's id.
    #[arg(long, value_parser = endpoint_id)]
    pub id: Option<u8>,
    /// The endpoint's address.
    #[arg(value_name = "ADDR")]
    pub addr: Option<IpAddr>,
}

/// `mptcp endpoint set`.
#[derive(Debug, Args)]
pub struct EndpointSet {
    /// Which endpoint.
    #[command(flatten)]
    pub endpoint: EndpointRef,
    /// What to change.
    #[command(flatten)]
    pub change: FlagChanges,
}

/// The flag changes of `mptcp endpoint set`: at least one.
#[derive(Debug, Args)]
#[group(required = true, multiple = true)]
pub struct FlagChanges {
    /// Make it a backup.
    #[arg(long, conflicts_with = "no_backup")]
    pub backup: bool,
    /// Make it a regular (non-backup) endpoint.
    #[arg(long)]
    pub no_backup: bool,
    /// Turn fullmesh on.
    #[arg(long, conflicts_with = "no_fullmesh")]
    pub fullmesh: bool,
    /// Turn fullmesh off.
    #[arg(long)]
    pub no_fullmesh: bool,
}

const LIMITS_HELP: &str = "\
subflows: most extra subflows per connection (kernel default 2); add_addr_accepted: most
addresses announced by a peer that a connection will use (kernel default 0). Both 0-8.
With subflows 0, no connection ever gets a second subflow.

Examples:
  mptcp limits show
  mptcp limits set --subflows 4 --add-addr-accepted 4

JSON: {\"subflows\", \"add_addr_accepted\"} (show and set).";

/// `mptcp limits ...`.
#[derive(Debug, Subcommand)]
pub enum LimitsCommand {
    /// Show the limits.
    #[command(visible_alias = "list")]
    Show,
    /// Set one or both limits (the other keeps its value).
    Set(LimitsSet),
}

/// `mptcp limits set`.
#[derive(Debug, Args)]
#[group(required = true, multiple = true)]
pub struct LimitsSet {
    /// Most extra subflows per connection, 0-8.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=8))]
    pub subflows: Option<u32>,
    /// Most peer-announced addresses used per connection, 0-8.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=8))]
    pub add_addr_accepted: Option<u32>,
}

const MONITOR_HELP: &str = "\
One line per event: time (UTC), event, then what the kernel said: token, saddr, daddr,
locid, remid, backup, error, reset reason, server_side. Needs CAP_NET_ADMIN. Prints
`listening for events` on stderr once subscribed. With --event or --token, only the
matching events are printed (and counted by --count).

Examples:
  mptcp monitor
  mptcp monitor --count 10 --timeout 30
  mptcp monitor --event sub_established --event sub_closed --token 0x1a2b3c4d
  mptcp --netns blue monitor --json | jq -c 'select(.event == \"sub_established\")'

JSON lines: {\"time\" (RFC 3339, UTC), \"event\": \"created\"|\"established\"|\"closed\"|
\"announced\"|\"removed\"|\"sub_established\"|\"sub_closed\"|\"sub_priority\"|\"listener_created\"|
\"listener_closed\"|\"unknown_N\", \"token\", \"local\", \"remote\", \"local_id\", \"remote_id\",
\"backup\", \"error\", \"server_side\", \"timeout\", \"ifindex\", \"reset_reason\", \"reset_flags\"};
a field the event does not carry is left out.";

/// `mptcp monitor`.
#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// Stop after N events (that pass --event and --token).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    pub timeout: Option<Duration>,
    /// Only events of this kind (created, established, closed, announced, removed,
    /// sub_established, sub_closed, sub_priority, listener_created, listener_closed);
    /// repeat for several.
    #[arg(long = "event", value_name = "NAME", value_parser = crate::cmd::monitor::event_name)]
    pub events: Vec<String>,
    /// Only events of the connection with this token (hex, `0x` optional).
    #[arg(long, value_name = "HEX", value_parser = crate::cmd::conns::token)]
    pub token: Option<u32>,
}

const CONNS_HELP: &str = "\
Each connection (token, state, addresses, fallback, subflow count, bytes sent and
received), then its subflows (addresses, state, local/remote address ids, flags).
Bytes need Linux 6.5. Listeners are shown with --all.

Filters (all given must match): --port, --local and --remote match the connection's
own addresses or any of its subflows'; --state listen shows listeners without --all.

Examples:
  mptcp conns
  mptcp conns --watch --interval 0.5
  mptcp conns --remote 198.18.0.2:443 --min-subflows 2
  mptcp conns --fallback --json
  mptcp --netns blue conns --json | jq '.connections[] | .subflow_count'

JSON: {\"time\", \"connections\": [{\"token\", \"local\", \"remote\", \"state\", \"fallback\",
\"subflow_count\", \"bytes_sent\", \"bytes_received\", \"bytes_acked\", \"bytes_retrans\",
\"subflows\": [{\"local\", \"remote\", \"state\", \"local_id\", \"remote_id\", \"backup\", \"join\",
\"flags\": [...]}]}]}; with --watch one such document per line. States are snake_case
(established, syn_sent, listen, ...). A field without a value is left out: token for a
listener, bytes_* before Linux 6.5, local_id/remote_id when the kernel gave none.";

/// `mptcp conns`.
#[derive(Debug, Args)]
pub struct ConnsArgs {
    /// Refresh until Ctrl-C (in place on a terminal).
    #[arg(long, short)]
    pub watch: bool,
    /// Seconds between refreshes with --watch.
    #[arg(long, value_name = "SECONDS", default_value = "1", value_parser = seconds, requires = "watch")]
    pub interval: Duration,
    /// Stop after N refreshes with --watch.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), requires = "watch")]
    pub count: Option<u64>,
    /// Also list listening sockets.
    #[arg(long, short)]
    pub all: bool,
    /// Only connections with this port, local or remote (theirs or a subflow's).
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// Only connections with this local address, and port if given (theirs or a
    /// subflow's): `198.18.0.1`, `198.18.0.1:5201`, `2001:db8::1`, `[2001:db8::1]:5201`.
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = mptcp_netlink::AddrFilter::parse)]
    pub local: Option<mptcp_netlink::AddrFilter>,
    /// Only connections with this remote address, and port if given (as --local).
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = mptcp_netlink::AddrFilter::parse)]
    pub remote: Option<mptcp_netlink::AddrFilter>,
    /// Only connections in this state (established, syn_sent, fin_wait1, close_wait,
    /// listen, ...; `ss` spellings such as ESTAB or syn-sent too).
    #[arg(long, value_name = "STATE", value_parser = crate::cmd::conns::state)]
    pub state: Option<mptcp_netlink::TcpState>,
    /// Only connections that fell back to plain TCP.
    #[arg(long)]
    pub fallback: bool,
    /// Only the connection with this token (hex, `0x` optional).
    #[arg(long, value_name = "HEX", value_parser = crate::cmd::conns::token)]
    pub token: Option<u32>,
    /// Only connections with at least N subflows.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(0..=255))]
    pub min_subflows: Option<u64>,
}

const COMPLETIONS_HELP: &str = "\
Examples:
  mptcp completions bash > /etc/bash_completion.d/mptcp
  mptcp completions zsh > \"${fpath[1]}/_mptcp\"
  mptcp completions fish > ~/.config/fish/completions/mptcp.fish";

/// `mptcp completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// The longest duration a `SECONDS` argument takes, unless its command has a shorter
/// limit: a day.
pub const MAX_SECONDS: Duration = Duration::from_secs(86_400);

/// Seconds as a decimal number (`2`, `0.5`), more than 0 and at most [`MAX_SECONDS`]
/// (a clap value parser; the one parser of the command's `SECONDS` arguments).
pub fn seconds(s: &str) -> Result<Duration, String> {
    seconds_up_to(MAX_SECONDS)(s)
}

/// [`seconds`] with a shorter limit, for a command whose peer refuses longer ones
/// (`bench`: the protocol's hour).
pub fn seconds_up_to(max: Duration) -> impl Fn(&str) -> Result<Duration, String> + Clone {
    move |s: &str| {
        let v: f64 = s
            .parse()
            .map_err(|_| format!("{s:?} is not a number of seconds"))?;
        if !(v > 0.0 && v <= max.as_secs_f64()) {
            return Err(format!(
                "{s} is not between 0 and {} seconds",
                max.as_secs()
            ));
        }
        Ok(Duration::from_secs_f64(v))
    }
}

/// An endpoint id, 1-255 (0 names a connection's initial address, not an endpoint).
fn endpoint_id(s: &str) -> Result<u8, String> {
    match s.parse::<u8>() {
        Ok(0) => Err("endpoint ids are 1-255 (0 is a connection's initial address)".into()),
        Ok(id) => Ok(id),
        Err(_) => Err("endpoint ids are 1-255".into()),
    }
}

/// A namespace name as `ip netns` makes them: a file name under /run/netns.
fn netns_name(s: &str) -> Result<String, String> {
    if s.is_empty() || s == "." || s == ".." || s.contains(['/', '\0']) {
        return Err("not a network namespace name (see `ip netns list`)".into());
    }
    Ok(s.to_string())
}

/// `HOST:PORT` or `[IPV6]:PORT`, checked for shape only: names are resolved later,
/// inside the namespace.
fn host_port(s: &str) -> Result<String, String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or("expected HOST:PORT, e.g. 198.18.0.2:443 or [2001:db8::2]:443")?;
    if host.is_empty() {
        return Err("the host is missing".into());
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err("write an IPv6 address in brackets: [2001:db8::2]:443".into());
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("{port:?} is not a port (1-65535)")),
        Ok(_) => Ok(s.to_string()),
    }
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
        assert_eq!(seconds("0.5").unwrap(), Duration::from_millis(500));
        assert!(seconds("0").is_err());
        assert!(seconds("-1").is_err());
        assert!(seconds("NaN").is_err());
        assert!(seconds("1e9").is_err());
        assert_eq!(endpoint_id("7").unwrap(), 7);
        assert!(endpoint_id("0").is_err());
        assert!(endpoint_id("256").is_err());
        assert!(netns_name("blue").is_ok());
        for bad in ["", ".", "..", "a/b", "../x"] {
            assert!(netns_name(bad).is_err(), "{bad}");
        }
        for good in ["198.18.0.2:5201", "example.com:443", "[2001:db8::2]:80"] {
            assert!(host_port(good).is_ok(), "{good}");
        }
        for bad in [
            "198.18.0.2",
            ":80",
            "h:0",
            "h:x",
            "2001:db8::2:80",
            "h:70000",
        ] {
            assert!(host_port(bad).is_err(), "{bad}");
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
