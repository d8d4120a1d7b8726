//! The userspace-PM commands of the [`Engine`] carried out, and the connections it
//! drives found: shared by `mptcp pm run --userspace` (every connection of the
//! userspace path manager) and the in-kernel mode (the ones a `--userspace` run left
//! behind, until they close).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Instant;

use mptcp_net::TcpState;
use mptcp_netlink::{Connection, Event, NewSubflow, PathManager};

use crate::daemon::Report;
use crate::engine::{Adopted, Command, ConnSample, Decision, Engine, LocalPath, SubflowSample};
use crate::plan::Plan;

/// The engine's paths: the plan's endpoints (the same usable addresses, ids and
/// rules in both modes).
pub(crate) fn local_paths(plan: &Plan) -> Vec<LocalPath> {
    plan.endpoints
        .iter()
        .map(|e| LocalPath {
            id: e.id,
            address: e.address,
            ifindex: e.ifindex,
            interface: e.interface.clone(),
            priority: e.priority,
            backup: e.flags.contains(mptcp_netlink::EndpointFlags::BACKUP),
        })
        .collect()
}

/// An [`Engine`] wired to the kernel.
#[derive(Debug)]
pub(crate) struct Driver {
    pub(crate) engine: Engine,
    /// Events of connections it does not track start tracking them (the userspace
    /// mode); otherwise only adopted connections are followed (the in-kernel mode,
    /// where new connections belong to the kernel's path manager).
    follow_new: bool,
    /// Connections tracked from a dump rather than their events.
    adopted: BTreeSet<u32>,
    /// Connections the kernel said belong to another path manager.
    foreign: BTreeSet<u32>,
    /// Each sweep also resets the subflows peers replaced (a server: see
    /// [`crate::reap`]).
    pub(crate) reap: bool,
    reaper: crate::reap::Reaper,
}

impl Driver {
    pub(crate) fn new(engine: Engine, follow_new: bool) -> Driver {
        Driver {
            engine,
            follow_new,
            adopted: BTreeSet::new(),
            foreign: BTreeSet::new(),
            reap: false,
            reaper: crate::reap::Reaper::default(),
        }
    }

    /// Connections followed.
    pub(crate) fn is_empty(&self) -> bool {
        self.engine.is_empty()
    }

    /// A path-manager event.
    pub(crate) fn event(
        &mut self,
        pm: &PathManager,
        now: Instant,
        ev: &Event,
        log: &mut dyn FnMut(Report),
    ) {
        if !self.follow_new && !ev.token.is_some_and(|t| self.engine.knows(t)) {
            return;
        }
        let d = self.engine.event(now, ev);
        self.apply(pm, now, d, log);
    }

    /// Carries out the engine's decisions, each logged with its outcome.
    pub(crate) fn apply(
        &mut self,
        pm: &PathManager,
        now: Instant,
        decisions: Vec<Decision>,
        log: &mut dyn FnMut(Report),
    ) {
        for d in decisions {
            let result = match &d.command {
                Command::Create {
                    token,
                    local_id,
                    local,
                    ifindex,
                    remote,
                    backup,
                } => pm.open_subflow(
                    *token,
                    &NewSubflow::new(*local_id, SocketAddr::new(*local, 0), *remote)
                        .interface(*ifindex)
                        .backup(*backup),
                ),
                Command::Destroy {
                    token,
                    local,
                    remote,
                } => pm.destroy_subflow(*token, *local, *remote),
                Command::SetBackup {
                    token,
                    local,
                    remote,
                    backup,
                } => pm.set_subflow_backup(*token, *local, *remote, *backup),
                Command::Announce { token, id, address } => {
                    pm.announce(*token, *id, *address, None)
                }
                Command::Remove { token, id } => pm.remove(*token, *id),
            };
            match &result {
                // An adopted connection of the in-kernel path manager (its limits
                // all 0): not ours to drive.
                Err(e)
                    if self.adopted.contains(&d.command.token())
                        && e.errno() == Some(libc::EINVAL) =>
                {
                    let token = d.command.token();
                    self.engine.forget(token);
                    self.adopted.remove(&token);
                    self.foreign.insert(token);
                }
                Err(_) => self.engine.failed(now, &d.command),
                Ok(()) => {}
            }
            log(Report::Policy {
                decision: d,
                applied: result.is_ok(),
                error: result.err().map(|e| e.to_string()),
            });
        }
    }

    /// One `sock_diag` dump: connections to adopt, then the subflow measurements
    /// (which also forget connections gone without their `closed` event). Returns how
    /// many established connections belong to the in-kernel path manager.
    pub(crate) fn sweep(
        &mut self,
        pm: &PathManager,
        now: Instant,
        log: &mut dyn FnMut(Report),
    ) -> Result<usize, mptcp_netlink::Error> {
        let conns = mptcp_netlink::connections()?;
        Ok(self.sweep_dump(pm, now, conns, log))
    }

