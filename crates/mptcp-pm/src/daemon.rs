//! The daemon: snapshot the host, plan, apply the difference, on every relevant
//! rtnetlink notification and on a periodic resync; clean up on exit.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mptcp_net::TcpState;
use mptcp_netlink::{EndpointFlags, Limits, NewEndpoint, PathManager};
use serde::Serialize;

use crate::config::{Config, ConfigError, Role};
use crate::host::HostState;
use crate::plan::{plan, Action, KernelView, Plan, Skipped};
use crate::rtnl::{set_loose_rp_filter, Rtnl, Watcher};
use crate::state::{self, Lock, Memory};

/// The sysctl whose 0 sets the MP_CAPABLE "C" flag: "do not join my initial address".
const C_FLAG_SYSCTL: &str = "net.mptcp.allow_join_initial_addr_port";

/// How long a burst of notifications may go on before the daemon acts on it.
const SETTLE: Duration = Duration::from_millis(30);
/// The longest the daemon waits before looking at its stop flag.
const TICK: Duration = Duration::from_millis(200);
/// How often the connections a `--userspace` run left are listed again (to forget
/// closed ones whose event was lost).
const LEFTOVER_SWEEP: Duration = Duration::from_secs(2);

/// Why the daemon cannot start or go on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Another manager holds the namespace: another daemon (lock), NetworkManager or
    /// mptcpd.
    #[error("{0}")]
    Busy(String),
    /// The path manager refused or failed.
    #[error(transparent)]
    Netlink(#[from] mptcp_netlink::Error),
    /// The host cannot do what the configuration asks (a VIP it does not hold, a join
    /// port in use).
    #[error("{0}")]
    Refused(String),
    /// A system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: io::Error,
    },
}

