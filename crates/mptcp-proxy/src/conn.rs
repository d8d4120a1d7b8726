//! One relayed connection, from accept to close, and its [`ConnRecord`].

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mptcp_net::{Dialer, MptcpExt, MptcpStatus};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::config::{ProxyProtocol, Route};
use crate::metrics::RouteMetrics;
use crate::proxy::Phase;
use crate::proxy_protocol;
use crate::relay::{self, Activity, Direction, RelayError, RelayMode, Side, Way};
use crate::sys;

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EndReason {
    /// Both directions reached end of stream and were closed cleanly.
    Closed,
    /// The client reset its connection; the upstream was reset in turn.
    ClientReset,
    /// The upstream reset its connection; the client was reset in turn.
    UpstreamReset,
    /// Another error on the client's socket; the upstream was reset.
    ClientError,
    /// Another error on the upstream's socket; the client was reset.
    UpstreamError,
    /// No byte moved either way for the idle timeout; both closed cleanly.
    IdleTimeout,
    /// The upstream did not answer within the connect timeout; the client was reset.
    ConnectTimeout,
    /// The upstream refused the connection; the client was reset.
    ConnectRefused,
    /// The upstream could not be dialed (name resolution, no route, no
    /// descriptors, ...); the client was reset.
    ConnectFailed,
    /// The proxy stopped and the drain deadline passed; both were reset.
    Shutdown,
}

impl EndReason {
    /// A short stable name (`closed`, `client_reset`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            EndReason::Closed => "closed",
            EndReason::ClientReset => "client_reset",
            EndReason::UpstreamReset => "upstream_reset",
            EndReason::ClientError => "client_error",
            EndReason::UpstreamError => "upstream_error",
            EndReason::IdleTimeout => "idle_timeout",
            EndReason::ConnectTimeout => "connect_timeout",
            EndReason::ConnectRefused => "connect_refused",
            EndReason::ConnectFailed => "connect_failed",
            EndReason::Shutdown => "shutdown",
        }
    }

    /// The `kind` label of `mptcp_proxy_errors_total` for this ending, or `None`
    /// for a clean close. (Accept errors are counted as `accept_fd_limit` and
    /// `accept_error`.)
    pub fn error_kind(&self) -> Option<&'static str> {
        match self {
            EndReason::Closed => None,
            other => Some(other.as_str()),
        }
    }
}

/// What the proxy records about each finished connection.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct ConnRecord {
    /// The route's name.
    pub route: String,
    /// The client's address.
    pub client: SocketAddr,
    /// The upstream's address, when the dial succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<SocketAddr>,
    /// The client connection's MPTCP status (`None` if it could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_mptcp: Option<MptcpStatus>,
    /// The upstream connection's MPTCP status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_mptcp: Option<MptcpStatus>,
    /// Most subflows seen at once on the client connection (1 for plain TCP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_subflows: Option<u32>,
    /// Most subflows seen at once on the upstream connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_subflows: Option<u32>,
    /// Bytes from the client to the upstream (not counting a PROXY header).
    pub bytes_to_upstream: u64,
    /// Bytes from the upstream to the client.
    pub bytes_to_client: u64,
    /// From accept to close.
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    /// How the bytes moved; `None` if none did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay: Option<RelayMode>,
    /// How it ended.
    pub end: EndReason,
    /// The error behind `end`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e6)
}

/// Everything connections of one route share.
pub(crate) struct RouteCtx {
    pub(crate) route: Route,
    pub(crate) dialer: Dialer,
    pub(crate) metrics: RouteMetrics,
    pub(crate) pressure: Arc<crate::pressure::Pressure>,
    pub(crate) on_end: Option<crate::proxy::Callback>,
}

/// The number of subflows of `s` now: 1 + the extra ones for MPTCP, 1 otherwise
/// (without a system call when the status says it is not MPTCP).
fn subflows(s: &TcpStream, status: Option<MptcpStatus>) -> Option<u32> {
    if status.is_some_and(|st| !st.is_active()) {
        return Some(1);
    }
    match s.mptcp_info() {
        Ok(Some(info)) => Some(u32::from(info.subflows) + 1),
        Ok(None) => Some(1),
        Err(_) => None,
    }
}

