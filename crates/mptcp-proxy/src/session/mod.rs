//! The session pipeline that [`Proxy`](crate::Proxy) and
//! [`Gateway`](crate::gateway::Gateway) share: one accept loop (connection slots,
//! descriptor-pressure backoff), one session (count the sides, reach the
//! upstream, relay the pair with its watchdog, record, report), one shutdown
//! (stop accepting, drain, then reset what is left).
//!
//! A front end is a [`Front`]: how the upstream is reached (a route's fixed
//! `HOST:PORT` with an optional PROXY header; a SOCKS5, CONNECT, redirect or RFC
//! 8803 handshake) and what its record adds. Everything else, the pressure
//! protocol of the `pressure` module included, is here once, as quinn's drivers
//! share quinn-proto's state machine and HAProxy's listeners share one session
//! path.

mod pair;
mod record;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mptcp_net::{Dialer, MptcpExt, MptcpStatus};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::metrics::RouteMetrics;
use crate::pressure::{Dialing, Pressure};
use crate::relay::Side;
use crate::sys;

pub(crate) use pair::{relay_pair, Counted, RelayEnd, RelaySettings};
pub(crate) use record::record_core;
pub use record::{RecordCore, Redial};

/// Where a proxy or a gateway is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Running,
    /// Not accepting; connections finish on their own.
    Draining,
    /// The drain deadline passed: connections are reset.
    Force,
}

/// Stops a running [`Proxy`](crate::Proxy) or [`Gateway`](crate::gateway::Gateway):
/// it stops accepting at once, lets the connections finish for up to the drain
/// timeout, then resets those left.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    phase: Arc<watch::Sender<Phase>>,
}

impl ShutdownHandle {
    /// Asks it to stop (idempotent). `run` returns once it has.
    pub fn shutdown(&self) {
        self.phase.send_if_modified(|p| {
            if *p == Phase::Running {
                *p = Phase::Draining;
                true
            } else {
                false
            }
        });
    }

    /// Stops at once: no drain; open connections are reset.
    pub fn shutdown_now(&self) {
        self.phase.send_replace(Phase::Force);
    }
}

/// What a `run` did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunSummary {
    /// Connections still open at the drain deadline, and reset.
    pub reset_at_deadline: usize,
}

/// A function called with each finished connection's record (from the
/// connection's task: keep it short).
pub type OnEnd<R> = Arc<dyn Fn(&R) + Send + Sync>;

/// Returns once the stop is forced; a closed channel counts as forced (the owner
/// is gone).
pub(crate) async fn forced(phase: &mut watch::Receiver<Phase>) {
    let _ = phase.wait_for(|p| *p == Phase::Force).await;
}

async fn stopping(phase: &mut watch::Receiver<Phase>) {
    let _ = phase.wait_for(|p| *p != Phase::Running).await;
}

/// What every session of one listener shares, whatever the front end.
pub(crate) struct Shared {
    /// The route's name, or the gateway's mode: the `route` label, the logs.
    pub(crate) name: String,
    pub(crate) dialer: Dialer,
    pub(crate) connect_timeout: Duration,
    pub(crate) metrics: RouteMetrics,
    pub(crate) relay: RelaySettings,
    pub(crate) max_conns: usize,
}

/// A front end's record: a [`RecordCore`] and what the front end adds.
pub(crate) trait Record: Send + 'static {
    fn core(&mut self) -> &mut RecordCore;
    /// Records how the relay ended, in this record's terms.
    fn relay_ended(&mut self, end: RelayEnd);
    /// The `kind` label of `mptcp_proxy_errors_total`, or `None` for a clean end.
    fn error_kind(&self) -> Option<&'static str>;
}

