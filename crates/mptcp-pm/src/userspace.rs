//! `mptcp pm run --userspace`: the namespace's path manager switched to userspace for
//! the daemon's lifetime, every MPTCP connection driven by the [`Engine`] through the
//! userspace-PM commands.
//!
//! The loop: path-manager events (50 ms at most between looks at the other inputs),
//! the host's links over rtnetlink (the same usable paths as the in-kernel mode, from
//! [`crate::plan()`]), subflow measurements over `sock_diag` every 100 ms while a
//! `handover` or `interactive` connection exists (every 2 s otherwise, to forget
//! connections whose `closed` event was lost and to adopt the established ones no
//! event announced: those open before a restart, or whose events were lost), timers. Every command is logged with
//! the engine's reason. A status file next to the lock serves `mptcp pm status`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mptcp_netlink::codec::AddressAttrs;
use mptcp_netlink::{Endpoint, Events, PathManager};
use serde::{Deserialize, Serialize};

use crate::daemon::{other_manager, Error, Options, Report};
use crate::driver::Driver;
use crate::engine::{ConnStatus, Decision, Engine, LocalPath};
use crate::plan::{plan, KernelView};
use crate::rtnl::{Rtnl, Watcher};
use crate::state::{self, Lock, Memory};

const EVENT_WAIT: Duration = Duration::from_millis(50);
const MEASURE_EVERY: Duration = Duration::from_millis(100);
const SWEEP_EVERY: Duration = Duration::from_secs(2);
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// Where the namespace's path-manager choice lives: `net.mptcp.path_manager` (6.15+)
/// or the older `net.mptcp.pm_type`.
#[derive(Debug, Clone)]
pub(crate) struct PmSysctl {
    path: &'static str,
    userspace: &'static str,
}

impl PmSysctl {
    pub(crate) fn find() -> Result<PmSysctl, Error> {
        for (path, userspace) in [
            ("/proc/sys/net/mptcp/path_manager", "userspace"),
            ("/proc/sys/net/mptcp/pm_type", "1"),
        ] {
            if Path::new(path).exists() {
                return Ok(PmSysctl { path, userspace });
            }
        }
        Err(Error::Io {
            what: "this kernel has no userspace path manager (needs Linux 5.19)".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        })
    }

    pub(crate) fn read(&self) -> Result<String, Error> {
        std::fs::read_to_string(self.path)
            .map(|s| s.trim().to_string())
            .map_err(|e| Error::Io {
                what: format!("cannot read {}", self.path),
                source: e,
            })
    }

    pub(crate) fn write(&self, value: &str) -> Result<(), Error> {
        std::fs::write(self.path, value).map_err(|e| Error::Io {
            what: format!("cannot write {value} to {}", self.path),
            source: e,
        })
    }

    pub(crate) fn name(&self) -> String {
        self.path.trim_start_matches("/proc/sys/").replace('/', ".")
    }
}

/// The status file `mptcp pm status` reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusFile {
    /// The daemon's pid.
    pub pid: u32,
    /// Seconds since the Unix epoch when written.
    pub written: f64,
    /// The usable paths.
    pub paths: Vec<LocalPath>,
    /// The live connections.
    pub connections: Vec<ConnStatus>,
}

/// The status file of the namespace `netns` under `dir`.
pub fn status_path(dir: &Path, netns: u64) -> PathBuf {
    dir.join(format!("net-{netns}.status.json"))
}