fn max_opt(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// A gauge increment undone on drop, so every path out of [`handle`] leaves the
/// active counts right.
struct ActiveGuard(mptcp_metrics::prometheus::IntGauge);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn count_side(ctx: &RouteCtx, side: Side, status: Option<MptcpStatus>) -> ActiveGuard {
    let i = match side {
        Side::Client => 0,
        Side::Upstream => 1,
    };
    ActiveGuard(ctx.metrics.connection(i, status))
}

async fn forced(phase: &mut watch::Receiver<Phase>) {
    // A closed channel means the proxy is gone: treat it as a forced stop.
    let _ = phase.wait_for(|p| *p == Phase::Force).await;
}

fn connect_end(e: &io::Error) -> EndReason {
    match e.kind() {
        io::ErrorKind::TimedOut => EndReason::ConnectTimeout,
        io::ErrorKind::ConnectionRefused => EndReason::ConnectRefused,
        _ => EndReason::ConnectFailed,
    }
}

/// Relays one accepted connection to the route's upstream and reports it.
pub(crate) async fn handle(
    client: TcpStream,
    peer: SocketAddr,
    ctx: Arc<RouteCtx>,
    mut phase: watch::Receiver<Phase>,
    dialing: crate::pressure::Dialing,
) {
    let started = Instant::now();
    // A side forced to plain TCP is plain TCP: no system call to ask.
    let client_mptcp = if ctx.route.listen_tcp {
        Some(MptcpStatus::PlainTcp)
    } else {
        client.mptcp_status().ok()
    };
    let _client_active = count_side(&ctx, Side::Client, client_mptcp);
    let mut record = ConnRecord {
        route: ctx.route.name.clone(),
        client: peer,
        upstream: None,
        client_mptcp,
        upstream_mptcp: None,
        client_subflows: None,
        upstream_subflows: None,
        bytes_to_upstream: 0,
        bytes_to_client: 0,
        duration: Duration::ZERO,
        relay: None,
        end: EndReason::Closed,
        error: None,
    };
    let _ = client.set_nodelay(true);

    // Dial, bounded by the connect timeout as a whole (name resolution included).
    let dialed = tokio::select! {
        r = dial(&ctx) => r,
        () = forced(&mut phase) => Err(io::Error::other("the proxy stopped")),
    };
    drop(dialing);
    let _relaying = dialed.is_ok().then(|| ctx.pressure.relaying());
    let mut upstream = match dialed {
        Ok(s) => s,
        Err(e) => {
            record.end = if *phase.borrow() == Phase::Force {
                EndReason::Shutdown
            } else {
                connect_end(&e)
            };
            record.error = Some(format!("{}: {e}", ctx.route.upstream));
            // A reset, not an empty clean close: the client must not take "no
            // upstream" for "the upstream said nothing".
            sys::set_reset_on_close(&client);
            drop(client);
            finish(&ctx, record, started);
            return;
        }
    };
    record.upstream = upstream.peer_addr().ok();
    record.upstream_mptcp = if ctx.route.to_tcp {
        Some(MptcpStatus::PlainTcp)
    } else {
        upstream.mptcp_status().ok()
    };
    let _upstream_active = count_side(&ctx, Side::Upstream, record.upstream_mptcp);
    let _ = upstream.set_nodelay(true);

    let header = match ctx.route.proxy_protocol {
        ProxyProtocol::None => None,
        ProxyProtocol::V1 => client
            .local_addr()
            .ok()
            .map(|local| proxy_protocol::encode_v1(peer, local)),
        ProxyProtocol::V2 => client.local_addr().ok().map(|local| {
            proxy_protocol::encode_v2(
                peer,
                local,
                Some(client_mptcp.unwrap_or(MptcpStatus::PlainTcp)),
            )
        }),
    };
    if let Some(header) = header {
        if let Err(e) = upstream.write_all(&header).await {
            record.end = EndReason::UpstreamError;
            record.error = Some(format!("sending the PROXY header: {e}"));
            sys::set_reset_on_close(&client);
            finish(&ctx, record, started);
            return;
        }
    }

    let up = Direction::default();
    let down = Direction::default();
    let activity = Activity::new();
    let to_upstream = &ctx.metrics.to_upstream;
    let to_client = &ctx.metrics.to_client;
    let try_splice = !ctx.route.force_copy;
    let outcome = {
        let a = Way {
            src: &client,
            dst: &upstream,
            src_side: Side::Client,
            dst_side: Side::Upstream,
            stats: &up,
            other: &down,
            counter: to_upstream,
            activity: &activity,
            copy_buffer: ctx.route.copy_buffer,
            try_splice,
        };
        let b = Way {
            src: &upstream,
            dst: &client,
            src_side: Side::Upstream,
            dst_side: Side::Client,
            stats: &down,
            other: &up,
            counter: to_client,
            activity: &activity,
            copy_buffer: ctx.route.copy_buffer,
            try_splice,
        };
        let both = async { tokio::try_join!(a.run(), b.run()) };
        let watch = watchdog(
            &client,
            &upstream,
            &activity,
            ctx.route.idle_timeout,
            &mut record,
        );
        tokio::select! {
            r = both => match r {
                Ok(_) => Outcome::Done,
                Err(e) => Outcome::Failed(e),
            },
            () = watch => Outcome::Idle,
            () = forced(&mut phase) => Outcome::Forced,
        }
    };
    record.client_subflows = max_opt(
        record.client_subflows,
        subflows(&client, record.client_mptcp),
    );
    record.upstream_subflows = max_opt(
        record.upstream_subflows,
        subflows(&upstream, record.upstream_mptcp),
    );
    record.bytes_to_upstream = up.bytes.load(Ordering::Relaxed);
    record.bytes_to_client = down.bytes.load(Ordering::Relaxed);
    record.relay = relay::relay_mode(&up, &down);
    match outcome {
        Outcome::Done => {}
        Outcome::Idle => record.end = EndReason::IdleTimeout,
        Outcome::Forced => {
            record.end = EndReason::Shutdown;
            sys::set_reset_on_close(&client);
            sys::set_reset_on_close(&upstream);
        }
        Outcome::Failed(RelayError { side, error }) => {
            let reset = matches!(
                error.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            );
            record.end = match (side, reset) {
                (Side::Client, true) => EndReason::ClientReset,
                (Side::Client, false) => EndReason::ClientError,
                (Side::Upstream, true) => EndReason::UpstreamReset,
                (Side::Upstream, false) => EndReason::UpstreamError,
            };
            record.error = Some(format!("{}: {error}", side.as_str()));
            // Carry the failure to the other side as a reset; the failed side
            // is reset too, in case it is only half broken.
            sys::set_reset_on_close(&client);
            sys::set_reset_on_close(&upstream);
        }
    }
    drop(client);
    drop(upstream);
    finish(&ctx, record, started);
}

/// Dials the route's upstream within the connect timeout. Out of descriptors
/// (`EMFILE`, no socket made, nothing sent), it waits for one to free up and tries
/// again, rather than failing a client the proxy could serve a moment later.
async fn dial(ctx: &RouteCtx) -> io::Result<TcpStream> {
    let timeout = ctx.route.connect_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut backoff = Duration::from_millis(10);
    loop {
        let attempt =
            tokio::time::timeout_at(deadline, ctx.dialer.dial_async(ctx.route.upstream.as_str()));
        match attempt.await {
            Ok(Err(e)) if sys::resource_exhausted(&e) => {
                ctx.metrics.error("dial_fd_limit");
                ctx.pressure.hit("dial", &e);
                tracing::debug!("dial: {e}; waiting {backoff:?} for a descriptor");
                if !ctx.pressure.worth_waiting()
                    || tokio::time::Instant::now() + backoff >= deadline
                {
                    return Err(e);
                }
                ctx.pressure.wait(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
            Ok(r) => {
                tracing::debug!("dial: {:?}", r.as_ref().map(|_| ()));
                return r;
            }
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no connection to {} within {timeout:?}", ctx.route.upstream),
                ))
            }
        }
    }
}