/// How a front end reaches the upstream: the strategy a listener plugs into the
/// pipeline.
pub(crate) trait Front: Send + Sync + 'static {
    type Record: Record;
    /// What [`Front::reach`] learned that [`Front::greet`] needs (a reply to
    /// send, bytes read past a handshake).
    type Pending: Send;

    fn shared(&self) -> &Shared;

    /// A new record for an accepted client.
    fn record(&self, core: RecordCore) -> Self::Record;

    /// The accepted client's MPTCP status.
    fn client_status(&self, client: &TcpStream) -> Option<MptcpStatus> {
        client.mptcp_status().ok()
    }

    /// The dialed upstream's MPTCP status.
    fn upstream_status(&self, upstream: &TcpStream) -> Option<MptcpStatus> {
        upstream.mptcp_status().ok()
    }

    /// Learns where the client goes (if the front end asks) and dials it with
    /// `dial`. `None` when it could not: the record says why, and the client has
    /// been answered, closed or set to reset as this front end does.
    fn reach<'a>(
        &'a self,
        client: &'a mut TcpStream,
        dial: &'a Dial<'a>,
        record: &'a mut Self::Record,
    ) -> impl Future<Output = Option<(TcpStream, Self::Pending)>> + Send + 'a;

    /// What goes before the relay once the upstream is counted (a PROXY header,
    /// a handshake's answer, bytes read with a handshake). `false` ends the
    /// session: the record says why.
    fn greet<'a>(
        &'a self,
        client: &'a mut TcpStream,
        upstream: &'a mut TcpStream,
        pending: Self::Pending,
        record: &'a mut Self::Record,
    ) -> impl Future<Output = bool> + Send + 'a;

    /// The record of a session stopped before its relay began.
    fn stopped(&self, record: &mut Self::Record) {
        record.relay_ended(RelayEnd::Forced);
        record.core().error = Some("stopped before the relay began".into());
    }
}

/// Dials for a session: within the connect timeout, and, out of descriptors,
/// waiting for one to free up rather than failing a client that could be served
/// a moment later (see the `pressure` module).
pub(crate) struct Dial<'a> {
    shared: &'a Shared,
    pressure: &'a Pressure,
    /// What a second dial gave (see [`Dial::second_chance`]).
    redial: std::sync::OnceLock<Redial>,
    /// The MPTCP status [`Dial::second_chance`] read of the stream it returned,
    /// by descriptor: the session's record takes it rather than asking again.
    status: std::sync::Mutex<Option<(RawFd, Option<MptcpStatus>)>>,
}

/// How long a second dial after a SYN-loss fallback may take: four of the first
/// connection's round trips, within these bounds, plus [`REDIAL_SYN_RTO`].
const REDIAL_WAIT_MIN: Duration = Duration::from_millis(100);
const REDIAL_WAIT_MAX: Duration = Duration::from_secs(1);
/// The kernel's first SYN retransmission timeout: a second dial may lose its
/// first SYN too (the path that lost the first dial's is often still queueing
/// or flapping) and is answered on the retransmission. Without this margin, 8
/// second dials of one 10-minute soak gave up within their 4 round trips and
/// kept plain TCP, and 5 of those died with their path's address a few seconds
/// later.
const REDIAL_SYN_RTO: Duration = Duration::from_secs(1);