/// The running userspace daemon.
pub struct UserspaceDaemon {
    opts: Options,
    pm: PathManager,
    events: Events,
    rtnl: Rtnl,
    watcher: Watcher,
    lock: Lock,
    memory: Memory,
    driver: Driver,
    sysctl: PmSysctl,
    original: String,
    status_path: PathBuf,
    /// A server's paths of the last plan, as the endpoints they would be: a link's
    /// loss keeps them, as the in-kernel mode keeps its endpoints (see
    /// [`crate::plan()`]: clients reach the address over the other links).
    announced: Vec<Endpoint>,
    /// A server's MPTCP listeners: it announces only what they take joins on.
    listeners: crate::host::ListenerWatch,
    last_not_announced: Vec<crate::plan::Skipped>,
    /// Connections of the in-kernel path manager (made before this run: none can be
    /// made during it) may still live: while they do, the endpoints they need follow
    /// the links as an in-kernel run's would ([`Self::keep_kernel_endpoints`]), even
    /// when the run before left none (it had removed them all, its links down). Off
    /// for good once a sweep finds none.
    handing_over: bool,
    /// Established connections of the in-kernel path manager at the last sweep.
    kernel_conns: usize,
    /// Those that lost subflows (see [`crate::rearm`]).
    rearmer: crate::rearm::Rearmer,
}

impl std::fmt::Debug for UserspaceDaemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserspaceDaemon")
            .field("connections", &self.driver.engine.len())
            .finish_non_exhaustive()
    }
}

impl UserspaceDaemon {
    /// Takes the namespace: the lock, no other manager (unless `force`), no other
    /// userspace path manager (the sysctl already `userspace`, unless an earlier run
    /// of ours left it so, or `force`); subscribes to events, then switches the
    /// sysctl.
    ///
    /// # Errors
    /// [`Error::Busy`] with the reason, or what failed.
    pub fn start(opts: Options, log: &mut dyn FnMut(Report)) -> Result<UserspaceDaemon, Error> {
        let netns = state::netns_id().map_err(|e| Error::Io {
            what: "cannot identify the network namespace".into(),
            source: e,
        })?;
        if !opts.force {
            if let Some(other) = other_manager(netns) {
                return Err(Error::Busy(other));
            }
        }
        let sysctl = PmSysctl::find()?;
        let (lock, memory) = Lock::acquire(&opts.state_dir, netns).map_err(|e| {
            if e.kind() == io::ErrorKind::WouldBlock {
                Error::Busy(e.to_string())
            } else {
                Error::Io {
                    what: "cannot take the daemon's lock".into(),
                    source: e,
                }
            }
        })?;
        let current = sysctl.read()?;
        let original = match &memory.pm_restore {
            // An earlier run of ours ended without restoring: what it found is the
            // value to give back.
            Some(found) => found.clone(),
            None if current == sysctl.userspace && !opts.force => {
                return Err(Error::Busy(format!(
                    "{} is already {current}: another userspace path manager drives this \
                     network namespace; stop it, or pass --force",
                    sysctl.name()
                )))
            }
            None => current.clone(),
        };
        let pm = PathManager::open()?;
        let events = Events::subscribe()?;
        let watcher = Watcher::open().map_err(|e| Error::Io {
            what: "cannot watch the host's links".into(),
            source: e,
        })?;
        let rtnl = Rtnl::open().map_err(|e| Error::Io {
            what: "cannot open an rtnetlink socket".into(),
            source: e,
        })?;
        let memory = Memory {
            pid: std::process::id(),
            pm_restore: Some(original.clone()),
            ..memory
        };
        let mut driver = Driver::new(Engine::new(opts.config.userspace.clone()), true);
        driver.reap = opts.config.role == crate::Role::Server;
        let mut daemon = UserspaceDaemon {
            driver,
            status_path: status_path(&opts.state_dir, netns),
            announced: Vec::new(),
            listeners: crate::host::ListenerWatch::default(),
            last_not_announced: Vec::new(),
            handing_over: true,
            kernel_conns: 0,
            rearmer: crate::rearm::Rearmer::new(crate::rearm::Pace::LEFTOVERS),
            opts,
            pm,
            events,
            rtnl,
            watcher,
            lock,
            memory,
            sysctl,
            original,
        };
        daemon.save()?;
        daemon.sysctl.write(daemon.sysctl.userspace)?;
        log(Report::PathManager {
            sysctl: daemon.sysctl.name(),
            value: daemon.sysctl.userspace.to_string(),
            previous: current,
        });
        Ok(daemon)
    }