enum Outcome {
    Done,
    Failed(RelayError),
    Idle,
    Forced,
}

/// Returns when the connection has been idle for `idle`; meanwhile samples the
/// subflow counts once a second while bytes move (an idle connection costs a
/// timer, not system calls).
async fn watchdog(
    client: &TcpStream,
    upstream: &TcpStream,
    activity: &Activity,
    idle: Option<Duration>,
    record: &mut ConnRecord,
) {
    let tick = idle.map_or(Duration::from_secs(1), |i| i.min(Duration::from_secs(1)));
    let mut sampled_at = None;
    loop {
        tokio::time::sleep(tick).await;
        let last = activity.last();
        if sampled_at != Some(last) {
            sampled_at = Some(last);
            record.client_subflows = max_opt(
                record.client_subflows,
                subflows(client, record.client_mptcp),
            );
            record.upstream_subflows = max_opt(
                record.upstream_subflows,
                subflows(upstream, record.upstream_mptcp),
            );
        }
        if let Some(idle) = idle {
            let deadline = activity.last() + idle;
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            if deadline - now < tick {
                tokio::time::sleep_until(deadline.into()).await;
                if activity.last() + idle <= Instant::now() {
                    return;
                }
            }
        }
    }
}

fn finish(ctx: &RouteCtx, mut record: ConnRecord, started: Instant) {
    record.duration = started.elapsed();
    if let Some(kind) = record.end.error_kind() {
        ctx.metrics.error(kind);
    }
    if let Some(mode) = record.relay {
        ctx.metrics.relay(mode);
    }
    if let Some(cb) = &ctx.on_end {
        cb(&record);
    }
}