impl<'a> Dial<'a> {
    fn new(shared: &'a Shared, pressure: &'a Pressure) -> Dial<'a> {
        Dial {
            shared,
            pressure,
            redial: std::sync::OnceLock::new(),
            status: std::sync::Mutex::new(None),
        }
    }

    /// Dials `target` (an address, or `HOST:PORT`); an MPTCP dial the kernel
    /// turned into plain TCP because its SYNs were lost gets a second chance
    /// ([`Dial::second_chance`]).
    pub(crate) async fn dial<A>(&self, target: A) -> io::Result<TcpStream>
    where
        A: tokio::net::ToSocketAddrs + Copy + std::fmt::Display + Send,
    {
        let first = self.dial_once(target).await?;
        Ok(self.second_chance(first).await)
    }

    /// What a second dial gave, if one was made.
    pub(crate) fn redial(&self) -> Option<Redial> {
        self.redial.get().copied()
    }

    /// The MPTCP status of `stream` if this dial already read it (it returned
    /// that stream): one `getsockopt` a connection fewer.
    pub(crate) fn known_status(&self, stream: &TcpStream) -> Option<Option<MptcpStatus>> {
        let known = *self.status.lock().unwrap_or_else(|e| e.into_inner());
        known
            .filter(|(fd, _)| *fd == stream.as_raw_fd())
            .map(|(_, status)| status)
    }

    fn remember(&self, stream: &TcpStream, status: Option<MptcpStatus>) {
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = Some((stream.as_raw_fd(), status));
    }

    fn redialed(&self, outcome: Redial) {
        self.shared.metrics.redial(outcome.as_str());
        // One second dial a session at most: set once.
        let _ = self.redial.set(outcome);
    }

    /// The kernel sends a connection's third SYN without MPTCP when the first two
    /// went unanswered (`net.mptcp.syn_retrans_before_tcp_fallback`), taking the
    /// loss for a middlebox that drops MPTCP options. Across an outage or an
    /// address that came back, that guess is wrong, and costly: the connection is
    /// plain TCP for life, and is lost with its one path. So an MPTCP dial that
    /// fell back *and* retransmitted its SYN is made once more, to the same
    /// address: the path has just answered, so the new SYN is answered within a
    /// few round trips, or on its retransmission a second later. An MPTCP answer replaces the first connection (closed
    /// before any byte was sent on it: the upstream sees an empty connection);
    /// anything else (plain TCP again, an error, no answer in time) keeps it.
    /// A peer that does not speak MPTCP answers the first SYN without it: no
    /// retransmission, no second dial. Counted by outcome in
    /// `mptcp_proxy_redials_total`.
    async fn second_chance(&self, first: TcpStream) -> TcpStream {
        if !self.shared.dialer.multipath_tcp() {
            return first;
        }
        let status = first.mptcp_status().ok();
        self.remember(&first, status);
        if status != Some(MptcpStatus::FellBack) {
            return first;
        }
        let Some(tcp) = first.subflows().ok().and_then(|s| s.into_iter().next()) else {
            return first;
        };
        if tcp.tcp.total_retrans == 0 {
            return first;
        }
        let Ok(peer) = first.peer_addr() else {
            return first;
        };
        let wait = (tcp.tcp.rtt * 4).clamp(REDIAL_WAIT_MIN, REDIAL_WAIT_MAX) + REDIAL_SYN_RTO;
        let outcome = match tokio::time::timeout(wait, self.shared.dialer.dial_async(peer)).await {
            Ok(Ok(second)) if second.mptcp_status().ok() == Some(MptcpStatus::Active) => {
                self.remember(&second, Some(MptcpStatus::Active));
                tracing::debug!(route = %self.shared.name, "{peer}: fell back after lost SYNs; redialed with MPTCP");
                self.redialed(Redial::Mptcp);
                return second;
            }
            Ok(Ok(_)) => Redial::FellBack,
            Ok(Err(_)) => Redial::Failed,
            Err(_) => Redial::TimedOut,
        };
        tracing::debug!(route = %self.shared.name, "{peer}: fell back after lost SYNs; second dial {}, kept plain TCP", outcome.as_str());
        self.redialed(outcome);
        first
    }

    async fn dial_once<A>(&self, target: A) -> io::Result<TcpStream>
    where
        A: tokio::net::ToSocketAddrs + Copy + std::fmt::Display + Send,
    {
        let timeout = self.shared.connect_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut backoff = Duration::from_millis(10);
        loop {
            let attempt = tokio::time::timeout_at(deadline, self.shared.dialer.dial_async(target));
            match attempt.await {
                Ok(Err(e)) if sys::resource_exhausted(&e) => {
                    self.shared.metrics.error("dial_fd_limit");
                    self.pressure.hit("dial", &e);
                    tracing::debug!("dial: {e}; waiting {backoff:?} for a descriptor");
                    if !self.pressure.worth_waiting()
                        || tokio::time::Instant::now() + backoff >= deadline
                    {
                        return Err(e);
                    }
                    self.pressure.wait(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                Ok(r) => {
                    tracing::debug!("dial: {:?}", r.as_ref().map(|_| ()));
                    return r;
                }
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no connection to {target} within {timeout:?}"),
                    ))
                }
            }
        }
    }
}

