//! The policy engine of the userspace path manager, sans-I/O: path-manager events,
//! the host's usable paths and subflow measurements in, userspace-PM commands out.
//! Time is an input too, so recorded sequences replay exactly in tests.
//!
//! # The rules, per connection
//!
//! The *paths* are the host's usable local addresses (the same interface rules,
//! filters and ids as the in-kernel mode: [`crate::plan()`]); a connection uses the
//! paths of its own address family. A subflow belongs to the path of its local
//! address.
//!
//! - `aggregate` (client side): a subflow on every path (backup where an interface
//!   rule says `backup`). A subflow that closes while its path is usable is re-created
//!   after a backoff of 0.5 s, doubling to 8 s, reset once a subflow has stayed up for
//!   10 s; a path that comes back gets its subflow at once. This is what the in-kernel
//!   path manager cannot do (mptcp_net-next #440).
//! - `handover`: the *primary* path (the interface matching the rule's `primary`
//!   glob, else the path of the connection's first subflow) carries the traffic; every
//!   other path holds a backup subflow (MP_JOIN with the backup bit). The primary is
//!   *stalled* when its subflow has data in flight (`tcpi_unacked` > 0) and no new
//!   byte was acknowledged for max(2 x RTO, 400 ms) (Apple switches after >= 2 RTOs
//!   with data queued), or when its subflow or its path is gone. Then the
//!   highest-priority healthy secondary is promoted (MP_PRIO non-backup) and the
//!   primary's subflow, if any, demoted. Once the primary's subflow has been
//!   *healthy* (established, nothing in flight or acks progressing) for the hold time
//!   (2 s by default), traffic moves back.
//! - `interactive`: subflows on every path, all backup but one: the healthy subflow
//!   with the lowest smoothed RTT. Another subflow takes over when its RTT has been
//!   below 3/4 of the current one's, and at least 1 ms lower, for 3 measurements in a
//!   row, and not sooner than 2 s after the last change (hysteresis, so two similar
//!   paths do not flap; sub-millisecond LAN RTTs never trigger a change).
//! - `single`: no subflow is ever added.
//! - Server side (any policy but `single`): every path's address is announced
//!   (ADD_ADDR) to the client; a path that goes is withdrawn (RM_ADDR). A server's
//!   path outlives its link's loss while the address is there (the daemon keeps it
//!   among the paths, as the in-kernel mode keeps its endpoints): clients reach the
//!   address over the other links, and withdrawing it would close those subflows.
//! - A path that becomes unusable has its subflows closed at once (the kernel moves
//!   their data to the others) instead of waiting for them to time out.
//!
//! State is per connection and dropped on the `closed` event, or when two
//! measurements in a row no longer list the connection (a lost event cannot leak).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mptcp_netlink::{Event, EventKind};
use serde::Serialize;

use crate::config::{Glob, Policy, UserspaceConfig};

mod handover;
mod interactive;
mod server;

/// First re-creation delay after a subflow closes.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest re-creation delay.
const BACKOFF_MAX: Duration = Duration::from_secs(8);
/// A subflow that stays up this long resets its path's backoff.
const BACKOFF_RESET: Duration = Duration::from_secs(10);
/// A create with no `sub_established` after this long is taken as failed.
const PENDING_TIMEOUT: Duration = Duration::from_secs(5);
/// Shortest no-progress time that counts as a stall.
const STALL_MIN: Duration = Duration::from_millis(400);

/// A usable local address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LocalPath {
    /// Its address id (1-255), used as the subflows' local id.
    pub id: u8,
    /// The address.
    pub address: IpAddr,
    /// Its interface.
    pub ifindex: u32,
    /// The interface's name.
    pub interface: String,
    /// The interface rule's priority.
    pub priority: i32,
    /// An interface rule marks it `backup`.
    pub backup: bool,
}

/// One subflow's state, from `tcp_info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubflowSample {
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
    /// Smoothed RTT.
    pub rtt: Duration,
    /// Retransmission timeout.
    pub rto: Duration,
    /// Bytes acknowledged so far.
    pub bytes_acked: u64,
    /// Segments in flight.
    pub unacked: u32,
}

/// One connection's subflows, from a `sock_diag` dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnSample {
    /// The connection token.
    pub token: u32,
    /// Its subflows.
    pub subflows: Vec<SubflowSample>,
}