impl Error {
    fn io(what: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The configuration.
    pub config: Config,
    /// Log what would change, change nothing.
    pub dry_run: bool,
    /// Leave the endpoints (and limits) in place on exit.
    pub keep: bool,
    /// Start even when NetworkManager or mptcpd runs in this namespace.
    pub force: bool,
    /// Set `rp_filter` to 2 on interfaces with an endpoint where it is strict.
    pub fix_rp_filter: bool,
    /// Where the lock and state file live.
    pub state_dir: PathBuf,
}

impl Options {
    /// Defaults: the given configuration, changes applied, cleanup on exit.
    pub fn new(config: Config) -> Options {
        Options {
            config,
            dry_run: false,
            keep: false,
            force: false,
            fix_rp_filter: false,
            state_dir: PathBuf::from(state::DEFAULT_STATE_DIR),
        }
    }
}

/// One line of the daemon's log: what it did (or, with `--dry-run`, would do) and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Report {
    /// Publishing this host's tokens to a balancer's registry (token steering).
    Publishing {
        /// The registry.
        registry: std::net::SocketAddr,
        /// The address this host publishes as.
        backend: IpAddr,
    },
    /// A sysctl set (behind a balancer: the C flag), or put back on exit.
    Sysctl {
        /// Its name.
        name: String,
        /// The value it had.
        from: String,
        /// The value set.
        to: String,
        /// Why.
        reason: String,
    },
    /// Started: role, namespace, and the endpoints adopted from an earlier run.
    Started {
        /// The role.
        role: Role,
        /// Dry run.
        dry_run: bool,
        /// Endpoints of an earlier run found again.
        adopted: usize,
        /// Endpoints found that are not ours, left alone.
        foreign: usize,
    },
    /// A change, applied or (dry run) not.
    Change {
        /// What.
        #[serde(flatten)]
        action: Action,
        /// Whether it was applied.
        applied: bool,
        /// Why it failed, if it did.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// Candidates that do not fit in the kernel's 8 endpoints (said once per set).
    OverCapacity {
        /// The addresses left out, with why.
        skipped: Vec<Skipped>,
    },
    /// A server's addresses left unannounced because its MPTCP listeners are bound to
    /// other addresses and would reset joins to them (said once per set; an empty set
    /// says they are announced again).
    NotAnnounced {
        /// The addresses, with why.
        skipped: Vec<Skipped>,
    },
    /// `rp_filter` is strict (1) on interfaces with endpoints.
    RpFilterStrict {
        /// The interfaces.
        interfaces: Vec<String>,
        /// Whether it was set to 2 (`--fix-rp-filter`).
        fixed: bool,
    },
    /// The kernel refused the `laminar` flag: endpoints go without it from now on.
    NoLaminar,
    /// The first reconcile is done (sent to systemd as READY=1).
    Ready {
        /// Endpoints this daemon holds.
        endpoints: usize,
        /// The limits now.
        #[serde(skip_serializing_if = "Option::is_none")]
        limits: Option<Limits>,
    },
    /// The userspace mode switched the namespace's path manager (and back on exit).
    PathManager {
        /// The sysctl, e.g. `net.mptcp.path_manager`.
        sysctl: String,
        /// Its value now.
        value: String,
        /// Its value before.
        previous: String,
    },
    /// The userspace mode's policy engine sent a command.
    Policy {
        /// What and why.
        #[serde(flatten)]
        decision: crate::engine::Decision,
        /// Whether the kernel took it.
        applied: bool,
        /// Why it failed, if it did.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A server reset a subflow its peer had replaced: between the same two
    /// addresses it heard nothing for 6 s while a newer one hears the peer (a
    /// client that lost a path and joined again over it once back; the server never
    /// heard of the close). It held one of the connection's join places.
    SubflowReplaced {
        /// The connection's token.
        #[serde(skip_serializing_if = "Option::is_none")]
        token: Option<u32>,
        /// The subflow's local end.
        local: std::net::SocketAddr,
        /// The subflow's remote end.
        remote: std::net::SocketAddr,
        /// Milliseconds it heard nothing from the peer.
        silent_ms: u64,
        /// The peer's end of the subflow that replaced it.
        by: std::net::SocketAddr,
        /// Reset (`false`: dry run, or it failed).
        applied: bool,
        /// Why it failed, if it did.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// An endpoint removed and added again so that the kernel re-opens subflows
    /// from it on the connections of its in-kernel path manager that lost theirs
    /// (a client; see the crate docs, "Subflows the kernel does not re-open").
    Rearmed {
        /// The endpoint's id.
        id: u8,
        /// Its address.
        address: IpAddr,
        /// Connections with no subflow at all that lacked it.
        stuck: usize,
        /// Connections with subflows that lost theirs from it.
        degraded: usize,
        /// Removed (the add that follows is a change of its own).
        applied: bool,
        /// Why it failed, if it did.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A reconcile failed; the next notification or resync tries again.
    Error {
        /// What failed.
        message: String,
    },
    /// Endpoints an earlier in-kernel run kept for its live connections were removed,
    /// no subflow using their address any more (`--userspace`; the in-kernel mode
    /// adopts them into its plan instead).
    Released {
        /// How many were removed now.
        removed: usize,
        /// How many are still in use.
        kept: usize,
    },
    /// Stopped: endpoints removed (0 with `--keep`), and those kept because live
    /// connections still have subflows on their addresses.
    Stopped {
        /// How many were removed.
        removed: usize,
        /// How many were kept for live connections: deleting an endpoint makes the
        /// kernel close every subflow from its address, a connection's initial one
        /// too. They stay recorded as this daemon's, and the next run (in-kernel or
        /// `--userspace`) adopts them and removes each once no subflow uses it.
        kept: usize,
        /// Whether the limits found at start were put back.
        limits_restored: bool,
    },
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Report::Started {
                role,
                dry_run,
                adopted,
                foreign,
            } => write!(
                f,
                "started as {role}{}: {adopted} endpoint(s) of an earlier run adopted, \
                 {foreign} not ours left alone",
                if *dry_run { " (dry run: nothing is changed)" } else { "" }
            ),
            Report::Change {
                action,
                applied,
                error,
            } => {
                let verb = if *applied { "" } else { "would " };
                match action {
                    Action::Add { endpoint: e } => {
                        let at = match (e.port, e.ifindex) {
                            (Some(port), _) => format!("port {port}"),
                            (None, 0) => "no dev".to_string(),
                            (None, _) => format!("dev {}", e.interface),
                        };
                        write!(
                            f,
                            "{verb}add {} id {} {} {at} ({})",
                            e.address, e.id, e.flags, e.reason
                        )?
                    }
                    Action::Remove {
                        id,
                        address,
                        reason,
                    } => write!(f, "{verb}remove {address} id {id} ({reason})")?,
                    Action::SetFlags {
                        id,
                        address,
                        flags,
                        reason,
                    } => write!(f, "{verb}set {address} id {id} to {flags} ({reason})")?,
                    Action::SetLimits {
                        subflows,
                        add_addr_accepted,
                        reason,
                    } => write!(
                        f,
                        "{verb}set limits subflows {subflows} add_addr_accepted \
                         {add_addr_accepted} ({reason})"
                    )?,
                }
                if let Some(e) = error {
                    write!(f, ": failed: {e}")?;
                }
                Ok(())
            }
            Report::OverCapacity { skipped } => {
                write!(f, "{} address(es) left out, over the kernel's 8 endpoints:", skipped.len())?;
                for s in skipped {
                    write!(f, " {} ({})", s.address, s.interface)?;
                }
                Ok(())
            }
            Report::NotAnnounced { skipped } => match skipped.first() {
                None => f.write_str("every usable address is announced again"),
                Some(first) => {
                    let addresses: Vec<String> =
                        skipped.iter().map(|s| s.address.to_string()).collect();
                    // The reason names the listeners, the same for every address of
                    // a family: the first one says it.
                    write!(f, "{} {}", addresses.join(", "), first.reason)
                }
            },
            Report::RpFilterStrict { interfaces, fixed } => {
                if *fixed {
                    write!(f, "rp_filter set to 2 (loose) on {}", interfaces.join(", "))
                } else {
                    write!(
                        f,
                        "warning: rp_filter is strict (1) on {}: subflows over them may be \
                         dropped; run with --fix-rp-filter or set net.ipv4.conf.IFACE.rp_filter=2",
                        interfaces.join(", ")
                    )
                }
            }
            Report::NoLaminar => f.write_str(
                "this kernel refuses the laminar flag (it needs Linux 6.18): endpoints go without it",
            ),
            Report::Ready { endpoints, limits } => {
                write!(f, "ready: {endpoints} endpoint(s)")?;
                if let Some(l) = limits {
                    write!(f, ", limits {l}")?;
                }
                Ok(())
            }
            Report::Error { message } => write!(f, "error: {message}"),
            Report::Rearmed {
                id,
                address,
                stuck,
                degraded,
                applied: _,
                error,
            } => {
                write!(
                    f,
                    "re-arm {address} id {id}: removed to be added again, for {stuck} \
                     connection(s) with no subflow left and {degraded} that lost theirs from it \
                     (the in-kernel path manager re-opens one only after its endpoint returns)"
                )?;
                if let Some(e) = error {
                    write!(f, ": failed: {e}")?;
                }
                Ok(())
            }
            Report::SubflowReplaced {
                token,
                local,
                remote,
                silent_ms,
                by,
                applied,
                error,
            } => {
                if let Some(t) = token {
                    write!(f, "{t:08x}: ")?;
                }
                let verb = if *applied || error.is_some() {
                    "reset"
                } else {
                    "would reset"
                };
                write!(
                    f,
                    "{verb} subflow {local} <- {remote} (nothing from the peer for {:.0} s; \
                     it joined again from {by}, which it is heard on)",
                    *silent_ms as f64 / 1000.0
                )?;
                if let Some(e) = error {
                    write!(f, ": failed: {e}")?;
                }
                Ok(())
            }
            Report::PathManager {
                sysctl,
                value,
                previous,
            } => write!(f, "{sysctl} = {value} (was {previous})"),
            Report::Policy {
                decision,
                applied,
                error,
            } => {
                use crate::engine::Command;
                let token = decision.command.token();
                match &decision.command {
                    Command::Create {
                        local,
                        remote,
                        backup,
                        local_id,
                        ..
                    } => write!(
                        f,
                        "{token:08x}: {}subflow {local} (id {local_id}) -> {remote}",
                        if *backup { "backup " } else { "" }
                    )?,
                    Command::Destroy { local, remote, .. } => {
                        write!(f, "{token:08x}: close subflow {local} -> {remote}")?
                    }
                    Command::SetBackup {
                        local,
                        remote,
                        backup,
                        ..
                    } => write!(
                        f,
                        "{token:08x}: {local} -> {remote} {}",
                        if *backup { "to backup" } else { "carries the traffic" }
                    )?,
                    Command::Announce { id, address, .. } => {
                        write!(f, "{token:08x}: announce {address} (id {id})")?
                    }
                    Command::Remove { id, .. } => write!(f, "{token:08x}: withdraw address id {id}")?,
                }
                write!(f, " ({})", decision.reason)?;
                if !applied {
                    write!(f, ": failed")?;
                }
                if let Some(e) = error {
                    write!(f, ": {e}")?;
                }
                Ok(())
            }
            Report::Sysctl {
                name,
                from,
                to,
                reason,
            } => write!(f, "sysctl {name} {from} -> {to}: {reason}"),
            Report::Publishing { registry, backend } => write!(
                f,
                "publishing this host's MPTCP tokens to the balancer's registry {registry} as backend {backend}"
            ),
            Report::Released { removed, kept } => write!(
                f,
                "{removed} endpoint(s) an in-kernel run kept for its connections removed, \
                 no subflow uses them any more ({kept} still in use)"
            ),
            Report::Stopped {
                removed,
                kept,
                limits_restored,
            } => {
                write!(f, "stopped: {removed} endpoint(s) removed")?;
                if *kept > 0 {
                    write!(
                        f,
                        ", {kept} kept for live connections (the next run removes each once \
                         no subflow uses it)"
                    )?;
                }
                if *limits_restored {
                    f.write_str(", limits restored")?;
                }
                Ok(())
            }
        }
    }
}

/// The running daemon, holding its namespace's lock.
pub struct Daemon {
    opts: Options,
    pm: PathManager,
    rtnl: Rtnl,
    watcher: Watcher,
    lock: Option<Lock>,
    memory: Memory,
    laminar: bool,
    limits_at_start: Option<Limits>,
    limits_changed: bool,
    /// `allow_join_initial_addr_port` as found and as set, when this daemon changed it.
    c_flag_at_start: Option<(String, String)>,
    first_pass: bool,
    publisher: Option<crate::publish::TokenPublisher>,
    last_over: Vec<Skipped>,
    last_rp: Vec<String>,
    last_dry: Vec<Action>,
    last_not_announced: Vec<Skipped>,
    listeners: crate::host::ListenerWatch,
    /// Connections a `--userspace` run left behind (made under the userspace path
    /// manager, which the kernel keeps for their life), driven by the engine until
    /// they close.
    leftovers: Option<Leftovers>,
    /// A client's in-kernel connections that lost subflows (see [`crate::rearm`]).
    rearmer: crate::rearm::Rearmer,
    /// A server's subflows its peer replaced (see [`crate::reap`]).
    reaper: crate::reap::Reaper,
}

/// The userspace-PM connections an earlier `--userspace` run left: the kernel's
/// in-kernel path manager will never touch them, and a server's kernel refuses
/// every join to them while no process listens to path-manager events.
struct Leftovers {
    driver: crate::driver::Driver,
    events: mptcp_netlink::Events,
    next_sweep: Instant,
}

impl fmt::Debug for Daemon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Daemon")
            .field("memory", &self.memory)
            .field("laminar", &self.laminar)
            .finish_non_exhaustive()
    }
}

