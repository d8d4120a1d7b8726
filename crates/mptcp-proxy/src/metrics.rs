//! Prometheus metrics of a [`Proxy`](crate::Proxy), and a minimal `/metrics`
//! HTTP responder.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `mptcp_proxy_connections_active` | gauge | `route`, `side` (`client`/`upstream`), `mptcp` (`active`/`fell_back`/`plain_tcp`/`unknown`) |
//! | `mptcp_proxy_connections_total` | counter | same |
//! | `mptcp_proxy_bytes_total` | counter | `route`, `direction` (`to_upstream`/`to_client`) |
//! | `mptcp_proxy_errors_total` | counter | `route`, `kind` (see [`ErrorKind`](crate::EndReason::error_kind)) |
//! | `mptcp_proxy_relay_total` | counter | `route`, `mode` (`splice`/`copy`/`mixed`) |
//!
//! The responder answers `GET /metrics` (and `GET /`) with the OpenMetrics text
//! and anything else with 404, one request per connection. It is a few lines on
//! tokio rather than an HTTP library because it serves one fixed document to a
//! scraper; requests are bounded to 8 KiB and 5 seconds.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use mptcp_net::MptcpStatus;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::relay::RelayMode;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ConnLabels {
    pub(crate) route: String,
    pub(crate) side: String,
    pub(crate) mptcp: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct BytesLabels {
    pub(crate) route: String,
    pub(crate) direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ErrorLabels {
    pub(crate) route: String,
    pub(crate) kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RelayLabels {
    pub(crate) route: String,
    pub(crate) mode: String,
}

/// The proxy's metrics, in their own registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub(crate) active: Family<ConnLabels, Gauge>,
    pub(crate) total: Family<ConnLabels, Counter>,
    pub(crate) bytes: Family<BytesLabels, Counter>,
    pub(crate) errors: Family<ErrorLabels, Counter>,
    pub(crate) relay: Family<RelayLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty metrics, registered under the `mptcp_proxy` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mptcp_proxy");
        let active = Family::<ConnLabels, Gauge>::default();
        let total = Family::<ConnLabels, Counter>::default();
        let bytes = Family::<BytesLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let relay = Family::<RelayLabels, Counter>::default();
        registry.register(
            "connections_active",
            "Connections being relayed, by side and MPTCP status",
            active.clone(),
        );
        registry.register(
            "connections",
            "Connections accepted (client side) and established (upstream side), by MPTCP status",
            total.clone(),
        );
        registry.register("bytes", "Bytes relayed, by direction", bytes.clone());
        registry.register(
            "errors",
            "Connections that ended other than cleanly, and accept errors, by kind",
            errors.clone(),
        );
        registry.register(
            "relay",
            "Relayed connections by how their bytes moved",
            relay.clone(),
        );
        Metrics {
            registry,
            active,
            total,
            bytes,
            errors,
            relay,
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub(crate) fn error(&self, route: &str, kind: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                route: route.to_string(),
                kind: kind.to_string(),
            })
            .inc();
    }

    pub(crate) fn bytes_counter(&self, route: &str, direction: &str) -> Counter {
        self.bytes
            .get_or_create(&BytesLabels {
                route: route.to_string(),
                direction: direction.to_string(),
            })
            .clone()
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
    conns: [[(Counter, Gauge); 4]; 2],
    pub(crate) to_upstream: Counter,
    pub(crate) to_client: Counter,
    /// splice, copy, mixed.
    relay: [Counter; 3],
}

const STATUSES: [&str; 4] = ["plain_tcp", "active", "fell_back", "unknown"];

impl RouteMetrics {
    pub(crate) fn new(metrics: &Arc<Metrics>, route: &str) -> RouteMetrics {
        let conn = |side: &str, status: &str| {
            let labels = ConnLabels {
                route: route.to_string(),
                side: side.to_string(),
                mptcp: status.to_string(),
            };
            (
                metrics.total.get_or_create(&labels).clone(),
                metrics.active.get_or_create(&labels).clone(),
            )
        };
        let relay = |mode: &str| {
            metrics
                .relay
                .get_or_create(&RelayLabels {
                    route: route.to_string(),
                    mode: mode.to_string(),
                })
                .clone()
        };
        RouteMetrics {
            route: route.to_string(),
            metrics: Arc::clone(metrics),
            conns: [
                STATUSES.map(|s| conn("client", s)),
                STATUSES.map(|s| conn("upstream", s)),
            ],
            to_upstream: metrics.bytes_counter(route, "to_upstream"),
            to_client: metrics.bytes_counter(route, "to_client"),
            relay: [relay("splice"), relay("copy"), relay("mixed")],
        }
    }

    /// Counts a connection on `side` (0 client, 1 upstream) with this MPTCP
    /// status; returns its active gauge, already incremented.
    pub(crate) fn connection(&self, side: usize, status: Option<MptcpStatus>) -> Gauge {
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

    /// Errors are rare: looked up by label each time.
    pub(crate) fn error(&self, kind: &str) {
        self.metrics.error(&self.route, kind);
    }
}

/// Serves `metrics` on `listener` until the future is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let (mut stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("metrics accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let answer = tokio::time::timeout(Duration::from_secs(5), async {
                let head = read_head(&mut stream).await?;
                let response = respond(&head, &metrics);
                stream.write_all(&response).await?;
                stream.shutdown().await
            });
            if let Ok(Err(e)) = answer.await {
                tracing::debug!("metrics request: {e}");
            }
        });
    }
}

async fn read_head(stream: &mut tokio::net::TcpStream) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > 8192 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head over 8 KiB",
            ));
        }
    }
    Ok(head)
}

/// The HTTP/1.1 response to a request head.
fn respond(head: &[u8], metrics: &Metrics) -> Vec<u8> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let method = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or_default();
    let (status, content_type, body) = if method != b"GET" {
        (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_string(),
        )
    } else if path == b"/metrics" || path == b"/" {
        (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        )
    } else {
        ("404 Not Found", "text/plain", "try /metrics\n".to_string())
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses() {
        let m = Metrics::new();
        m.error("r", "connect_refused");
        let ok = String::from_utf8(respond(b"GET /metrics HTTP/1.1\r\n\r\n", &m)).unwrap();
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains("mptcp_proxy_errors_total{route=\"r\",kind=\"connect_refused\"} 1"),
            "{ok}"
        );
        assert!(ok.ends_with("# EOF\n"), "{ok}");
        let nf = String::from_utf8(respond(b"GET /x HTTP/1.1\r\n\r\n", &m)).unwrap();
        assert!(nf.starts_with("HTTP/1.1 404"), "{nf}");
        let bad = String::from_utf8(respond(b"\x00\xff", &m)).unwrap();
        assert!(bad.starts_with("HTTP/1.1 405"), "{bad}");
    }
}
