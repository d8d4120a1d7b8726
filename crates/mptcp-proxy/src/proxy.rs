//! [`Proxy`]: listeners, accept loops, the lifecycle.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mptcp_net::{Dialer, ListenConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_util::task::TaskTracker;

use crate::config::{Config, Route};
use crate::conn::{self, ConnRecord, RouteCtx};
use crate::metrics::{Metrics, RouteMetrics};
use crate::pressure::Pressure;
use crate::sys;

/// A function called with each finished connection's record.
pub type Callback = Arc<dyn Fn(&ConnRecord) + Send + Sync>;

/// Where the proxy is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Running,
    /// Not accepting; connections finish on their own.
    Draining,
    /// The drain deadline passed: connections are reset.
    Force,
}

/// Stops a running [`Proxy`]: it stops accepting at once, lets the connections
/// finish for up to the drain timeout, then resets those left.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    phase: Arc<watch::Sender<Phase>>,
}

impl ShutdownHandle {
    /// Asks the proxy to stop (idempotent). [`Proxy::run`] returns once it has.
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

struct BoundRoute {
    ctx: Arc<RouteCtx>,
    listener: TcpListener,
    local: SocketAddr,
}

/// What [`Proxy::run`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunSummary {
    /// Connections still open at the drain deadline, and reset.
    pub reset_at_deadline: usize,
}

/// A TCP <-> MPTCP relay over one or more [`Route`]s, runnable inside any tokio
/// program. See the [crate docs](crate) for an example and the behaviour.
pub struct Proxy {
    routes: Vec<BoundRoute>,
    metrics: Arc<Metrics>,
    metrics_listener: Option<(TcpListener, SocketAddr)>,
    phase: Arc<watch::Sender<Phase>>,
    drain_timeout: Duration,
    on_end: Option<Callback>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("routes", &self.local_addrs())
            .field("drain_timeout", &self.drain_timeout)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// Binds every route's listener (and the metrics listener, if configured).
    ///
    /// The listen side is an mptcp-net listener: MPTCP unless the route says
    /// `listen_tcp`, and an MPTCP listener takes plain TCP clients too.
    pub async fn bind(config: &Config) -> io::Result<Proxy> {
        if config.routes.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no route: nothing to relay",
            ));
        }
        let metrics = Arc::new(Metrics::new());
        let pressure = Arc::new(Pressure::default());
        let mut routes = Vec::with_capacity(config.routes.len());
        for route in &config.routes {
            route
                .validate()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
            routes.push(bind_route(route.clone(), &metrics, &pressure).await?);
        }
        let metrics_listener = match config.metrics {
            Some(addr) => {
                let l = TcpListener::bind(addr)
                    .await
                    .map_err(|e| io::Error::new(e.kind(), format!("metrics on {addr}: {e}")))?;
                let local = l.local_addr()?;
                Some((l, local))
            }
            None => None,
        };
        let (phase, _) = watch::channel(Phase::Running);
        Ok(Proxy {
            routes,
            metrics,
            metrics_listener,
            phase: Arc::new(phase),
            drain_timeout: config.drain_timeout,
            on_end: None,
        })
    }

    /// Each route's name and the address its listener is bound to.
    pub fn local_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.routes
            .iter()
            .map(|r| (r.ctx.route.name.clone(), r.local))
            .collect()
    }

    /// Where `/metrics` is served, if it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().map(|(_, a)| *a)
    }

    /// The proxy's metrics (also served on the metrics address).
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// A handle that stops the proxy.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            phase: Arc::clone(&self.phase),
        }
    }

    /// Calls `f` with the record of every finished connection (from the
    /// connection's task: keep it short).
    pub fn on_connection_end(&mut self, f: impl Fn(&ConnRecord) + Send + Sync + 'static) {
        let cb: Callback = Arc::new(f);
        self.on_end = Some(cb);
    }

    /// Accepts and relays until a [`ShutdownHandle`] stops it, then drains.
    ///
    /// Needs a tokio runtime with the time and I/O drivers.
    pub async fn run(self) -> RunSummary {
        let tracker = TaskTracker::new();
        let metrics_task = self
            .metrics_listener
            .map(|(l, _)| tokio::spawn(mptcp_metrics::serve(l, self.metrics.registry().clone())));
        let mut accept_loops = Vec::new();
        for mut r in self.routes {
            if let Some(cb) = &self.on_end {
                // Only this Arc exists yet: set the callback in place.
                if let Some(ctx) = Arc::get_mut(&mut r.ctx) {
                    ctx.on_end = Some(Arc::clone(cb));
                }
            }
            accept_loops.push(tokio::spawn(accept_loop(
                r.listener,
                r.ctx,
                self.phase.subscribe(),
                tracker.clone(),
            )));
        }
        let mut phase = self.phase.subscribe();
        let _ = phase.wait_for(|p| *p != Phase::Running).await;
        for l in accept_loops {
            let _ = l.await;
        }
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
        if let Some(t) = metrics_task {
            t.abort();
        }
        summary
    }
}