impl Daemon {
    /// Checks that the namespace is free and takes it: the lock (not in a dry run),
    /// no NetworkManager or mptcpd here (unless `force`), the path manager reachable
    /// and writable. Endpoints an earlier run recorded are adopted, and the path
    /// manager a killed `--userspace` run left on `userspace` is given back
    /// (reported as [`Report::PathManager`]).
    ///
    /// # Errors
    /// [`Error::Busy`] with the reason, or what failed.
    pub fn start(opts: Options, log: &mut dyn FnMut(Report)) -> Result<Daemon, Error> {
        let netns =
            state::netns_id().map_err(|e| Error::io("cannot identify the network namespace", e))?;
        if !opts.force {
            refuse_other_managers()?;
        }
        let (lock, memory) = if opts.dry_run {
            (
                None,
                state::peek(&state::state_path(&opts.state_dir, netns)),
            )
        } else {
            let (lock, memory) = Lock::acquire(&opts.state_dir, netns).map_err(|e| {
                if e.kind() == io::ErrorKind::WouldBlock {
                    Error::Busy(e.to_string())
                } else {
                    Error::io("cannot take the daemon's lock", e)
                }
            })?;
            (Some(lock), memory)
        };
        let pm = PathManager::open()?;
        // Subscribe before the first snapshot, so no change falls in between.
        let watcher = Watcher::open().map_err(|e| Error::io("cannot watch the host's links", e))?;
        let rtnl = Rtnl::open().map_err(|e| Error::io("cannot open an rtnetlink socket", e))?;
        let endpoints = pm.endpoints()?;
        let limits_at_start = pm.limits()?;
        if !opts.dry_run {
            // A write that changes nothing: CAP_NET_ADMIN is checked now, not at the
            // first link change.
            pm.set_limits(limits_at_start)?;
        }
        let mut memory = Memory {
            pid: std::process::id(),
            ..memory
        };
        // Ours are never `implicit`: an implicit endpoint under a recorded id is the
        // kernel's (the recorded add never happened), not to be adopted.
        memory.owned.retain(|id, addr| {
            endpoints.iter().any(|e| {
                e.id == *id && e.address == *addr && !e.flags.contains(EndpointFlags::IMPLICIT)
            })
        });
        let adopted = memory.owned.len();
        let foreign = endpoints.len() - adopted;
        // A `--userspace` run of ours that was killed left the namespace's path
        // manager on `userspace` (the kernel then ignores these endpoints): give
        // back what it found.
        let restored = match memory.pm_restore.take() {
            Some(value) if !opts.dry_run => {
                let sysctl = crate::userspace::PmSysctl::find()?;
                let current = sysctl.read()?;
                if current != value {
                    sysctl.write(&value)?;
                }
                Some(Report::PathManager {
                    sysctl: sysctl.name(),
                    value,
                    previous: current,
                })
            }
            Some(value) => {
                memory.pm_restore = Some(value);
                None
            }
            None => None,
        };
        let mut daemon = Daemon {
            opts,
            pm,
            rtnl,
            watcher,
            lock,
            memory,
            laminar: true,
            limits_at_start: Some(limits_at_start),
            limits_changed: false,
            c_flag_at_start: None,
            first_pass: true,
            publisher: None,
            last_over: Vec::new(),
            last_rp: Vec::new(),
            last_not_announced: Vec::new(),
            listeners: crate::host::ListenerWatch::default(),
            leftovers: None,
            rearmer: crate::rearm::Rearmer::new(crate::rearm::Pace::IN_KERNEL),
            reaper: crate::reap::Reaper::default(),
            last_dry: Vec::new(),
        };
        daemon.save()?;
        if let Some(report) = restored {
            log(report);
        }
        log(Report::Started {
            role: daemon.opts.config.role,
            dry_run: daemon.opts.dry_run,
            adopted,
            foreign,
        });
        let server = &daemon.opts.config.server;
        if server.join_port.is_some()
            && server.vips.iter().any(|v| v.is_ipv6())
            && mptcp_netlink::sysctl::get("net.ipv4.tcp_timestamps").is_ok_and(|v| v != "0")
        {
            log(Report::Error {
                message: "an IPv6 VIP with a join port is announced in a 30-byte ADD_ADDR, \
                          which does not fit beside TCP timestamps: clients will not join it \
                          (set net.ipv4.tcp_timestamps=0 on this backend, or use token \
                          steering)"
                    .into(),
            });
        }
        if let (Role::Server, Some(registry), Some(key), false) = (
            daemon.opts.config.role,
            server.lb_registry,
            server.lb_key.as_ref(),
            daemon.opts.dry_run,
        ) {
            let publisher =
                crate::publish::TokenPublisher::start(registry, key).map_err(Error::Refused)?;
            log(Report::Publishing {
                registry,
                backend: publisher.backend(),
            });
            daemon.publisher = Some(publisher);
        }
        Ok(daemon)
    }

