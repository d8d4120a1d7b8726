//! Prometheus metrics of a [`Proxy`](crate::Proxy) and of the
//! [gateway](crate::gateway) roles, in an [`mptcp_metrics::Registry`].
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `mptcp_proxy_connections_active` | gauge | `route`, `side` (`client`/`upstream`), `mptcp` (`active`/`fell_back`/`plain_tcp`/`unknown`) |
//! | `mptcp_proxy_connections_total` | counter | same |
//! | `mptcp_proxy_bytes_total` | counter | `route`, `direction` (`to_upstream`/`to_client`) |
//! | `mptcp_proxy_errors_total` | counter | `route`, `kind` (see [`ErrorKind`](crate::EndReason::error_kind)) |
//! | `mptcp_proxy_relay_total` | counter | `route`, `mode` (`splice`/`copy`/`mixed`) |
//! | `mptcp_proxy_redials_total` | counter | `route`, `outcome` (`mptcp`/`fell_back`/`failed`/`timed_out`): second dials after a fallback caused by lost SYNs |
//! | `mptcp_proxy_converter_retries_total` | counter | `route`, `reason` (`no_answer`/`lost`): gateway client roles, Convert exchanges made again on a new connection because the first gave no answer |
//! | `mptcp_proxy_convert_duplicates_total` | counter | `route`: converter, second copies of a Convert message dropped (the kernel delivered a fallen-back connection's first bytes twice) |
//!
//! They are served by [`mptcp_metrics::serve`] (text format 0.0.4, labels sorted by
//! name), on [`Config::metrics`](crate::Config::metrics) for a proxy.

use std::sync::Arc;

use mptcp_metrics::prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec};
use mptcp_metrics::Registry;
use mptcp_net::MptcpStatus;

use crate::relay::RelayMode;

/// The proxy's metrics, in their own registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    active: IntGaugeVec,
    total: IntCounterVec,
    bytes: IntCounterVec,
    errors: IntCounterVec,
    relay: IntCounterVec,
    redials: IntCounterVec,
    converter_retries: IntCounterVec,
    convert_duplicates: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

const CONN_LABELS: [&str; 3] = ["route", "side", "mptcp"];

impl Metrics {
    /// Empty metrics, registered under the `mptcp_proxy` prefix.
    pub fn new() -> Metrics {
        let registry = Registry::with_prefix("mptcp_proxy");
        // Fixed names and labels, registered once in a new registry: cannot fail.
        let made = (|| {
            Ok::<_, mptcp_metrics::Error>(Metrics {
                active: registry.gauge_vec(
                    "connections_active",
                    "Connections being relayed, by side and MPTCP status",
                    &CONN_LABELS,
                )?,
                total: registry.counter_vec(
                    "connections_total",
                    "Connections accepted (client side) and established (upstream side), by MPTCP status",
                    &CONN_LABELS,
                )?,
                bytes: registry.counter_vec(
                    "bytes_total",
                    "Bytes relayed, by direction",
                    &["route", "direction"],
                )?,
                errors: registry.counter_vec(
                    "errors_total",
                    "Connections that ended other than cleanly, and accept errors, by kind",
                    &["route", "kind"],
                )?,
                relay: registry.counter_vec(
                    "relay_total",
                    "Relayed connections by how their bytes moved",
                    &["route", "mode"],
                )?,
                redials: registry.counter_vec(
                    "redials_total",
                    "MPTCP dials made again because the first fell back to TCP after losing its SYNs, by outcome",
                    &["route", "outcome"],
                )?,
                converter_retries: registry.counter_vec(
                    "converter_retries_total",
                    "Convert exchanges made again on a new connection because the first gave no answer, by reason",
                    &["route", "reason"],
                )?,
                convert_duplicates: registry.counter_vec(
                    "convert_duplicates_total",
                    "Second copies of a client's Convert message dropped by the converter",
                    &["route"],
                )?,
                registry: registry.clone(),
            })
        })();
        made.expect("the proxy's metric names are valid")
    }

    /// The registry the metrics live in: serve it with [`mptcp_metrics::serve`].
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The text (format 0.0.4) of every metric.
    pub fn encode(&self) -> String {
        // Only a metric the encoder refuses fails, and these are fixed.
        self.registry.render().unwrap_or_default()
    }