/// A connection for [`Engine::adopt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adopted {
    /// The connection token.
    pub token: u32,
    /// The MPTCP socket's local address and port.
    pub local: SocketAddr,
    /// Its peer.
    pub remote: SocketAddr,
    /// This host accepted it.
    pub server_side: bool,
    /// Its subflows: local, remote, backup.
    pub subflows: Vec<(SocketAddr, SocketAddr, bool)>,
}

/// A userspace path-manager command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Open a subflow from path `local_id` to `remote`.
    Create {
        /// The connection.
        token: u32,
        /// The path's id.
        local_id: u8,
        /// The path's address.
        local: IpAddr,
        /// Its interface.
        ifindex: u32,
        /// The peer's address and port.
        remote: SocketAddr,
        /// As a backup subflow.
        backup: bool,
    },
    /// Close a subflow.
    Destroy {
        /// The connection.
        token: u32,
        /// Local address and port.
        local: SocketAddr,
        /// Remote address and port.
        remote: SocketAddr,
    },
    /// Mark a subflow backup or not (MP_PRIO).
    SetBackup {
        /// The connection.
        token: u32,
        /// Local address and port.
        local: SocketAddr,
        /// Remote address and port.
        remote: SocketAddr,
        /// The new state.
        backup: bool,
    },
    /// Announce a local address (ADD_ADDR).
    Announce {
        /// The connection.
        token: u32,
        /// The address id.
        id: u8,
        /// The address.
        address: IpAddr,
    },
    /// Withdraw an announced address (RM_ADDR).
    Remove {
        /// The connection.
        token: u32,
        /// The address id.
        id: u8,
    },
}

impl Command {
    /// The connection it is for.
    pub fn token(&self) -> u32 {
        match self {
            Command::Create { token, .. }
            | Command::Destroy { token, .. }
            | Command::SetBackup { token, .. }
            | Command::Announce { token, .. }
            | Command::Remove { token, .. } => *token,
        }
    }
}

/// A command with the reason the engine gave for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// What to do.
    #[serde(flatten)]
    pub command: Command,
    /// Why.
    pub reason: String,
}

#[derive(Debug, Clone)]
struct Sf {
    local: SocketAddr,
    remote: SocketAddr,
    /// Its local address was a path when it was seen: it is closed if that path goes.
    on_path: bool,
    backup: bool,
    since: Instant,
    /// Closing on our request: not re-created.
    closing: bool,
    health: Health,
}

#[derive(Debug, Clone, Default)]
struct Health {
    rtt: Option<Duration>,
    rto: Duration,
    acked: u64,
    unacked: u32,
    last_progress: Option<Instant>,
    healthy_since: Option<Instant>,
    stalled: bool,
}

#[derive(Debug, Clone, Copy)]
enum Want {
    /// A create was sent at this time.
    Pending(Instant),
    /// Try again at this time.
    Retry(Instant),
}

#[derive(Debug, Clone)]
struct Conn {
    policy: Policy,
    primary_glob: Option<Glob>,
    server_side: bool,
    local: SocketAddr,
    remote: SocketAddr,
    established: bool,
    subflows: Vec<Sf>,
    want: BTreeMap<u8, Want>,
    attempts: BTreeMap<u8, u32>,
    announced: BTreeMap<u8, IpAddr>,
    /// The path carrying traffic (`handover`, `interactive`).
    active: Option<u8>,
    primary: Option<u8>,
    switched_at: Option<Instant>,
    streak: (Option<u8>, u32),
    missing: u32,
    last: Option<(Instant, String)>,
}

/// What `mptcp pm status` shows of a connection.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ConnStatus {
    /// The token.
    pub token: u32,
    /// Its policy.
    pub policy: Policy,
    /// This host is the server.
    pub server_side: bool,
    /// The first subflow's local address.
    pub local: SocketAddr,
    /// The peer.
    pub remote: SocketAddr,
    /// The subflows.
    pub subflows: Vec<SubflowStatus>,
    /// The interface carrying traffic (`handover`, `interactive`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<String>,
    /// The last thing the engine did, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<String>,
    /// How long ago, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seconds_ago: Option<f64>,
}

/// A subflow in [`ConnStatus`].
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct SubflowStatus {
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
    /// Its interface, when its address is a known path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// A backup subflow.
    pub backup: bool,
    /// Smoothed RTT, ms, when measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    /// Judged stalled.
    pub stalled: bool,
}

