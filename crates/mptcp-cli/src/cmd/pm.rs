//! `mptcp pm run` and `mptcp pm plan`: the path-manager daemon of [`mptcp_pm`], which
//! keeps the in-kernel path manager's endpoints and limits in step with the host's
//! links, addresses and default routes.
//!
//! `run` logs one line per change on stdout (`HH:MM:SS.mmm` then what and why; JSON
//! lines with `--json`), runs until SIGTERM or Ctrl-C, then removes its endpoints
//! unless `--keep`; an endpoint whose address a live connection's subflow uses is
//! kept (deleting it would make the kernel close those subflows) and removed by the
//! next run once unused. `plan` prints what `run` would set, and every address it would
//! skip, and exits.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use mptcp_pm::{Config, Daemon, Options, Report, Role};
use serde::Serialize;

use crate::error::{Error, EXIT_OK};
use crate::output::{self, Output};

pub(crate) const PM_HELP: &str = "\
The daemon watches links, addresses and routes over rtnetlink and gives every usable
address an endpoint: `subflow` as a client (not `laminar` beside it: Linux 6.18 then
over-counts the addresses a connection uses, and stops opening its subflows), `signal` as
a server, or what the configuration's rules say. A link that loses carrier loses its
endpoints at once (the kernel closes those subflows; connections go on over the others);
when it comes back so do they. Endpoints made by hand or by other tools are left alone.
Limits are sized to the endpoints unless the configuration fixes them.

With --userspace the namespace is switched to the userspace path manager for the
daemon's life (restored on exit) and each connection is driven by a policy chosen by
the configuration's [userspace] rules: aggregate, handover, interactive or single.
`mptcp pm status` shows each connection's policy and what was last done and why.

Examples:
  mptcp pm plan                                 what would be set, and why
  mptcp pm run                                  as a client, until SIGTERM
  mptcp pm run --role server --fix-rp-filter
  mptcp pm run --config /etc/mptcp/pm.toml --json
  mptcp --netns blue pm run --once              set once, leave in place, exit
  mptcp pm run --userspace --config pm.toml     per-connection policies
  mptcp pm status --json

Exit status: 0 stopped cleanly; 2 bad configuration, another manager holds the
namespace, or the path manager refused.