    pub(crate) fn error(&self, route: &str, kind: &str) {
        self.errors.with_label_values(&[route, kind]).inc();
    }
}

/// One route's series, resolved once when the route is bound, so a connection
/// costs no label allocation or lookup. Every series exists (at 0) from the start.
#[derive(Debug)]
pub(crate) struct RouteMetrics {
    route: String,
    metrics: Arc<Metrics>,
    /// `[side][status]`: sides client, upstream; statuses plain_tcp, active,
    /// fell_back, unknown.
    conns: [[(IntCounter, IntGauge); 4]; 2],
    pub(crate) to_upstream: IntCounter,
    pub(crate) to_client: IntCounter,
    /// splice, copy, mixed.
    relay: [IntCounter; 3],
}

const STATUSES: [&str; 4] = ["plain_tcp", "active", "fell_back", "unknown"];

impl RouteMetrics {
    pub(crate) fn new(metrics: &Arc<Metrics>, route: &str) -> RouteMetrics {
        let conn = |side: &str, status: &str| {
            let labels = [route, side, status];
            (
                metrics.total.with_label_values(&labels),
                metrics.active.with_label_values(&labels),
            )
        };
        let relay = |mode: &str| metrics.relay.with_label_values(&[route, mode]);
        let bytes = |direction: &str| metrics.bytes.with_label_values(&[route, direction]);
        RouteMetrics {
            route: route.to_string(),
            metrics: Arc::clone(metrics),
            conns: [
                STATUSES.map(|s| conn("client", s)),
                STATUSES.map(|s| conn("upstream", s)),
            ],
            to_upstream: bytes("to_upstream"),
            to_client: bytes("to_client"),
            relay: [relay("splice"), relay("copy"), relay("mixed")],
        }
    }

    /// Counts a connection on `side` (0 client, 1 upstream) with this MPTCP
    /// status; returns its active gauge, already incremented.
    pub(crate) fn connection(&self, side: usize, status: Option<MptcpStatus>) -> IntGauge {
        let i = match status {
            Some(MptcpStatus::PlainTcp) => 0,
            Some(MptcpStatus::Active) => 1,
            Some(MptcpStatus::FellBack) => 2,
            _ => 3,
        };
        let (total, active) = &self.conns[side.min(1)][i];
        total.inc();
        active.inc();
        active.clone()
    }

    pub(crate) fn relay(&self, mode: RelayMode) {
        let i = match mode {
            RelayMode::Splice => 0,
            RelayMode::Copy => 1,
            _ => 2,
        };
        self.relay[i].inc();
    }

    /// A second dial after a SYN-loss fallback, by outcome. Rare: looked up by
    /// label each time.
    pub(crate) fn redial(&self, outcome: &str) {
        self.metrics
            .redials
            .with_label_values(&[&self.route, outcome])
            .inc();
    }

    /// A Convert exchange made again on a new connection (gateway client
    /// roles). Rare: looked up by label each time.
    pub(crate) fn converter_retry(&self, reason: &str) {
        self.metrics
            .converter_retries
            .with_label_values(&[&self.route, reason])
            .inc();
    }

    /// A second copy of a Convert message dropped (converter). Rare.
    pub(crate) fn convert_duplicate(&self) {
        self.metrics
            .convert_duplicates
            .with_label_values(&[&self.route])
            .inc();
    }

    /// Errors are rare: looked up by label each time.
    pub(crate) fn error(&self, kind: &str) {
        self.metrics.error(&self.route, kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_series_exists_from_the_start() {
        let m = Arc::new(Metrics::new());
        let r = RouteMetrics::new(&m, "r");
        r.error("connect_refused");
        let text = m.encode();
        for line in [
            "mptcp_proxy_errors_total{kind=\"connect_refused\",route=\"r\"} 1",
            "mptcp_proxy_connections_total{mptcp=\"active\",route=\"r\",side=\"client\"} 0",
            "mptcp_proxy_bytes_total{direction=\"to_client\",route=\"r\"} 0",
            "mptcp_proxy_relay_total{mode=\"splice\",route=\"r\"} 0",
            "# TYPE mptcp_proxy_connections_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
        }
    }
}