/// The engine: one per daemon.
#[derive(Debug)]
pub struct Engine {
    config: UserspaceConfig,
    paths: Vec<LocalPath>,
    conns: BTreeMap<u32, Conn>,
}

impl Engine {
    /// An engine with no path and no connection.
    pub fn new(config: UserspaceConfig) -> Engine {
        Engine {
            config,
            paths: Vec::new(),
            conns: BTreeMap::new(),
        }
    }

    /// The usable paths.
    pub fn paths(&self) -> &[LocalPath] {
        &self.paths
    }

    /// Connections tracked.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// No connection tracked.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Whether some connection needs subflow measurements (`handover`, `interactive`),
    /// so the daemon can skip the `sock_diag` dump when none does.
    pub fn wants_measurements(&self) -> bool {
        self.conns
            .values()
            .any(|c| matches!(c.policy, Policy::Handover | Policy::Interactive))
    }

    /// The usable paths changed.
    pub fn set_paths(&mut self, now: Instant, paths: Vec<LocalPath>) -> Vec<Decision> {
        self.paths = paths;
        let tokens: Vec<u32> = self.conns.keys().copied().collect();
        let mut out = Vec::new();
        for token in tokens {
            let paths = &self.paths;
            if let Some(c) = self.conns.get_mut(&token) {
                for sf in &mut c.subflows {
                    sf.on_path |= path_of(paths, sf.local.ip()).is_some();
                }
            }
            out.extend(self.reconcile(now, token, "paths changed"));
        }
        out
    }