async fn bind_route(
    route: Route,
    metrics: &Arc<Metrics>,
    pressure: &Arc<Pressure>,
) -> io::Result<BoundRoute> {
    // Untouched, both sides follow mptcp-net's process default (MPTCP, unless
    // the MPTCP_NET environment variable says otherwise); the route can only
    // force plain TCP.
    let mut lc = ListenConfig::new();
    lc.set_backlog(route.backlog);
    if route.listen_tcp {
        lc.set_multipath_tcp(false);
    }
    let listener = lc
        .listen_async(route.listen)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("listen on {}: {e}", route.listen)))?;
    let local = listener.local_addr()?;
    let route_metrics = RouteMetrics::new(metrics, &route.name);
    let mut dialer = Dialer::new();
    dialer.set_timeout(Some(route.connect_timeout));
    // No keep-alive on upstream dials (four setsockopt calls per connection):
    // the idle timeout ends dead pairs, and accepted clients keep the
    // listener's keep-alive, which costs nothing per connection.
    dialer.set_keep_alive(None);
    if route.to_tcp {
        dialer.set_multipath_tcp(false);
    }
    Ok(BoundRoute {
        ctx: Arc::new(RouteCtx {
            route,
            dialer,
            metrics: route_metrics,
            pressure: Arc::clone(pressure),
            on_end: None,
        }),
        listener,
        local,
    })
}

const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

async fn stopping(phase: &mut watch::Receiver<Phase>) {
    let _ = phase.wait_for(|p| *p != Phase::Running).await;
}

/// Accepts while a connection slot is free; waits (without accepting) when none
/// is, and while descriptors or memory run out ([`Pressure`]).
async fn accept_loop(
    listener: TcpListener,
    ctx: Arc<RouteCtx>,
    mut phase: watch::Receiver<Phase>,
    tracker: TaskTracker,
) {
    let slots = Arc::new(Semaphore::new(ctx.route.max_conns));
    let mut backoff = BACKOFF_MIN;
    let name = ctx.route.name.clone();
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            () = stopping(&mut phase) => return,
        };
        // The pending clients stay in the backlog meanwhile.
        while ctx.pressure.hold_accepts() {
            tokio::select! {
                () = ctx.pressure.wait(backoff) => {}
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
                tracing::debug!(route = %name, "accepted {peer}");
                let ctx = Arc::clone(&ctx);
                let phase = phase.clone();
                let dialing = ctx.pressure.dialing();
                tracker.spawn(async move {
                    conn::handle(stream, peer, Arc::clone(&ctx), phase, dialing).await;
                    tracing::debug!("closed {peer}");
                    ctx.pressure.freed();
                    drop(permit);
                });
            }
            Err(e) if sys::resource_exhausted(&e) => {
                ctx.metrics.error("accept_fd_limit");
                ctx.pressure.hit("accept", &e);
            }
            Err(e) => {
                // ECONNABORTED and the like: that client is gone, the next may not be.
                ctx.metrics.error("accept_error");
                tracing::debug!(route = %name, "accept: {e}");
            }
        }
    }
}
