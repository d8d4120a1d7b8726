//! `mptcp lb run` and `mptcp lb status`: the balancer side of an MPTCP server fleet
//! ([`mptcp_lb`]). `run` logs one line per change (JSON lines with `--json`) and runs
//! until SIGTERM or Ctrl-C, re-reading `--config` on SIGHUP.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{Args, Subcommand};
use mptcp_lb::daemon::{self, Event, Options, Source};
use mptcp_lb::{Backend, Config, Mode};

use crate::error::{Error, EXIT_OK};
use crate::output::{self, Output};

pub(crate) const LB_HELP: &str = "\
A layer-4 balancer hashes every SYN, so an MPTCP client's joins land on random
backends, which reset them (MPJoinNoTokenFound). `mptcp lb run` keeps this host's
nftables and routing rules in step with the backends: new connections are hashed as
before (route mode: an ECMP route, the operator's or one made here; nat mode: dnat by
jhash), each backend's join port goes to that backend, and every connection stays
pinned to its backend (conntrack) while backends are added, drained or removed.
The backends run `mptcp pm run --role server --vip VIP --join-port PORT`.

Examples:
  mptcp lb run --vip 198.18.200.1:80 \\
      --backend 198.19.0.2,join-port=20000 --backend 198.19.1.2,join-port=20001
  mptcp lb run --mode nat --vip 198.18.200.1:80 --backend 198.19.0.2 --backend 198.19.1.2
  mptcp lb run --config /etc/mptcp/lb.toml     (SIGHUP re-reads it: add, drain, remove)
  mptcp lb run --vip 198.18.200.1:80 --backend 198.19.0.2 --backend 198.19.1.2 \\
      --steer-tokens --registry 198.19.0.254:7010 --key /etc/mptcp/lb.key
      (backends: mptcp pm run --role server --lb-registry 198.19.0.254:7010 --lb-key ...)
  mptcp lb status --json

Exit status: 0 stopped cleanly (every rule removed); 2 bad arguments or configuration,
or the host refused the rules (nothing is left applied).

JSON (run): one line per event: {\"time\", \"event\": \"started\"|\"reloaded\"|\"reload_failed\"|
\"stopped\", \"status\": {\"mode\", \"vips\", \"own_routes\", \"backends\": [{\"address\", \"slot\",
\"mark\", \"table\", \"join_port\", \"state\": \"active\"|\"draining\"}], \"warnings\"}, \"error\"}.
JSON (status): the same status, and with token steering \"steering\": {\"registry\",
\"interfaces\", \"tokens\", \"joins_seen\", \"steered\", \"dropped_unknown\", \"accepted_messages\",
\"accepted_ops\", \"refused\": {\"bad_mac\", \"replayed\", \"stale\", \"unknown_backend\", \"malformed\"}}.";

/// `mptcp lb ...`.
#[derive(Debug, Subcommand)]
pub enum LbCommand {
    /// Run the balancer: rules in step with the backends, removed on exit.
    Run(Box<LbRunArgs>),
    /// What a running balancer applied.
    Status(LbStatusArgs),
}

/// `mptcp lb run`.
#[derive(Debug, Args)]
pub struct LbRunArgs {
    /// A virtual service, `ADDR:PORT` or `[V6]:PORT` (repeatable).
    #[arg(long, value_name = "ADDR:PORT", value_parser = mptcp_lb::config::parse_vip, required_unless_present = "config", conflicts_with = "config")]
    pub vip: Vec<std::net::SocketAddr>,
    /// A backend: `ADDR[,join-port=P][,drain]` (repeatable).
    #[arg(
        long,
        value_name = "ADDR[,join-port=P][,drain]",
        required_unless_present = "config",
        conflicts_with = "config"
    )]
    pub backend: Vec<Backend>,
    /// route (ECMP anycast; backends hold the VIP) or nat (dnat by jhash).
    #[arg(
        long,
        value_name = "MODE",
        default_value = "route",
        conflicts_with = "config"
    )]
    pub mode: Mode,
    /// Token steering, for stock clients: a tc program marks each MP_JOIN SYN for the
    /// backend that owns its token, learnt from the backends' `mptcp pm` (needs
    /// --registry and --key).
    #[arg(long, requires_all = ["registry", "key"], conflicts_with = "config")]
    pub steer_tokens: bool,
    /// Where the backends publish their tokens (UDP ADDR:PORT on this host).
    #[arg(long, value_name = "ADDR:PORT", requires = "steer_tokens")]
    pub registry: Option<std::net::SocketAddr>,
    /// The registry's shared secret: a file of at least 16 bytes.
    #[arg(long, value_name = "FILE", requires = "steer_tokens")]
    pub key: Option<PathBuf>,
    /// A client-facing interface for token steering (repeatable; default: every
    /// interface but lo and those towards backends).
    #[arg(long, value_name = "IFACE", requires = "steer_tokens")]
    pub ingress: Vec<String>,
    /// A TOML configuration instead of the options above; SIGHUP re-reads it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the status file is written.
    #[arg(long, value_name = "DIR", default_value = daemon::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Serve Prometheus metrics on ADDR:PORT (/metrics): backends and their state,
    /// reloads, token-steering and registry counters.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Run as this user (a name or a uid) keeping only the capabilities the
    /// balancer needs (CAP_NET_ADMIN; with token steering also CAP_BPF,
    /// CAP_PERFMON and CAP_SYS_ADMIN); the state directory must be writable by it. Without it the
    /// balancer keeps its user and drops every other capability.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
}