    /// A path-manager event.
    pub fn event(&mut self, now: Instant, ev: &Event) -> Vec<Decision> {
        let Some(token) = ev.token else {
            return Vec::new();
        };
        match ev.kind {
            EventKind::Created | EventKind::Established => {
                let (Some(local), Some(remote)) = (ev.local, ev.remote) else {
                    return Vec::new();
                };
                let server_side = ev.server_side.unwrap_or(false);
                if !self.conns.contains_key(&token) {
                    let c =
                        self.new_conn(now, local, remote, server_side, &[(local, remote, false)]);
                    self.conns.insert(token, c);
                }
                if ev.kind == EventKind::Established {
                    return self.establish(now, token, "connection established");
                }
                Vec::new()
            }
            EventKind::Closed => {
                self.conns.remove(&token);
                Vec::new()
            }
            EventKind::SubEstablished => {
                let (Some(local), Some(remote)) = (ev.local, ev.remote) else {
                    return Vec::new();
                };
                let path = path_of(&self.paths, local.ip());
                let Some(c) = self.conns.get_mut(&token) else {
                    return Vec::new();
                };
                if let Some(p) = path {
                    c.want.remove(&p);
                }
                if !c
                    .subflows
                    .iter()
                    .any(|s| s.local == local && s.remote == remote)
                {
                    c.subflows.push(Sf {
                        local,
                        remote,
                        on_path: path.is_some(),
                        backup: ev.backup.unwrap_or(false),
                        since: now,
                        closing: false,
                        health: Health::default(),
                    });
                }
                self.reconcile(now, token, "subflow established")
            }
            EventKind::SubClosed => {
                let (Some(local), Some(remote)) = (ev.local, ev.remote) else {
                    return Vec::new();
                };
                let Some(c) = self.conns.get_mut(&token) else {
                    return Vec::new();
                };
                let Some(i) = c
                    .subflows
                    .iter()
                    .position(|s| s.local == local && s.remote == remote)
                else {
                    // A create that failed: the path's pending create is over.
                    if let Some(p) = path_of(&self.paths, local.ip()) {
                        if matches!(c.want.get(&p), Some(Want::Pending(_))) {
                            schedule_retry(c, p, now);
                        }
                    }
                    return self.reconcile(now, token, "subflow failed");
                };
                let sf = c.subflows.remove(i);
                if let (Some(p), false) = (path_of(&self.paths, sf.local.ip()), sf.closing) {
                    if now.duration_since(sf.since) >= BACKOFF_RESET {
                        c.attempts.remove(&p);
                    }
                    schedule_retry(c, p, now);
                }
                self.reconcile(now, token, "subflow closed")
            }
            EventKind::SubPriority => {
                if let (Some(local), Some(remote), Some(c)) =
                    (ev.local, ev.remote, self.conns.get_mut(&token))
                {
                    if let Some(sf) = c
                        .subflows
                        .iter_mut()
                        .find(|s| s.local == local && s.remote == remote)
                    {
                        sf.backup = ev.backup.unwrap_or(sf.backup);
                    }
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// Marks connection `token` established (its primary path chosen) and reconciles.
    fn establish(&mut self, now: Instant, token: u32, trigger: &str) -> Vec<Decision> {
        let Some(c) = self.conns.get_mut(&token) else {
            return Vec::new();
        };
        c.established = true;
        let first = c
            .subflows
            .first()
            .and_then(|s| path_of(&self.paths, s.local.ip()));
        if c.primary.is_none() {
            let v4 = c.remote.is_ipv4();
            c.primary = c
                .primary_glob
                .as_ref()
                .and_then(|g| {
                    self.paths
                        .iter()
                        .filter(|p| p.address.is_ipv4() == v4)
                        .find(|p| g.matches(&p.interface))
                })
                .map(|p| p.id)
                .or(first);
            c.active = c.primary.or(first);
        }
        self.reconcile(now, token, trigger)
    }

    /// A connection's state, not yet established, with these subflows (local,
    /// remote, backup).
    fn new_conn(
        &self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        server_side: bool,
        subflows: &[(SocketAddr, SocketAddr, bool)],
    ) -> Conn {
        let (policy, rule) = self.config.choose(local, remote);
        Conn {
            policy,
            primary_glob: rule.and_then(|r| r.primary.clone()),
            server_side,
            local,
            remote,
            established: false,
            subflows: subflows
                .iter()
                .map(|&(local, remote, backup)| Sf {
                    local,
                    remote,
                    on_path: path_of(&self.paths, local.ip()).is_some(),
                    backup,
                    since: now,
                    closing: false,
                    health: Health::default(),
                })
                .collect(),
            want: BTreeMap::new(),
            attempts: BTreeMap::new(),
            announced: BTreeMap::new(),
            active: None,
            primary: None,
            switched_at: None,
            streak: (None, 0),
            missing: 0,
            last: None,
        }
    }

    /// Whether connection `token` is tracked.
    pub fn knows(&self, token: u32) -> bool {
        self.conns.contains_key(&token)
    }

    /// Whether connection `token` is tracked and established: its policy applies.
    /// A connection announced by its "created" event waits for its "established" one.
    pub fn is_established(&self, token: u32) -> bool {
        self.conns.get(&token).is_some_and(|c| c.established)
    }

    /// An established connection that no event announced (it predates this daemon, or
    /// its events were lost), found in a `sock_diag` dump: tracked from now on, and
    /// brought to its policy at once (its missing subflows created). Established
    /// connections already tracked are left as they are; one tracked but not yet
    /// established is taken as found (its "established" event may have been lost).
    pub fn adopt(&mut self, now: Instant, found: &Adopted) -> Vec<Decision> {
        if self.is_established(found.token) {
            return Vec::new();
        }
        // One announced by its "created" event whose "established" one was lost
        // (the event socket overflowed) would wait for it forever, with no subflow
        // ever added: taken as found, like one with no event at all.
        let trigger = if self.knows(found.token) {
            "adopted: found established, its event lost"
        } else {
            "adopted: found without its events"
        };
        let c = self.new_conn(
            now,
            found.local,
            found.remote,
            found.server_side,
            &found.subflows,
        );
        self.conns.insert(found.token, c);
        self.establish(now, found.token, trigger)
    }

    /// Stops tracking connection `token` (the kernel says another path manager has it).
    pub fn forget(&mut self, token: u32) {
        self.conns.remove(&token);
    }

    /// A command the kernel refused: a create is tried again after a backoff; a
    /// backup change on the next pass (right after `sub_established` the kernel may
    /// not have joined the subflow to its connection yet, and answers "not found").
    pub fn failed(&mut self, now: Instant, command: &Command) {
        match command {
            Command::Create {
                token, local_id, ..
            } => {
                if let Some(c) = self.conns.get_mut(token) {
                    schedule_retry(c, *local_id, now);
                }
            }
            Command::SetBackup {
                token,
                local,
                remote,
                backup,
            } => {
                if let Some(sf) = self.conns.get_mut(token).and_then(|c| {
                    c.subflows
                        .iter_mut()
                        .find(|s| s.local == *local && s.remote == *remote)
                }) {
                    sf.backup = !backup;
                }
            }
            _ => {}
        }
    }

    /// Subflow measurements of every MPTCP connection of the namespace.
    pub fn measure(&mut self, now: Instant, samples: &[ConnSample]) -> Vec<Decision> {
        let tokens: Vec<u32> = self.conns.keys().copied().collect();
        let mut out = Vec::new();
        for token in tokens {
            let Some(c) = self.conns.get_mut(&token) else {
                continue;
            };
            let Some(sample) = samples.iter().find(|s| s.token == token) else {
                c.missing += 1;
                if c.missing >= 2 {
                    self.conns.remove(&token);
                }
                continue;
            };
            c.missing = 0;
            for sf in &mut c.subflows {
                if let Some(m) = sample
                    .subflows
                    .iter()
                    .find(|m| m.local == sf.local && m.remote == sf.remote)
                {
                    update_health(&mut sf.health, m, now);
                }
            }
            out.extend(self.reconcile(now, token, "measured"));
        }
        out
    }

    /// Timers: retries and pending creates that never answered.
    pub fn tick(&mut self, now: Instant) -> Vec<Decision> {
        let due: Vec<u32> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.want.values().any(|w| match w {
                    Want::Retry(at) => *at <= now,
                    Want::Pending(since) => now.duration_since(*since) >= PENDING_TIMEOUT,
                })
            })
            .map(|(t, _)| *t)
            .collect();
        let mut out = Vec::new();
        for token in due {
            if let Some(c) = self.conns.get_mut(&token) {
                let stale: Vec<u8> = c
                    .want
                    .iter()
                    .filter(|(_, w)| matches!(w, Want::Pending(s) if now.duration_since(*s) >= PENDING_TIMEOUT))
                    .map(|(p, _)| *p)
                    .collect();
                for p in stale {
                    schedule_retry(c, p, now);
                }
            }
            out.extend(self.reconcile(now, token, "retry"));
        }
        out
    }

    /// Every tracked connection, for `mptcp pm status`.
    pub fn status(&self, now: Instant) -> Vec<ConnStatus> {
        let name = |p: Option<u8>| {
            p.and_then(|id| self.paths.iter().find(|x| x.id == id))
                .map(|x| x.interface.clone())
        };
        self.conns
            .iter()
            .map(|(token, c)| ConnStatus {
                token: *token,
                policy: c.policy,
                server_side: c.server_side,
                local: c.local,
                remote: c.remote,
                subflows: c
                    .subflows
                    .iter()
                    .map(|s| SubflowStatus {
                        local: s.local,
                        remote: s.remote,
                        interface: name(path_of(&self.paths, s.local.ip())),
                        backup: s.backup,
                        rtt_ms: s.health.rtt.map(|r| r.as_secs_f64() * 1000.0),
                        stalled: s.health.stalled,
                    })
                    .collect(),
                active: match c.policy {
                    Policy::Handover | Policy::Interactive => name(c.active),
                    _ => None,
                },
                last: c.last.as_ref().map(|(_, w)| w.clone()),
                last_seconds_ago: c
                    .last
                    .as_ref()
                    .map(|(at, _)| now.saturating_duration_since(*at).as_secs_f64()),
            })
            .collect()
    }

    /// Brings connection `token` towards its policy's wanted state.
    fn reconcile(&mut self, now: Instant, token: u32, trigger: &str) -> Vec<Decision> {
        // Disjoint borrows: the paths are read while a connection changes.
        let paths = &self.paths;
        let hold = self.config.hold_time;
        let Some(c) = self.conns.get_mut(&token) else {
            return Vec::new();
        };
        if !c.established {
            return Vec::new();
        }
        let family: Vec<&LocalPath> = paths
            .iter()
            .filter(|p| p.address.is_ipv4() == c.remote.is_ipv4())
            .collect();
        let mut out = Vec::new();

        // Subflows whose path is gone are closed now rather than left to time out.
        for sf in c.subflows.iter_mut().filter(|s| s.on_path && !s.closing) {
            if !family.iter().any(|x| x.address == sf.local.ip()) {
                sf.closing = true;
                out.push(Decision {
                    command: Command::Destroy {
                        token,
                        local: sf.local,
                        remote: sf.remote,
                    },
                    reason: format!("its path ({}) is no longer usable", sf.local.ip()),
                });
            }
        }

        if c.server_side {
            if c.policy != Policy::Single {
                out.extend(server::announce(c, token, &family));
            }
            remember(c, now, &out);
            return out;
        }
        if c.policy == Policy::Single {
            remember(c, now, &out);
            return out;
        }

        // Which path carries traffic (handover, interactive).
        let switch = match c.policy {
            Policy::Handover => handover::choose(c, &family, now, hold),
            Policy::Interactive => interactive::choose(c, paths, now),
            _ => None,
        };

        // Subflows wanted: one per path of the family (the first subflow counts for
        // its path), each with the backup state the policy gives it.
        let active = c.active;
        let want_backup = |c: &Conn, p: &LocalPath| match c.policy {
            Policy::Aggregate => p.backup,
            _ => active != Some(p.id),
        };
        for p in &family {
            match live(c, &family, p.id) {
                Some(sf) => {
                    let backup = want_backup(c, p);
                    if sf.backup != backup {
                        if let Some(s) = c
                            .subflows
                            .iter_mut()
                            .find(|s| s.local == sf.local && s.remote == sf.remote)
                        {
                            s.backup = backup;
                        }
                        out.push(Decision {
                            command: Command::SetBackup {
                                token,
                                local: sf.local,
                                remote: sf.remote,
                                backup,
                            },
                            reason: switch.clone().unwrap_or_else(|| {
                                format!(
                                    "{}: {} {}",
                                    c.policy,
                                    p.interface,
                                    if backup {
                                        "to backup"
                                    } else {
                                        "carries the traffic"
                                    }
                                )
                            }),
                        });
                    }
                }
                None => {
                    let ready = match c.want.get(&p.id) {
                        None => true,
                        Some(Want::Retry(at)) => *at <= now,
                        Some(Want::Pending(_)) => false,
                    };
                    if ready {
                        c.want.insert(p.id, Want::Pending(now));
                        let backup = want_backup(c, p);
                        let retry = c.attempts.get(&p.id).copied().unwrap_or(0) > 0;
                        out.push(Decision {
                            command: Command::Create {
                                token,
                                local_id: p.id,
                                local: p.address,
                                ifindex: p.ifindex,
                                remote: c.remote,
                                backup,
                            },
                            reason: format!(
                                "{}: {} subflow on {} ({trigger}{})",
                                c.policy,
                                if backup { "backup" } else { "a" },
                                p.interface,
                                if retry { ", again after a backoff" } else { "" }
                            ),
                        });
                    }
                }
            }
        }
        // Paths that vanished are no longer wanted.
        c.want.retain(|id, _| family.iter().any(|p| p.id == *id));
        remember(c, now, &out);
        if let Some(w) = switch {
            if !out.iter().any(|d| d.reason == w) {
                c.last = Some((now, w));
            }
        }
        out
    }
}

fn remember(c: &mut Conn, now: Instant, out: &[Decision]) {
    if let Some(d) = out.last() {
        c.last = Some((now, d.reason.clone()));
    }
}

/// The open subflow on path `id` of `family`, if any.
fn live(c: &Conn, family: &[&LocalPath], id: u8) -> Option<Sf> {
    let address = family.iter().find(|p| p.id == id)?.address;
    c.subflows
        .iter()
        .find(|s| s.local.ip() == address && !s.closing)
        .cloned()
}

fn path_of(paths: &[LocalPath], ip: IpAddr) -> Option<u8> {
    paths.iter().find(|p| p.address == ip).map(|p| p.id)
}

fn schedule_retry(c: &mut Conn, path: u8, now: Instant) {
    let n = c.attempts.entry(path).or_insert(0);
    let delay = BACKOFF_MIN
        .saturating_mul(1u32 << (*n).min(8))
        .min(BACKOFF_MAX);
    *n += 1;
    c.want.insert(path, Want::Retry(now + delay));
}

fn update_health(h: &mut Health, m: &SubflowSample, now: Instant) {
    let progressed = m.bytes_acked > h.acked || m.unacked == 0;
    h.rtt = Some(m.rtt);
    h.rto = m.rto;
    if progressed || h.last_progress.is_none() {
        h.last_progress = Some(now);
    }
    h.acked = m.bytes_acked;
    h.unacked = m.unacked;
    let threshold = (m.rto * 2).max(STALL_MIN);
    h.stalled = m.unacked > 0
        && h.last_progress
            .is_some_and(|t| now.saturating_duration_since(t) >= threshold);
    if h.stalled {
        h.healthy_since = None;
    } else if h.healthy_since.is_none() {
        h.healthy_since = Some(now);
    }
}

#[cfg(test)]
mod tests;