    fn save(&mut self) -> Result<(), Error> {
        if let Some(lock) = &mut self.lock {
            lock.save(&self.memory)
                .map_err(|e| Error::io(format!("cannot write {}", lock.path().display()), e))?;
        }
        Ok(())
    }

    fn kernel_view(&self) -> Result<KernelView, Error> {
        Ok(KernelView {
            endpoints: self.pm.endpoints()?,
            owned: self.memory.owned.clone(),
            remembered: self.memory.remembered.clone(),
            laminar: self.laminar,
            limits: Some(self.pm.limits()?),
        })
    }

    /// One pass: snapshot, plan, apply. Returns the plan it worked to.
    ///
    /// # Errors
    /// When the host or the path manager cannot be read; a refused change is
    /// reported (as a failed [`Report::Change`]) and retried on the next pass.
    pub fn reconcile(&mut self, log: &mut dyn FnMut(Report)) -> Result<Plan, Error> {
        loop {
            let mut host = self
                .rtnl
                .snapshot()
                .map_err(|e| Error::io("cannot read the host's links and addresses", e))?;
            host.mptcp_listeners = self.listeners.current.clone();
            let kernel = self.kernel_view()?;
            let plan = plan(&host, &self.opts.config, &kernel);
            self.report_once(&plan, &host, log);
            if let Some(b) = &plan.balancer {
                if let Some(vip) = b.missing_vips.first() {
                    return Err(Error::Refused(format!(
                        "VIP {vip} is not an address of this host: add it (`ip addr add {vip}/{} \
                         dev lo`) before announcing it",
                        if vip.is_ipv6() { 128 } else { 32 }
                    )));
                }
                if !self.opts.dry_run {
                    self.set_c_flag(b, log)?;
                }
            }
            let actions = plan.actions(&kernel);
            if self.opts.dry_run {
                if actions != self.last_dry {
                    for action in &actions {
                        log(Report::Change {
                            action: action.clone(),
                            applied: false,
                            error: None,
                        });
                    }
                    self.last_dry = actions;
                }
                return Ok(plan);
            }
            // Kernel-made endpoints our adds take over (same address, same id).
            let implicit: Vec<(u8, IpAddr)> = kernel
                .endpoints
                .iter()
                .filter(|e| e.flags.contains(EndpointFlags::IMPLICIT))
                .map(|e| (e.id, e.address))
                .collect();
            let mut again = false;
            for action in actions {
                let result = self.apply(&action, &implicit);
                if let (Err(e), Action::Add { endpoint }, true) =
                    (&result, &action, self.first_pass)
                {
                    if let Some(port) = endpoint.port {
                        return Err(Error::Refused(format!(
                            "cannot announce {}: {e} (is the join port already in use by a \
                             listener or another endpoint?)",
                            std::net::SocketAddr::new(endpoint.address, port)
                        )));
                    }
                }
                if let Err(e) = &result {
                    if matches!(&action, Action::Add { endpoint } if endpoint.flags.contains(EndpointFlags::LAMINAR))
                        && is_invalid(e)
                        && self.laminar
                    {
                        self.laminar = false;
                        log(Report::NoLaminar);
                        again = true;
                        break;
                    }
                }
                log(Report::Change {
                    action,
                    applied: result.is_ok(),
                    error: result.err().map(|e| e.to_string()),
                });
            }
            self.save()?;
            if !again {
                self.first_pass = false;
                return Ok(plan);
            }
        }
    }