/// Notes on a failed relay's record that its upstream, MPTCP when dialled, is plain
/// TCP now (one `getsockopt`, on errors only): the server fell back when the
/// handshake's last packets were lost, and this side followed (see the crate docs,
/// "Connections that fall back after the handshake").
fn note_late_fallback(upstream: &TcpStream, core: &mut RecordCore) {
    if core.upstream_mptcp == Some(MptcpStatus::Active)
        && upstream.mptcp_status().ok() == Some(MptcpStatus::FellBack)
    {
        core.upstream_fell_back_later = true;
    }
}

/// The lifecycle every listener of one proxy or gateway shares: the phase, the
/// descriptor pressure, the connections' tasks.
pub(crate) struct Pipeline {
    phase: Arc<watch::Sender<Phase>>,
    pressure: Arc<Pressure>,
    tracker: TaskTracker,
    drain_timeout: Duration,
}

impl Pipeline {
    pub(crate) fn new(drain_timeout: Duration) -> Pipeline {
        let (phase, _) = watch::channel(Phase::Running);
        Pipeline {
            phase: Arc::new(phase),
            pressure: Arc::new(Pressure::default()),
            tracker: TaskTracker::new(),
            drain_timeout,
        }
    }

    pub(crate) fn drain_timeout(&self) -> Duration {
        self.drain_timeout
    }

    pub(crate) fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            phase: Arc::clone(&self.phase),
        }
    }

    /// Starts `listener`'s accept loop.
    pub(crate) fn listen<F: Front>(
        &self,
        listener: TcpListener,
        front: Arc<F>,
        on_end: Option<OnEnd<F::Record>>,
    ) -> JoinHandle<()> {
        tokio::spawn(accept_loop(
            listener,
            front,
            on_end,
            Arc::clone(&self.pressure),
            self.phase.subscribe(),
            self.tracker.clone(),
        ))
    }

    /// Waits for a stop, for the accept loops to end, then for the connections
    /// for up to the drain timeout; resets those left.
    pub(crate) async fn run(self, accept_loops: Vec<JoinHandle<()>>) -> RunSummary {
        // Copy buffers unused for a while go back to the system: an idle relay
        // shrinks to what it needs idle.
        let trim = tokio::spawn(async {
            let mut every = tokio::time::interval(crate::sys::BUFFER_IDLE / 2);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                crate::sys::trim_idle_buffers(crate::sys::BUFFER_IDLE);
            }
        });
        let summary = self.run_until_stopped(accept_loops).await;
        trim.abort();
        summary
    }

    async fn run_until_stopped(self, accept_loops: Vec<JoinHandle<()>>) -> RunSummary {
        let mut phase = self.phase.subscribe();
        stopping(&mut phase).await;
        for l in accept_loops {
            let _ = l.await;
        }
        let tracker = self.tracker;
        tracker.close();
        let mut summary = RunSummary::default();
        if *self.phase.borrow() != Phase::Force {
            tracing::info!(
                "draining {} connections for up to {:?}",
                tracker.len(),
                self.drain_timeout
            );
            if tokio::time::timeout(self.drain_timeout, tracker.wait())
                .await
                .is_err()
            {
                summary.reset_at_deadline = tracker.len();
                tracing::warn!(
                    "drain deadline passed: resetting {} connections",
                    tracker.len()
                );
                self.phase.send_replace(Phase::Force);
            }
        } else {
            summary.reset_at_deadline = tracker.len();
        }
        tracker.wait().await;
        summary
    }
}

