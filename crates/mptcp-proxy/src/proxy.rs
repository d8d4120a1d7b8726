//! [`Proxy`]: a route's listener on the session pipeline.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use mptcp_net::{Dialer, ListenConfig};
use tokio::net::TcpListener;

use crate::config::{Config, Route};
use crate::conn::{ConnRecord, RouteCtx};
use crate::metrics::{Metrics, RouteMetrics};
use crate::session::{OnEnd, Pipeline, RelaySettings, RunSummary, Shared, ShutdownHandle};

/// A function called with each finished connection's record.
pub type Callback = OnEnd<ConnRecord>;

struct BoundRoute {
    ctx: Arc<RouteCtx>,
    listener: TcpListener,
    local: SocketAddr,
}

/// A TCP <-> MPTCP relay over one or more [`Route`]s, runnable inside any tokio
/// program. See the [crate docs](crate) for an example and the behaviour.
pub struct Proxy {
    routes: Vec<BoundRoute>,
    metrics: Arc<Metrics>,
    metrics_listener: Option<(TcpListener, SocketAddr)>,
    pipeline: Pipeline,
    on_end: Option<Callback>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("routes", &self.local_addrs())
            .field("drain_timeout", &self.pipeline.drain_timeout())
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
        let mut routes = Vec::with_capacity(config.routes.len());
        for route in &config.routes {
            route
                .validate()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
            routes.push(bind_route(route.clone(), &metrics).await?);
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
        Ok(Proxy {
            routes,
            metrics,
            metrics_listener,
            pipeline: Pipeline::new(config.drain_timeout),
            on_end: None,
        })
    }

    /// Each route's name and the address its listener is bound to.
    pub fn local_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.routes
            .iter()
            .map(|r| (r.ctx.shared.name.clone(), r.local))
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
        self.pipeline.shutdown_handle()
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
        let metrics_task = self
            .metrics_listener
            .map(|(l, _)| tokio::spawn(mptcp_metrics::serve(l, self.metrics.registry().clone())));
        let accept_loops = self
            .routes
            .into_iter()
            .map(|r| self.pipeline.listen(r.listener, r.ctx, self.on_end.clone()))
            .collect();
        let summary = self.pipeline.run(accept_loops).await;
        if let Some(t) = metrics_task {
            t.abort();
        }
        summary
    }
}

async fn bind_route(route: Route, metrics: &Arc<Metrics>) -> io::Result<BoundRoute> {
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
    let shared = Shared {
        name: route.name.clone(),
        dialer,
        connect_timeout: route.connect_timeout,
        metrics: route_metrics,
        relay: RelaySettings {
            idle_timeout: route.idle_timeout,
            copy_buffer: route.copy_buffer,
            bulk_buffer: route.bulk_buffer,
            try_splice: route.splice,
            notsent_lowat: route.notsent_lowat,
        },
        max_conns: route.max_conns,
    };
    Ok(BoundRoute {
        ctx: Arc::new(RouteCtx {
            upstream_addr: route.upstream.parse().ok(),
            route,
            shared,
        }),
        listener,
        local,
    })
}