    fn apply(
        &mut self,
        action: &Action,
        implicit: &[(u8, IpAddr)],
    ) -> Result<(), mptcp_netlink::Error> {
        apply_action(
            &mut self.pm,
            &mut self.memory,
            self.lock.as_mut(),
            action,
            implicit,
        )?;
        if matches!(action, Action::SetLimits { .. }) {
            self.limits_changed = true;
        }
        Ok(())
    }

    /// Sets `allow_join_initial_addr_port` to what the balancer plan wants (the C
    /// flag), remembering the value found so shutdown can put it back.
    fn set_c_flag(
        &mut self,
        b: &crate::plan::BalancerPlan,
        log: &mut dyn FnMut(Report),
    ) -> Result<(), Error> {
        let want = b.allow_join_initial_addr_port.to_string();
        let now = mptcp_netlink::sysctl::get(C_FLAG_SYSCTL)?;
        if now.trim() != want {
            mptcp_netlink::sysctl::set(C_FLAG_SYSCTL, &want)?;
            if self.c_flag_at_start.is_none() {
                self.c_flag_at_start = Some((now.trim().to_string(), want.clone()));
            }
            log(Report::Sysctl {
                name: C_FLAG_SYSCTL.into(),
                from: now.trim().into(),
                to: want,
                reason: b.reason.clone(),
            });
        }
        Ok(())
    }

    /// Reports what should be said once, not on every pass: the addresses over the
    /// 8-endpoint cap, and strict `rp_filter` (fixed here with `--fix-rp-filter`).
    fn report_once(&mut self, plan: &Plan, host: &HostState, log: &mut dyn FnMut(Report)) {
        if plan.over_capacity != self.last_over {
            if !plan.over_capacity.is_empty() {
                log(Report::OverCapacity {
                    skipped: plan.over_capacity.clone(),
                });
            }
            self.last_over = plan.over_capacity.clone();
        }
        let _ = host;
        if plan.not_announced != self.last_not_announced {
            log(Report::NotAnnounced {
                skipped: plan.not_announced.clone(),
            });
            self.last_not_announced = plan.not_announced.clone();
        }
        if plan.strict_rp_filter != self.last_rp {
            if !plan.strict_rp_filter.is_empty() {
                let fixed = self.opts.fix_rp_filter && !self.opts.dry_run;
                let mut done = Vec::new();
                if fixed {
                    for name in &plan.strict_rp_filter {
                        match set_loose_rp_filter(name) {
                            Ok(()) => done.push(name.clone()),
                            Err(e) => log(Report::Error {
                                message: format!("cannot set rp_filter on {name}: {e}"),
                            }),
                        }
                    }
                }
                log(Report::RpFilterStrict {
                    interfaces: if fixed {
                        done
                    } else {
                        plan.strict_rp_filter.clone()
                    },
                    fixed,
                });
            }
            self.last_rp = plan.strict_rp_filter.clone();
        }
    }