    /// [`Driver::sweep`] on a dump already made.
    pub(crate) fn sweep_dump(
        &mut self,
        pm: &PathManager,
        now: Instant,
        conns: Vec<Connection>,
        log: &mut dyn FnMut(Report),
    ) -> usize {
        if self.reap {
            self.reaper.reap(now, &conns, false, log);
        }
        self.adopt(pm, now, &conns, log);
        let in_kernel = conns
            .iter()
            .filter(|c| c.state == TcpState::Established && !c.fallback())
            .filter(|c| {
                c.connection_token()
                    .is_some_and(|t| self.foreign.contains(&t))
                    || c.info.as_ref().is_some_and(in_kernel_limits)
            })
            .count();
        let samples: Vec<ConnSample> = conns
            .into_iter()
            .filter_map(|c| {
                Some(ConnSample {
                    token: c.token?,
                    subflows: c
                        .subflows
                        .into_iter()
                        .filter_map(|s| {
                            let t = s.tcp?;
                            Some(SubflowSample {
                                local: s.local,
                                remote: s.remote,
                                rtt: t.rtt,
                                rto: t.rto,
                                bytes_acked: t.bytes_acked.unwrap_or(0),
                                unacked: t.unacked,
                            })
                        })
                        .collect(),
                })
            })
            .collect();
        let d = self.engine.measure(now, &samples);
        self.apply(pm, now, d, log);
        in_kernel
    }

    /// Tracks the established connections of the userspace path manager that no
    /// event announced: those open before this daemon started (a restart, a switch
    /// of mode) and any whose events were lost. Without this they would have nobody
    /// to re-create their subflows: a connection whose last subflow dies then waits
    /// forever with data queued.
    ///
    /// The kernel fills the in-kernel limits of `mptcp_info` only for connections of
    /// the in-kernel path manager, so a connection with a limit set is not ours; one
    /// with none could still be (limits all 0): the kernel's "userspace PM not
    /// selected" answer to the first command then drops it for good.
    fn adopt(
        &mut self,
        pm: &PathManager,
        now: Instant,
        conns: &[Connection],
        log: &mut dyn FnMut(Report),
    ) {
        let listeners = listeners(conns);
        self.foreign
            .retain(|t| conns.iter().any(|c| c.connection_token() == Some(*t)));
        for c in conns {
            let (Some(token), Some(info)) = (c.connection_token(), c.info.as_ref()) else {
                continue;
            };
            if c.state != TcpState::Established
                || c.fallback()
                || in_kernel_limits(info)
                || self.foreign.contains(&token)
                || self.engine.is_established(token)
            {
                continue;
            }
            // Announced ("created") but not yet established for the engine: its
            // "established" event is still to come unless it was lost. The kernel
            // sends it once the connection is fully established (a subflow says so;
            // it takes no new subflow before), so only then, or when no subflow is
            // left to wait on, is the event taken as lost.
            if self.engine.knows(token)
                && !c.subflows.is_empty()
                && !c.subflows.iter().any(|s| s.flags.fully_established())
            {
                continue;
            }
            let server_side = accepted(&listeners, c);
            let found = Adopted {
                token,
                local: c.local,
                remote: c.remote,
                server_side,
                subflows: c
                    .subflows
                    .iter()
                    .filter(|s| s.state == TcpState::Established)
                    .map(|s| (s.local, s.remote, s.flags.is_backup()))
                    .collect(),
            };
            self.adopted.insert(token);
            let d = self.engine.adopt(now, &found);
            self.apply(pm, now, d, log);
        }
        self.adopted.retain(|t| self.engine.knows(*t));
    }
}

/// The local addresses of the listeners in a dump.
pub(crate) fn listeners(conns: &[Connection]) -> Vec<SocketAddr> {
    conns
        .iter()
        .filter(|c| c.is_listener())
        .map(|c| c.local)
        .collect()
}

/// Whether `c` was accepted from one of `listeners` (the server side of it).
pub(crate) fn accepted(listeners: &[SocketAddr], c: &Connection) -> bool {
    listeners
        .iter()
        .any(|l| l.port() == c.local.port() && (l.ip().is_unspecified() || l.ip() == c.local.ip()))
}

/// The kernel fills these only for connections of the in-kernel path manager.
pub(crate) fn in_kernel_limits(info: &mptcp_net::MptcpInfo) -> bool {
    info.subflows_max != 0
        || info.add_addr_signal_max != 0
        || info.add_addr_accepted_max != 0
        || info.local_addr_max != 0
}
