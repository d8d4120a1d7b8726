//! The balancer's Prometheus metrics (`mptcp lb run --metrics ADDR`), through the
//! toolkit's one metrics stack ([`mptcp_metrics`]): the backends and their state,
//! reloads, and with token steering the program's and the registry's counters.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use mptcp_metrics::prometheus::{IntCounterVec, IntGauge, IntGaugeVec};
use mptcp_metrics::Registry;

use crate::balancer::Status;
use crate::steering::SteeringStatus;

/// The registry and its families; [`Metrics::update`] brings them to the balancer's
/// state.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    backends: IntGaugeVec,
    reloads: IntCounterVec,
    joins: IntCounterVec,
    registry_messages: IntCounterVec,
    tokens: IntGauge,
    /// Counters the kernel and the registry keep as totals: what was last added.
    seen: BTreeMap<(&'static str, String), u64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The families, with the `mptcp_lb_` prefix.
    ///
    /// # Errors
    /// Never in practice: the names are fixed and valid.
    pub fn new() -> Result<Metrics, mptcp_metrics::Error> {
        let registry = Registry::with_prefix("mptcp_lb");
        Ok(Metrics {
            backends: registry.gauge_vec(
                "backends",
                "Backends by address and state (active, draining): 1 for each.",
                &["backend", "state"],
            )?,
            reloads: registry.counter_vec(
                "reloads_total",
                "Configurations re-read (SIGHUP), applied or refused.",
                &["result"],
            )?,
            joins: registry.counter_vec(
                "steer_joins_total",
                "MP_JOIN SYNs to a VIP seen by the token-steering program: steered to their \
                 backend, or dropped because no backend has published their token (yet).",
                &["outcome"],
            )?,
            registry_messages: registry.counter_vec(
                "registry_messages_total",
                "Token registry datagrams: accepted, or refused by reason (bad_mac, replayed, \
                 stale, unknown_backend, malformed).",
                &["result"],
            )?,
            tokens: registry.gauge("steer_tokens", "Tokens in the steering map.")?,
            registry,
            seen: BTreeMap::new(),
        })
    }

    /// The registry to serve.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A reload, applied or refused.
    pub fn reloaded(&self, ok: bool) {
        self.reloads
            .with_label_values(&[if ok { "applied" } else { "refused" }])
            .inc();
    }

    fn total(&mut self, family: &'static str, label: &str, now: u64) {
        let last = self.seen.entry((family, label.to_string())).or_insert(0);
        let delta = now.saturating_sub(*last);
        *last = now.max(*last);
        let vec = match family {
            "joins" => &self.joins,
            _ => &self.registry_messages,
        };
        vec.with_label_values(&[label]).inc_by(delta);
    }

    /// Brings every family to the state given.
    pub fn update(&mut self, status: &Status, steering: Option<&SteeringStatus>) {
        self.backends.reset();
        for b in &status.backends {
            self.backends
                .with_label_values(&[&b.address.to_string(), b.state])
                .set(1);
        }
        if let Some(s) = steering {
            self.tokens.set(s.tokens as i64);
            self.total("joins", "steered", s.steered);
            self.total("joins", "dropped_unknown", s.dropped_unknown);
            self.total("registry", "accepted", s.accepted_messages);
            for (reason, n) in &s.refused {
                self.total("registry", reason, *n);
            }
        }
    }
}

/// Serves `registry` on `addr` from a thread of its own until the process ends.
///
/// # Errors
/// The address cannot be bound (one line, with the address).
pub fn serve(addr: SocketAddr, registry: Registry) -> Result<(), String> {
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
    std::thread::Builder::new()
        .name("mptcp-lb-metrics".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match rt {
                Ok(rt) => rt.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => mptcp_metrics::serve(l, registry).await,
                        Err(e) => tracing::error!(error = %e, "metrics listener"),
                    }
                }),
                Err(e) => tracing::error!(error = %e, "metrics runtime"),
            }
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the metrics thread: {e}"))
}