    /// Runs until `stop` is raised: a first reconcile (then READY=1 to systemd), then
    /// one after every burst of relevant notifications and every resync interval.
    ///
    /// # Errors
    /// When the first reconcile fails or the notification socket breaks; later
    /// failures are logged and retried.
    pub fn run(&mut self, stop: &AtomicBool, log: &mut dyn FnMut(Report)) -> Result<(), Error> {
        let server = self.opts.config.role == Role::Server;
        if server {
            self.poll_listeners(log);
        }
        let plan = self.reconcile(log)?;
        if !self.opts.dry_run {
            self.find_leftovers(&plan, log);
        }
        log(Report::Ready {
            endpoints: self.memory.owned.len(),
            limits: plan.limits.as_ref().map(|l| l.limits()),
        });
        let _ = sd_notify::notify(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&format!("{} endpoint(s)", self.memory.owned.len())),
        ]);
        let mut next_resync = Instant::now() + self.opts.config.resync_interval;
        let mut next_reap = Instant::now() + crate::reap::REAP_EVERY;
        let mut next_rearm = Instant::now() + crate::rearm::CHECK_EVERY;
        while !stop.load(Ordering::SeqCst) {
            let now = Instant::now();
            let wait = next_resync.saturating_duration_since(now).min(TICK);
            let mut changed = self
                .watcher
                .wait(wait)
                .map_err(|e| Error::io("cannot read link notifications", e))?;
            if changed {
                // Let the burst settle (an interface coming up brings its addresses
                // and routes a few milliseconds apart), within bounds.
                for _ in 0..10 {
                    if !self
                        .watcher
                        .wait(SETTLE)
                        .map_err(|e| Error::io("cannot read link notifications", e))?
                    {
                        break;
                    }
                }
            } else if Instant::now() >= next_resync {
                changed = true;
            }
            // A server announces what its listeners take joins on: a service that
            // starts, stops or rebinds changes the plan.
            changed |= server && self.poll_listeners(log);
            if changed {
                next_resync = Instant::now() + self.opts.config.resync_interval;
                match self.reconcile(log) {
                    Ok(plan) => self.leftover_paths(&plan, log),
                    Err(e) => log(Report::Error {
                        message: e.to_string(),
                    }),
                }
            }
            self.drive_leftovers(log);
            if server && Instant::now() >= next_reap {
                next_reap = Instant::now() + crate::reap::REAP_EVERY;
                match mptcp_netlink::connections() {
                    Ok(conns) => self
                        .reaper
                        .reap(Instant::now(), &conns, self.opts.dry_run, log),
                    Err(e) => log(Report::Error {
                        message: format!("cannot list the connections: {e}"),
                    }),
                }
            }
            if !server && !self.opts.dry_run && Instant::now() >= next_rearm {
                next_rearm = Instant::now() + crate::rearm::CHECK_EVERY;
                let removed = match mptcp_netlink::connections() {
                    Ok(conns) => rearm_endpoints(
                        &mut self.pm,
                        &mut self.memory,
                        &mut self.rearmer,
                        &conns,
                        log,
                    ),
                    Err(e) => {
                        log(Report::Error {
                            message: format!("cannot list the connections: {e}"),
                        });
                        false
                    }
                };
                // The plan adds them back at once.
                if removed {
                    match self.reconcile(log) {
                        Ok(plan) => self.leftover_paths(&plan, log),
                        Err(e) => log(Report::Error {
                            message: e.to_string(),
                        }),
                    }
                }
            }
        }
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        Ok(())
    }

    /// Looks for connections of the userspace path manager (a `--userspace` run
    /// before this one) and, if there are any, drives them from now on: subscribed to
    /// path-manager events first (so none is missed, and so a server's kernel takes
    /// joins to them again), then adopted from a `sock_diag` dump.
    fn find_leftovers(&mut self, plan: &Plan, log: &mut dyn FnMut(Report)) {
        let events = match mptcp_netlink::Events::subscribe() {
            Ok(events) => events,
            Err(e) => {
                log(Report::Error {
                    message: format!("cannot subscribe to path-manager events: {e}"),
                });
                return;
            }
        };
        let mut driver = crate::driver::Driver::new(
            crate::engine::Engine::new(self.opts.config.userspace.clone()),
            false,
        );
        let now = Instant::now();
        let d = driver
            .engine
            .set_paths(now, crate::driver::local_paths(plan));
        driver.apply(&self.pm, now, d, log);
        if let Err(e) = driver.sweep(&self.pm, now, log) {
            log(Report::Error {
                message: format!("cannot list the connections: {e}"),
            });
            return;
        }
        if !driver.is_empty() {
            self.leftovers = Some(Leftovers {
                driver,
                events,
                next_sweep: now + LEFTOVER_SWEEP,
            });
        }
    }

    /// The plan's paths to the leftovers' engine.
    fn leftover_paths(&mut self, plan: &Plan, log: &mut dyn FnMut(Report)) {
        if let Some(l) = &mut self.leftovers {
            let now = Instant::now();
            let d = l
                .driver
                .engine
                .set_paths(now, crate::driver::local_paths(plan));
            l.driver.apply(&self.pm, now, d, log);
        }
    }

    /// Events, timers and the periodic sweep of the leftovers; they are let go
    /// (and the event subscription with them) once the last one has closed.
    fn drive_leftovers(&mut self, log: &mut dyn FnMut(Report)) {
        let Some(l) = &mut self.leftovers else {
            return;
        };
        for _ in 0..256 {
            match l.events.next_timeout(Duration::ZERO) {
                Ok(Some(ev)) => l.driver.event(&self.pm, Instant::now(), &ev, log),
                Ok(None) => break,
                Err(mptcp_netlink::Error::EventsLost) => {
                    l.next_sweep = Instant::now();
                    break;
                }
                Err(e) => {
                    log(Report::Error {
                        message: format!("path-manager events: {e}"),
                    });
                    break;
                }
            }
        }
        let now = Instant::now();
        let d = l.driver.engine.tick(now);
        l.driver.apply(&self.pm, now, d, log);
        if now >= l.next_sweep {
            l.next_sweep = now + LEFTOVER_SWEEP;
            if let Err(e) = l.driver.sweep(&self.pm, now, log) {
                log(Report::Error {
                    message: format!("cannot list the connections: {e}"),
                });
            }
            if l.driver.is_empty() {
                self.leftovers = None;
            }
        }
    }

    /// Reads the MPTCP listeners when due; whether they changed.
    fn poll_listeners(&mut self, log: &mut dyn FnMut(Report)) -> bool {
        self.listeners
            .poll(Instant::now())
            .unwrap_or_else(|message| {
                log(Report::Error { message });
                false
            })
    }

    /// Ends the daemon: unless `--keep` (or a dry run), removes its endpoints and puts
    /// back the limits it found at start; then releases the lock.
    ///
    /// # Errors
    /// When the path manager fails; the lock is released anyway.
    pub fn shutdown(mut self, log: &mut dyn FnMut(Report)) -> Result<(), Error> {
        if self.opts.keep || self.opts.dry_run {
            log(Report::Stopped {
                removed: 0,
                kept: 0,
                limits_restored: false,
            });
            return Ok(());
        }
        let in_use = addresses_in_use().unwrap_or_else(|e| {
            log(Report::Error {
                message: format!(
                    "cannot list the connections ({e}): removing every endpoint, live \
                     connections lose the subflows on them"
                ),
            });
            BTreeSet::new()
        });
        let (removed, kept) = release_endpoints(&mut self.pm, &mut self.memory.owned, &in_use)?;
        let mut limits_restored = false;
        if let (true, Some(l)) = (self.limits_changed, self.limits_at_start) {
            self.pm.set_limits(l)?;
            limits_restored = true;
        }
        if let Some((old, set)) = self.c_flag_at_start.take() {
            mptcp_netlink::sysctl::set(C_FLAG_SYSCTL, &old)?;
            log(Report::Sysctl {
                name: C_FLAG_SYSCTL.into(),
                from: set,
                to: old,
                reason: "put back on exit".into(),
            });
        }
        self.save()?;
        log(Report::Stopped {
            removed,
            kept,
            limits_restored,
        });
        Ok(())
    }

    /// The endpoints this daemon holds: id -> address.
    pub fn owned(&self) -> &BTreeMap<u8, IpAddr> {
        &self.memory.owned
    }
}