    fn save(&mut self) -> Result<(), Error> {
        self.lock.save(&self.memory).map_err(|e| Error::Io {
            what: format!("cannot write {}", self.lock.path().display()),
            source: e,
        })
    }

    /// The host's links and addresses, with the MPTCP listeners last read.
    fn host(&mut self) -> Result<crate::host::HostState, Error> {
        let mut host = self.rtnl.snapshot().map_err(|e| Error::Io {
            what: "cannot read the host's links and addresses".into(),
            source: e,
        })?;
        host.mptcp_listeners = self.listeners.current.clone();
        Ok(host)
    }

    fn paths(
        &mut self,
        host: &crate::host::HostState,
        log: &mut dyn FnMut(Report),
    ) -> Result<Vec<LocalPath>, Error> {
        let kernel = KernelView {
            owned: self.announced.iter().map(|e| (e.id, e.address)).collect(),
            endpoints: self.announced.clone(),
            remembered: self.memory.remembered.clone(),
            ..KernelView::default()
        };
        let plan = plan(host, &self.opts.config, &kernel);
        if plan.not_announced != self.last_not_announced {
            log(Report::NotAnnounced {
                skipped: plan.not_announced.clone(),
            });
            self.last_not_announced = plan.not_announced.clone();
        }
        if self.opts.config.role == crate::Role::Server {
            self.announced = plan
                .endpoints
                .iter()
                .filter_map(|e| {
                    Endpoint::try_from(&AddressAttrs {
                        id: Some(e.id),
                        flags: Some(e.flags.bits()),
                        ..AddressAttrs::from_ip(e.address)
                    })
                    .ok()
                })
                .collect();
        }
        let mut changed = false;
        for e in &plan.endpoints {
            changed |= self.memory.remembered.insert(e.address, e.id) != Some(e.id);
        }
        if changed {
            self.save()?;
        }
        Ok(crate::driver::local_paths(&plan))
    }

    fn apply(&mut self, now: Instant, decisions: Vec<Decision>, log: &mut dyn FnMut(Report)) {
        self.driver.apply(&self.pm, now, decisions, log);
    }

    fn measure(&mut self, now: Instant, log: &mut dyn FnMut(Report)) {
        let conns = match mptcp_netlink::connections() {
            Ok(conns) => conns,
            Err(e) => {
                log(Report::Error {
                    message: format!("cannot list the connections: {e}"),
                });
                return;
            }
        };
        // A client keeping an in-kernel run's endpoints also re-arms them for those
        // connections that lost subflows (the kernel re-opens none otherwise).
        let rearm = self.handing_over
            && self.kernel_conns > 0
            && self.opts.config.role != crate::Role::Server
            && crate::daemon::rearm_endpoints(
                &mut self.pm,
                &mut self.memory,
                &mut self.rearmer,
                &conns,
                log,
            );
        self.kernel_conns = self.driver.sweep_dump(&self.pm, now, conns, log);
        if rearm {
            // Added back at once, as the links say.
            match self.host() {
                Ok(host) => self.keep_kernel_endpoints(&host, log),
                Err(e) => log(Report::Error {
                    message: e.to_string(),
                }),
            }
        }
    }

    /// While connections an in-kernel run left are alive, their endpoints follow the
    /// links as that run's would: a client's endpoint goes with its link and comes
    /// back with it, which is what makes the kernel open subflows from it again on
    /// those connections (it never re-opens one otherwise). The limits are left as
    /// that run put them back. Once none is left, the endpoints are released.
    fn keep_kernel_endpoints(
        &mut self,
        host: &crate::host::HostState,
        log: &mut dyn FnMut(Report),
    ) {
        let result = (|| -> Result<(), Error> {
            let kernel = KernelView {
                endpoints: self.pm.endpoints()?,
                owned: self.memory.owned.clone(),
                remembered: self.memory.remembered.clone(),
                laminar: true,
                limits: None,
            };
            let plan = plan(host, &self.opts.config, &kernel);
            let implicit: Vec<(u8, std::net::IpAddr)> = kernel
                .endpoints
                .iter()
                .filter(|e| e.flags.contains(mptcp_netlink::EndpointFlags::IMPLICIT))
                .map(|e| (e.id, e.address))
                .collect();
            for action in plan.actions(&kernel) {
                if matches!(action, crate::plan::Action::SetLimits { .. }) {
                    continue;
                }
                let r = crate::daemon::apply_action(
                    &mut self.pm,
                    &mut self.memory,
                    Some(&mut self.lock),
                    &action,
                    &implicit,
                );
                log(Report::Change {
                    action,
                    applied: r.is_ok(),
                    error: r.err().map(|e| e.to_string()),
                });
            }
            self.save()
        })();
        if let Err(e) = result {
            log(Report::Error {
                message: format!("keeping the in-kernel connections' endpoints: {e}"),
            });
        }
    }