/// `mptcp lb status`.
#[derive(Debug, Args)]
pub struct LbStatusArgs {
    /// Where the balancer writes its status.
    #[arg(long, value_name = "DIR", default_value = daemon::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
}

/// Runs `mptcp lb ...`.
pub fn run(cmd: LbCommand, out: &Output) -> Result<u8, Error> {
    match cmd {
        LbCommand::Run(args) => run_balancer(&args, out),
        LbCommand::Status(args) => {
            let status = daemon::read_status(&args.state_dir).map_err(Error::msg)?;
            if out.json {
                out.json(&status)?;
            } else {
                out.print(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&status).unwrap_or_default()
                ))?;
            }
            Ok(EXIT_OK)
        }
    }
}

fn run_balancer(args: &LbRunArgs, out: &Output) -> Result<u8, Error> {
    let source = match &args.config {
        Some(path) => {
            // Refuse a bad file before anything is touched.
            Config::from_file(path).map_err(Error::msg)?;
            Source::File(path.clone())
        }
        None => {
            let config = Config {
                mode: args.mode,
                vips: args.vip.clone(),
                backends: args.backend.clone(),
                steering: match (args.steer_tokens, args.registry, &args.key) {
                    (true, Some(registry), Some(key)) => Some(mptcp_lb::config::Steering {
                        registry,
                        key: key.clone(),
                        ingress: args.ingress.clone(),
                    }),
                    _ => None,
                },
            };
            config.check().map_err(Error::msg)?;
            Source::Fixed(config)
        }
    };
    // Before any thread exists (capability sets are per thread). Rules are
    // applied for the balancer's whole life (SIGHUP, backends coming and going),
    // by `nft` and `ip` (CAP_NET_ADMIN, passed on through the ambient set) and,
    // with token steering, a tc program and its map: CAP_BPF, CAP_PERFMON and
    // CAP_SYS_ADMIN (the loader finds programs already attached by id), as the
    // systemd unit allows. A reload that turns steering on needs a restart.
    let steering = match &source {
        Source::File(path) => Config::from_file(path)
            .map(|c| c.steering.is_some())
            .unwrap_or(false),
        Source::Fixed(c) => c.steering.is_some(),
    };
    let mut keep = rustix::thread::CapabilitySet::NET_ADMIN;
    if steering {
        use rustix::thread::CapabilitySet as C;
        keep |= C::BPF | C::PERFMON | C::SYS_ADMIN;
    }
    crate::privilege::restrict(keep, args.user.as_deref())?;
    let opts = Options {
        source,
        state_dir: args.state_dir.clone(),
        metrics: args.metrics,
    };
    let stop = super::stop_flag_without_hup()?;
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))
        .map_err(|e| Error::msg(format!("cannot handle SIGHUP: {e}")))?;
    let mut failed_output = None;
    let mut log = |event: Event| {
        let style = match &event {
            Event::ReloadFailed { .. } => output::BAD,
            _ => anstyle::Style::new(),
        };
        if failed_output.is_none() {
            failed_output = out.log_event(&event, style).err();
        }
    };
    daemon::run(&opts, &stop, &reload, &mut log).map_err(Error::msg)?;
    if let Some(e) = failed_output {
        return Err(e);
    }
    Ok(EXIT_OK)
}