/// The local addresses of the subflows of this namespace's live MPTCP connections:
/// those a process still holds (IPv4-mapped IPv6 addresses as IPv4).
///
/// Orphans (closed by their process, inode 0) do not count: measured in the chaos
/// soak, a connection whose far end never acknowledges its DATA_FIN lingers in
/// FIN-WAIT-2 or CLOSING with established subflows until `net.mptcp.close_timeout`
/// (60 s), and nobody is left to read what it would still carry.
pub(crate) fn addresses_in_use() -> Result<BTreeSet<IpAddr>, mptcp_netlink::Error> {
    Ok(mptcp_netlink::connections()?
        .iter()
        .filter(|c| !c.is_listener() && c.inode != 0)
        .flat_map(|c| &c.subflows)
        .filter(|s| !matches!(s.state, TcpState::TimeWait | TcpState::Close))
        .map(|s| s.local.ip().to_canonical())
        .collect())
}

/// Carries out one step of a plan on the kernel's endpoints and this daemon's
/// record of them (written ahead of an add when there is a `lock`): the in-kernel
/// mode's passes, and `--userspace` keeping the endpoints of the connections an
/// in-kernel run left.
pub(crate) fn apply_action(
    pm: &mut PathManager,
    memory: &mut Memory,
    mut lock: Option<&mut Lock>,
    action: &Action,
    implicit: &[(u8, IpAddr)],
) -> Result<(), mptcp_netlink::Error> {
    match action {
        Action::Remove { id, .. } => {
            match pm.delete_endpoint(*id) {
                Ok(()) | Err(mptcp_netlink::Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
            memory.owned.remove(id);
        }
        Action::SetFlags { id, flags, .. } => pm.set_endpoint_flags(*id, *flags)?,
        Action::Add { endpoint: p } => {
            let mut new = NewEndpoint::new(p.address).flags(p.flags);
            // The kernel replaces an implicit endpoint in place (its id, its
            // subflows kept) only when the add names no id: with the id, it
            // answers EBUSY (the id is taken), and the address would stay
            // without our endpoint for good. Deleting the implicit one first
            // would close the subflows that use it.
            if !implicit.contains(&(p.id, p.address)) {
                new = new.id(p.id);
            }
            if p.ifindex != 0 {
                new = new.interface(p.ifindex);
            }
            if let Some(port) = p.port {
                new = new.port(port);
            }
            // Written ahead: killed between the kernel's add and the save after
            // the pass, a daemon would leave an endpoint no state file names, which
            // every later run takes for someone else's and never removes. A record
            // of an add that did not happen is dropped at the next start (adoption
            // needs the endpoint in the kernel, not implicit).
            let before = memory.owned.insert(p.id, p.address);
            let undo = |owned: &mut BTreeMap<u8, IpAddr>| match before {
                Some(a) => owned.insert(p.id, a),
                None => owned.remove(&p.id),
            };
            if let Some(lock) = &mut lock {
                if let Err(source) = lock.save(memory) {
                    undo(&mut memory.owned);
                    return Err(mptcp_netlink::Error::Io {
                        context: "cannot record the endpoint in the state file",
                        source,
                    });
                }
            }
            let added = match pm.add_endpoint(&new) {
                Ok(added) => added,
                Err(e) => {
                    undo(&mut memory.owned);
                    return Err(e);
                }
            };
            if added.id != p.id {
                undo(&mut memory.owned);
            }
            memory.owned.insert(added.id, added.address);
            memory.remembered.insert(added.address, added.id);
        }
        Action::SetLimits {
            subflows,
            add_addr_accepted,
            ..
        } => {
            pm.set_limits(Limits {
                subflows: *subflows,
                add_addr_accepted: *add_addr_accepted,
            })?;
        }
    }
    Ok(())
}

/// Removes the endpoints of ours that a client's in-kernel connections lost their
/// subflows from and need re-armed ([`crate::rearm`]), one report each; the caller
/// adds them back (its plan wants them). Whether any was removed.
pub(crate) fn rearm_endpoints(
    pm: &mut PathManager,
    memory: &mut Memory,
    rearmer: &mut crate::rearm::Rearmer,
    conns: &[mptcp_netlink::Connection],
    log: &mut dyn FnMut(Report),
) -> bool {
    let endpoints = match pm.endpoints() {
        Ok(e) => e,
        Err(e) => {
            log(Report::Error {
                message: format!("cannot list the endpoints: {e}"),
            });
            return false;
        }
    };
    let ours: BTreeSet<u8> = memory.owned.keys().copied().collect();
    let mut removed = false;
    for r in rearmer.check(Instant::now(), conns, &endpoints, &ours) {
        let action = Action::Remove {
            id: r.id,
            address: r.address,
            reason: "re-arm".into(),
        };
        // No lock: a removal is recorded by the save after the pass.
        let result = apply_action(pm, memory, None, &action, &[]);
        removed |= result.is_ok();
        log(Report::Rearmed {
            id: r.id,
            address: r.address,
            stuck: r.stuck,
            degraded: r.degraded,
            applied: result.is_ok(),
            error: result.err().map(|e| e.to_string()),
        });
    }
    removed
}

/// Deletes the endpoints of `owned` whose address no live subflow uses (`in_use`) and
/// forgets them (and those already gone); the others stay in the kernel and in
/// `owned`. Returns how many were removed and how many kept.
pub(crate) fn release_endpoints(
    pm: &mut PathManager,
    owned: &mut BTreeMap<u8, IpAddr>,
    in_use: &BTreeSet<IpAddr>,
) -> Result<(usize, usize), Error> {
    let (mut removed, mut kept) = (0, 0);
    let current = pm.endpoints()?;
    let ours: Vec<(u8, IpAddr)> = owned.iter().map(|(i, a)| (*i, *a)).collect();
    for (id, addr) in ours {
        if !current.iter().any(|e| e.id == id && e.address == addr) {
            owned.remove(&id);
            continue;
        }
        if in_use.contains(&addr.to_canonical()) {
            kept += 1;
            continue;
        }
        match pm.delete_endpoint(id) {
            Ok(()) | Err(mptcp_netlink::Error::NotFound { .. }) => removed += 1,
            Err(e) => return Err(e.into()),
        }
        owned.remove(&id);
    }
    Ok((removed, kept))
}

fn is_invalid(e: &mptcp_netlink::Error) -> bool {
    match e {
        mptcp_netlink::Error::Invalid(_) => true,
        mptcp_netlink::Error::Kernel { errno, .. } => *errno == libc::EINVAL,
        _ => false,
    }
}

/// What `mptcp pm plan` shows: the host, the kernel, the plan and its actions, with
/// no lock taken and nothing changed. The daemon's state file (if one runs here) says
/// which endpoints are its own.
///
/// # Errors
/// When the host or the path manager cannot be read.
pub fn preview(config: &Config, state_dir: &std::path::Path) -> Result<(Plan, Vec<Action>), Error> {
    let netns =
        state::netns_id().map_err(|e| Error::io("cannot identify the network namespace", e))?;
    let memory = state::peek(&state::state_path(state_dir, netns));
    let pm = PathManager::open()?;
    let mut host = Rtnl::open()
        .and_then(|mut r| r.snapshot())
        .map_err(|e| Error::io("cannot read the host's links and addresses", e))?;
    if config.role == Role::Server {
        host.mptcp_listeners = mptcp_netlink::listeners()?;
    }
    let endpoints = pm.endpoints()?;
    let mut owned = memory.owned;
    owned.retain(|id, addr| {
        endpoints.iter().any(|e| {
            e.id == *id && e.address == *addr && !e.flags.contains(EndpointFlags::IMPLICIT)
        })
    });
    let kernel = KernelView {
        endpoints,
        owned,
        remembered: memory.remembered,
        laminar: true,
        limits: Some(pm.limits()?),
    };
    let plan = plan(&host, config, &kernel);
    let actions = plan.actions(&kernel);
    Ok((plan, actions))
}

/// Fails with [`Error::Busy`] when NetworkManager or mptcpd runs in this
/// network namespace ([`Daemon::start`] checks it unless `force`). Reading other
/// processes' namespaces needs the capabilities they have: a caller that drops
/// its own before starting the daemon checks first.
pub fn refuse_other_managers() -> Result<(), Error> {
    let netns =
        state::netns_id().map_err(|e| Error::io("cannot identify the network namespace", e))?;
    match other_manager(netns) {
        Some(other) => Err(Error::Busy(other)),
        None => Ok(()),
    }
}

/// Another endpoint manager running in the namespace `netns`: NetworkManager (1.40+
/// manages endpoints for the links it manages) or mptcpd.
pub(crate) fn other_manager(netns: u64) -> Option<String> {
    let me = std::process::id();
    let entries = std::fs::read_dir("/proc").ok()?;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else {
            continue;
        };
        let comm = comm.trim();
        let why = match comm {
            "NetworkManager" => {
                "manages MPTCP endpoints for its links (1.40+, connection.mptcp-flags): \
                                 set mptcp-flags to disabled on its connections, stop it"
            }
            "mptcpd" => "manages MPTCP endpoints: stop it",
            _ => continue,
        };
        let Ok(meta) = rustix::fs::stat(entry.path().join("ns/net")) else {
            continue;
        };
        if meta.st_ino == netns {
            return Some(format!(
                "{comm} (pid {pid}) runs in this network namespace and {why}, or pass --force"
            ));
        }
    }
    None
}