    fn write_status(&self, now: Instant) {
        let status = StatusFile {
            pid: std::process::id(),
            written: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            paths: self.driver.engine.paths().to_vec(),
            connections: self.driver.engine.status(now),
        };
        // Written aside and renamed, so a reader never sees half a file.
        let tmp = self.status_path.with_extension("tmp");
        if let Ok(text) = serde_json::to_vec(&status) {
            if std::fs::write(&tmp, text).is_ok() {
                let _ = std::fs::rename(&tmp, &self.status_path);
            }
        }
    }

    /// Runs until `stop` is raised.
    ///
    /// # Errors
    /// When the event or link sockets break.
    pub fn run(&mut self, stop: &AtomicBool, log: &mut dyn FnMut(Report)) -> Result<(), Error> {
        let now = Instant::now();
        let server = self.opts.config.role == crate::Role::Server;
        if server {
            self.poll_listeners(now, log);
        }
        let host = self.host()?;
        let paths = self.paths(&host, log)?;
        let n = paths.len();
        let d = self.driver.engine.set_paths(now, paths);
        self.apply(now, d, log);
        log(Report::Ready {
            endpoints: n,
            limits: None,
        });
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        self.write_status(now);
        let (mut next_measure, mut next_status) = (now, now + STATUS_EVERY);
        let (mut next_release, mut next_keep) = (now, now);
        while !stop.load(Ordering::SeqCst) {
            // Events first: they are what connections wait on.
            let mut wait = EVENT_WAIT;
            for _ in 0..256 {
                match self.events.next_timeout(wait) {
                    Ok(Some(ev)) => {
                        self.driver.event(&self.pm, Instant::now(), &ev, log);
                        wait = Duration::ZERO;
                    }
                    Ok(None) => break,
                    Err(mptcp_netlink::Error::EventsLost) => {
                        log(Report::Error {
                            message: "path-manager events were lost: resyncing from sock_diag"
                                .into(),
                        });
                        next_measure = Instant::now();
                        break;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            let mut changed = self.watcher.wait(Duration::ZERO).map_err(|e| Error::Io {
                what: "cannot read link notifications".into(),
                source: e,
            })?;
            let now = Instant::now();
            changed |= server && self.poll_listeners(now, log);
            if changed {
                // One reading of the host for the paths and the handed-over endpoints.
                let paths = self.host().and_then(|host| {
                    if self.handing_over && self.kernel_conns > 0 {
                        self.keep_kernel_endpoints(&host, log);
                        next_keep = now + self.opts.config.resync_interval;
                    }
                    self.paths(&host, log)
                });
                match paths {
                    Ok(paths) => {
                        let d = self.driver.engine.set_paths(now, paths);
                        self.apply(now, d, log);
                    }
                    Err(e) => log(Report::Error {
                        message: e.to_string(),
                    }),
                }
            }
            // Also when no connection is tracked: the sweep adopts those that no
            // event announced.
            if now >= next_measure {
                self.measure(now, log);
                next_measure = now
                    + if self.driver.engine.wants_measurements() {
                        MEASURE_EVERY
                    } else {
                        SWEEP_EVERY
                    };
            }
            let d = self.driver.engine.tick(now);
            self.apply(now, d, log);
            if now >= next_status {
                self.write_status(now);
                next_status = now + STATUS_EVERY;
            }
            if now >= next_release {
                next_release = now + SWEEP_EVERY;
                if self.handing_over && self.kernel_conns > 0 {
                    // Links changing are handled as they come; this pass starts the
                    // hand-over and repairs drift, as the in-kernel mode's resync.
                    if now >= next_keep {
                        next_keep = now + self.opts.config.resync_interval;
                        match self.host() {
                            Ok(host) => self.keep_kernel_endpoints(&host, log),
                            Err(e) => log(Report::Error {
                                message: e.to_string(),
                            }),
                        }
                    }
                } else {
                    self.handing_over = false;
                    if !self.memory.owned.is_empty() {
                        self.release_handed_over(log);
                    }
                }
            }
        }
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        Ok(())
    }

    /// Reads the MPTCP listeners when due; whether they changed.
    fn poll_listeners(&mut self, now: Instant, log: &mut dyn FnMut(Report)) -> bool {
        self.listeners.poll(now).unwrap_or_else(|message| {
            log(Report::Error { message });
            false
        })
    }

    /// Removes the in-kernel endpoints an in-kernel run of ours kept for its live
    /// connections once no subflow uses their address; returns how many stay.
    fn release_handed_over(&mut self, log: &mut dyn FnMut(Report)) -> usize {
        let in_use = match crate::daemon::addresses_in_use() {
            Ok(a) => a,
            Err(e) => {
                log(Report::Error {
                    message: format!("cannot list the connections: {e}"),
                });
                return self.memory.owned.len();
            }
        };
        match crate::daemon::release_endpoints(&mut self.pm, &mut self.memory.owned, &in_use) {
            Ok((removed, kept)) => {
                if removed > 0 {
                    log(Report::Released { removed, kept });
                    if let Err(e) = self.save() {
                        log(Report::Error {
                            message: e.to_string(),
                        });
                    }
                }
                kept
            }
            Err(e) => {
                log(Report::Error {
                    message: format!("cannot remove an endpoint no connection uses: {e}"),
                });
                self.memory.owned.len()
            }
        }
    }

    /// Puts the path-manager sysctl back and releases the namespace.
    ///
    /// # Errors
    /// When the sysctl cannot be written back.
    pub fn shutdown(mut self, log: &mut dyn FnMut(Report)) -> Result<(), Error> {
        let _ = std::fs::remove_file(&self.status_path);
        let kept = if self.memory.owned.is_empty() {
            0
        } else {
            self.release_handed_over(log)
        };
        self.sysctl.write(&self.original)?;
        self.memory.pm_restore = None;
        self.save()?;
        log(Report::PathManager {
            sysctl: self.sysctl.name(),
            value: self.original.clone(),
            previous: self.sysctl.userspace.to_string(),
        });
        log(Report::Stopped {
            removed: 0,
            kept,
            limits_restored: false,
        });
        Ok(())
    }
}

/// Reads the status of the userspace daemon running in this namespace.
///
/// # Errors
/// [`Error::Busy`]-free: an I/O error naming the file when no daemon writes one (or
/// its pid is gone).
pub fn read_status(state_dir: &Path) -> Result<StatusFile, Error> {
    let netns = state::netns_id().map_err(|e| Error::Io {
        what: "cannot identify the network namespace".into(),
        source: e,
    })?;
    let path = status_path(state_dir, netns);
    let none = |source: io::Error| Error::Io {
        what: format!(
            "no `mptcp pm run --userspace` runs in this network namespace ({})",
            path.display()
        ),
        source,
    };
    let text = std::fs::read(&path).map_err(none)?;
    let status: StatusFile = serde_json::from_slice(&text)
        .map_err(|e| none(io::Error::new(io::ErrorKind::InvalidData, e)))?;
    if !Path::new(&format!("/proc/{}", status.pid)).exists() {
        return Err(none(io::Error::new(
            io::ErrorKind::NotFound,
            format!("its daemon (pid {}) is gone", status.pid),
        )));
    }
    Ok(status)
}