const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Accepts while a connection slot is free; waits (without accepting) when none
/// is, and while descriptors or memory run out ([`Pressure`]).
async fn accept_loop<F: Front>(
    listener: TcpListener,
    front: Arc<F>,
    on_end: Option<OnEnd<F::Record>>,
    pressure: Arc<Pressure>,
    mut phase: watch::Receiver<Phase>,
    tracker: TaskTracker,
) {
    let shared = front.shared();
    let slots = Arc::new(Semaphore::new(shared.max_conns));
    let mut backoff = BACKOFF_MIN;
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            () = stopping(&mut phase) => return,
        };
        // The pending clients stay in the backlog meanwhile.
        while pressure.hold_accepts() {
            tokio::select! {
                () = pressure.wait(backoff) => {}
                () = stopping(&mut phase) => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        backoff = BACKOFF_MIN;
        let accepted: io::Result<(TcpStream, SocketAddr)> = tokio::select! {
            r = listener.accept() => r,
            () = stopping(&mut phase) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                tracing::debug!(route = %shared.name, "accepted {peer}");
                let front = Arc::clone(&front);
                let on_end = on_end.clone();
                let pressure = Arc::clone(&pressure);
                let phase = phase.clone();
                let dialing = pressure.dialing();
                tracker.spawn(async move {
                    session(&*front, stream, peer, &pressure, phase, dialing, on_end).await;
                    tracing::debug!("closed {peer}");
                    pressure.freed();
                    drop(permit);
                });
            }
            Err(e) if sys::resource_exhausted(&e) => {
                shared.metrics.error("accept_fd_limit");
                pressure.hit("accept", &e);
            }
            Err(e) => {
                // ECONNABORTED and the like: that client is gone, the next may not be.
                shared.metrics.error("accept_error");
                tracing::debug!(route = %shared.name, "accept: {e}");
            }
        }
    }
}

/// One connection, from accept to close, whatever the front end.
async fn session<F: Front>(
    front: &F,
    mut client: TcpStream,
    peer: SocketAddr,
    pressure: &Arc<Pressure>,
    mut phase: watch::Receiver<Phase>,
    dialing: Dialing,
    on_end: Option<OnEnd<F::Record>>,
) {
    let started = Instant::now();
    let shared = front.shared();
    let client_mptcp = front.client_status(&client);
    let _client_counted = Counted::new(&shared.metrics, Side::Client, client_mptcp);
    let mut record = front.record(RecordCore::new(peer, client_mptcp));
    let _ = client.set_nodelay(true);
    sys::set_notsent_lowat(&client, shared.relay.notsent_lowat);

    let dial = Dial::new(shared, pressure);
    let reached = tokio::select! {
        r = front.reach(&mut client, &dial, &mut record) => r,
        () = forced(&mut phase) => {
            front.stopped(&mut record);
            sys::set_reset_on_close(&client);
            None
        }
    };
    drop(dialing);
    // Also when the front end failed after its dial (a handshake with the
    // upstream): the second dial was made all the same.
    record.core().upstream_redial = dial.redial();
    let Some((mut upstream, pending)) = reached else {
        drop(client);
        finish(front, record, started, on_end.as_ref());
        return;
    };
    let _relaying = pressure.relaying();
    let core = record.core();
    if core.upstream.is_none() {
        core.upstream = upstream.peer_addr().ok();
    }
    core.upstream_mptcp = dial
        .known_status(&upstream)
        .unwrap_or_else(|| front.upstream_status(&upstream));
    let _upstream_counted = Counted::new(&shared.metrics, Side::Upstream, core.upstream_mptcp);
    let _ = upstream.set_nodelay(true);
    sys::set_notsent_lowat(&upstream, shared.relay.notsent_lowat);

    let greeted = tokio::select! {
        ok = front.greet(&mut client, &mut upstream, pending, &mut record) => ok,
        () = forced(&mut phase) => {
            front.stopped(&mut record);
            sys::set_reset_on_close(&client);
            sys::set_reset_on_close(&upstream);
            false
        }
    };
    if greeted {
        let end = relay_pair(
            &client,
            &upstream,
            shared.relay,
            &shared.metrics,
            record.core(),
            &mut phase,
        )
        .await;
        record.relay_ended(end);
        if record.error_kind().is_some() {
            note_late_fallback(&upstream, record.core());
        }
    }
    drop(client);
    drop(upstream);
    finish(front, record, started, on_end.as_ref());
}

/// Counts the ending and hands the record over.
fn finish<F: Front>(
    front: &F,
    mut record: F::Record,
    started: Instant,
    on_end: Option<&OnEnd<F::Record>>,
) {
    let metrics = &front.shared().metrics;
    record.core().duration = started.elapsed();
    if let Some(kind) = record.error_kind() {
        metrics.error(kind);
    }
    if let Some(mode) = record.core().relay {
        metrics.relay(mode);
    }
    if let Some(cb) = on_end {
        cb(&record);
    }
}