JSON (run): one line per event: {\"time\", \"event\": \"started\"|\"change\"|\"over_capacity\"|
\"rp_filter_strict\"|\"no_laminar\"|\"ready\"|\"error\"|\"stopped\", ...}; a change carries
\"action\": \"add\"|\"remove\"|\"set_flags\"|\"set_limits\", \"applied\", and the endpoint or
limits with a \"reason\".
JSON (plan): {\"role\", \"endpoints\": [{\"id\", \"address\", \"flags\", \"ifindex\", \"interface\",
\"priority\", \"reason\"}], \"skipped\": [{\"address\", \"interface\", \"reason\"}], \"over_capacity\",
\"foreign\", \"limits\": {\"subflows\", \"add_addr_accepted\", \"reason\"}, \"strict_rp_filter\",
\"actions\"}.
JSON (status): {\"pid\", \"paths\": [{\"id\", \"address\", \"interface\", ...}], \"connections\":
[{\"token\", \"policy\", \"server_side\", \"local\", \"remote\", \"subflows\": [{\"local\", \"remote\",
\"interface\", \"backup\", \"rtt_ms\", \"stalled\"}], \"active\", \"last\", \"last_seconds_ago\"}]}.";

/// `mptcp pm ...`.
#[derive(Debug, Subcommand)]
pub enum PmCommand {
    /// Run the daemon: keep endpoints and limits in step with links and addresses.
    Run(PmRunArgs),
    /// Print the endpoints and limits the daemon would set, each with its reason,
    /// and every address it would skip, with why; change nothing.
    Plan(PmOptions),
    /// The userspace daemon's live connections: policy, subflows, what it last did
    /// and why.
    Status(PmStatusArgs),
}

/// `mptcp pm status`.
#[derive(Debug, Args)]
pub struct PmStatusArgs {
    /// Where the daemon keeps its lock and status.
    #[arg(long, value_name = "DIR", default_value = mptcp_pm::state::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
}

/// The options that shape the plan.
#[derive(Debug, Args)]
pub struct PmOptions {
    /// The host's role (overrides the configuration's `role`).
    #[arg(long, value_enum)]
    pub role: Option<RoleArg>,
    /// A TOML configuration (see the mptcp-pm crate docs, or packaging/pm.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the daemon keeps its lock and the ids of its endpoints.
    #[arg(long, value_name = "DIR", default_value = mptcp_pm::state::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Behind a balancer: a virtual address this backend serves (repeatable; replaces
    /// the configuration's `[server] vip`). Sets the MP_CAPABLE C flag and announces the
    /// VIP with --join-port.
    #[arg(long, value_name = "ADDR")]
    pub vip: Vec<std::net::IpAddr>,
    /// The port announced with each VIP, unique per backend (the balancer sends
    /// VIP:PORT to this backend).
    #[arg(long, value_name = "PORT")]
    pub join_port: Option<u16>,
    /// Announce this host's own addresses too (they must be reachable by clients).
    #[arg(long)]
    pub announce_own: bool,
    /// Publish this host's MPTCP tokens to `mptcp lb` at ADDR:PORT (token steering).
    #[arg(long, value_name = "ADDR:PORT", requires = "lb_key")]
    pub lb_registry: Option<std::net::SocketAddr>,
    /// The registry's shared secret (a file of at least 16 bytes).
    #[arg(long, value_name = "FILE", requires = "lb_registry")]
    pub lb_key: Option<PathBuf>,
}

/// `mptcp pm run`.
#[derive(Debug, Args)]
pub struct PmRunArgs {
    /// Role, configuration, state directory.
    #[command(flatten)]
    pub opts: PmOptions,
    /// Log what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Reconcile once and exit, leaving the endpoints in place.
    #[arg(long)]
    pub once: bool,
    /// Leave the endpoints and limits in place on exit. Without it, endpoints live
    /// connections use are still kept (the next run removes them once unused).
    #[arg(long)]
    pub keep: bool,
    /// Start even if NetworkManager or mptcpd runs in this network namespace.
    #[arg(long)]
    pub force: bool,
    /// Set rp_filter to 2 (loose) on interfaces with an endpoint where it is 1 (strict).
    #[arg(long)]
    pub fix_rp_filter: bool,
    /// Switch this namespace to the userspace path manager (restored on exit) and
    /// drive every connection by policy (the configuration's `[userspace]` rules).
    #[arg(long, conflicts_with_all = ["dry_run", "once", "keep", "fix_rp_filter"])]
    pub userspace: bool,
    /// Run as this user (a name or a uid) keeping only CAP_NET_ADMIN; the state
    /// directory must be writable by it. Without it the daemon keeps its user and
    /// drops every capability but CAP_NET_ADMIN.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
}

/// A role on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// `subflow` endpoints: open extra subflows.
    Client,
    /// `signal` endpoints: announce addresses.
    Server,
}

fn config(opts: &PmOptions) -> Result<Config, Error> {
    let mut config = match &opts.config {
        Some(path) => Config::from_file(path).map_err(Error::msg)?,
        None => Config::default(),
    };
    if let Some(role) = opts.role {
        config.role = match role {
            RoleArg::Client => Role::Client,
            RoleArg::Server => Role::Server,
        };
    }
    let server = &mut config.server;
    if !opts.vip.is_empty() {
        server.vips = opts.vip.clone();
        server.announce_own = opts.announce_own;
    } else if opts.announce_own {
        server.announce_own = true;
    }
    if opts.join_port.is_some() {
        server.join_port = opts.join_port;
    }
    if opts.lb_registry.is_some() {
        server.lb_registry = opts.lb_registry;
        server.lb_key = opts.lb_key.clone();
        server.announce_own = opts.announce_own;
    }
    server.check(config.role).map_err(Error::msg)?;
    Ok(config)
}

/// Runs `mptcp pm ...`.
pub fn run(cmd: PmCommand, out: &Output) -> Result<u8, Error> {
    match cmd {
        PmCommand::Run(args) => run_daemon(&args, out),
        PmCommand::Plan(opts) => plan(&opts, out),
        PmCommand::Status(args) => status(&args, out),
    }
}

fn run_daemon(args: &PmRunArgs, out: &Output) -> Result<u8, Error> {
    let mut options = Options::new(config(&args.opts)?);
    options.dry_run = args.dry_run;
    options.keep = args.keep || args.once;
    options.force = args.force;
    options.fix_rp_filter = args.fix_rp_filter;
    options.state_dir = args.opts.state_dir.clone();
    // Other processes' namespaces can only be read with the capabilities they
    // hold: look for another manager before dropping ours.
    if !args.force {
        mptcp_pm::daemon::refuse_other_managers().map_err(Error::msg)?;
    }
    // Before any thread exists (capability sets are per thread): every path
    // manager command and the sysctls it writes need CAP_NET_ADMIN at the time
    // they are sent, so that one is kept for the daemon's life, and only it.
    crate::privilege::restrict(
        rustix::thread::CapabilitySet::NET_ADMIN,
        args.user.as_deref(),
    )?;
    // Set before the daemon starts, so a signal during the first reconcile is seen.
    let stop = super::stop_flag()?;
    let mut failed_output = None;
    let (result, shutdown) = {
        let mut log = |report: Report| {
            let style = match &report {
                Report::Error { .. } | Report::Change { error: Some(_), .. } => output::BAD,
                Report::RpFilterStrict { fixed: false, .. } | Report::OverCapacity { .. } => {
                    output::WARN
                }
                _ => anstyle::Style::new(),
            };
            if failed_output.is_none() {
                failed_output = out.log_event(&report, style).err();
            }
        };
        if args.userspace {
            let mut daemon = mptcp_pm::userspace::UserspaceDaemon::start(options, &mut log)
                .map_err(Error::msg)?;
            let result = daemon.run(&stop, &mut log);
            (result, daemon.shutdown(&mut log))
        } else {
            let mut daemon = Daemon::start(options, &mut log).map_err(Error::msg)?;
            let result = if args.once {
                daemon.reconcile(&mut log).map(|plan| {
                    log(Report::Ready {
                        endpoints: daemon.owned().len(),
                        limits: plan.limits.as_ref().map(|l| l.limits()),
                    })
                })
            } else {
                daemon.run(&stop, &mut log)
            };
            // Clean up even when running failed, then report the first error.
            (result, daemon.shutdown(&mut log))
        }
    };
    result.map_err(Error::msg)?;
    shutdown.map_err(Error::msg)?;
    if let Some(e) = failed_output {
        return Err(e);
    }
    Ok(EXIT_OK)
}

#[derive(Serialize)]
struct PlanJson<'a> {
    #[serde(flatten)]
    plan: &'a mptcp_pm::Plan,
    actions: &'a [mptcp_pm::Action],
}

fn plan(opts: &PmOptions, out: &Output) -> Result<u8, Error> {
    let config = config(opts)?;
    let (plan, actions) = mptcp_pm::preview(&config, &opts.state_dir).map_err(Error::msg)?;
    if out.json {
        out.json(&PlanJson {
            plan: &plan,
            actions: &actions,
        })?;
        return Ok(EXIT_OK);
    }
    let mut text = format!("role {}\n", plan.role);
    match &plan.limits {
        Some(l) => text.push_str(&format!(
            "limits: subflows {} add_addr_accepted {} ({})\n",
            l.subflows, l.add_addr_accepted, l.reason
        )),
        None => text.push_str("limits: left as they are (limits.manage = false)\n"),
    }
    if let Some(b) = &plan.balancer {
        text.push_str(&format!(
            "behind a balancer: net.mptcp.allow_join_initial_addr_port = {} (the C flag)  {}\n",
            b.allow_join_initial_addr_port,
            out.paint(output::DIM, &b.reason)
        ));
    }
    text.push_str(&format!("\nendpoints ({}):\n", plan.endpoints.len()));
    for e in &plan.endpoints {
        let at = match (e.port, e.ifindex) {
            (Some(port), _) => format!(" port {port}"),
            (None, 0) => String::new(),
            (None, _) => format!(" dev {}", e.interface),
        };
        text.push_str(&format!(
            "  {} id {} {}{at}  {}\n",
            e.address,
            e.id,
            e.flags,
            out.paint(output::DIM, &e.reason)
        ));
    }
    if !plan.skipped.is_empty() {
        text.push_str(&format!("\nskipped ({}):\n", plan.skipped.len()));
        for s in &plan.skipped {
            text.push_str(&format!(
                "  {} ({}): {}\n",
                s.address, s.interface, s.reason
            ));
        }
    }
    if !plan.over_capacity.is_empty() {
        text.push_str(&format!(
            "\nover the 8-endpoint cap ({}):\n",
            plan.over_capacity.len()
        ));
        for s in &plan.over_capacity {
            text.push_str(&format!(
                "  {} ({}): {}\n",
                s.address, s.interface, s.reason
            ));
        }
    }
    if !plan.foreign.is_empty() {
        text.push_str(&format!(
            "\nnot ours, left alone ({}):\n",
            plan.foreign.len()
        ));
        for e in &plan.foreign {
            text.push_str(&format!("  {e}\n"));
        }
    }
    if !plan.strict_rp_filter.is_empty() {
        text.push_str(&out.paint(
            output::WARN,
            &format!(
                "\nwarning: rp_filter is strict (1) on {}: use --fix-rp-filter with run\n",
                plan.strict_rp_filter.join(", ")
            ),
        ));
    }
    text.push_str(&format!("\nchanges to make ({}):\n", actions.len()));
    for a in &actions {
        let line = Report::Change {
            action: a.clone(),
            applied: true,
            error: None,
        }
        .to_string();
        text.push_str(&format!("  {line}\n"));
    }
    out.print(&text)?;
    Ok(EXIT_OK)
}

fn status(args: &PmStatusArgs, out: &Output) -> Result<u8, Error> {
    let status = mptcp_pm::userspace::read_status(&args.state_dir).map_err(Error::msg)?;
    if out.json {
        out.json(&status)?;
        return Ok(EXIT_OK);
    }
    let mut text = format!("daemon pid {}; paths:", status.pid);
    for p in &status.paths {
        text.push_str(&format!(" {} ({} id {})", p.address, p.interface, p.id));
    }
    text.push_str(&format!("\n{} connection(s)\n", status.connections.len()));
    for c in &status.connections {
        text.push_str(&format!(
            "\n{:08x} {} -> {} {}{}{}\n",
            c.token,
            c.local,
            c.remote,
            c.policy,
            if c.server_side { " (server side)" } else { "" },
            c.active
                .as_ref()
                .map(|a| format!(", traffic on {a}"))
                .unwrap_or_default()
        ));
        for s in &c.subflows {
            text.push_str(&format!(
                "  {} -> {}{}{}{}{}\n",
                s.local,
                s.remote,
                s.interface
                    .as_ref()
                    .map(|i| format!(" dev {i}"))
                    .unwrap_or_default(),
                if s.backup { " backup" } else { "" },
                s.rtt_ms
                    .map(|r| format!(" rtt {r:.1} ms"))
                    .unwrap_or_default(),
                if s.stalled { " STALLED" } else { "" }
            ));
        }
        if let (Some(last), Some(ago)) = (&c.last, c.last_seconds_ago) {
            text.push_str(&format!("  last: {last} ({ago:.1} s ago)\n"));
        }
    }
    out.print(&text)?;
    Ok(EXIT_OK)
}
