//! Snapshots to the Prometheus text format: pure, no I/O.
//!
//! The metrics (every one carries `netns="NAME"` when several namespaces are
//! exported):
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `mptcp_mib_*_total` | counter | one per `MPTcpExt` counter, see [`crate::mib`] |
//! | `mptcp_mib_mp_curr_estab` | gauge | connections established now (kernel) |
//! | `mptcp_connections` | gauge | `state`, `fallback` (`true`/`false`); listeners left out |
//! | `mptcp_listeners` | gauge | |
//! | `mptcp_connection_subflows` | histogram | subflows per live connection, at scrape time |
//! | `mptcp_connections_sent_bytes`, `mptcp_connections_received_bytes` | gauge | summed over live connections (Linux 6.5+) |
//! | `mptcp_endpoint` | gauge (1) | `id`, `address`, `port`, `interface`, and one `true`/`false` label per flag |
//! | `mptcp_endpoints` | gauge | how many endpoints |
//! | `mptcp_limit_subflows`, `mptcp_limit_add_addr_accepted` | gauge | |
//! | `mptcp_sysctl_info` | gauge (1) | `enabled`, `path_manager`, `pm_type`, `scheduler`, `checksum_enabled`, `blackhole_timeout` |
//! | `mptcp_collector_success` | gauge | `collector`: 1 when that part was read, else 0 |
//!
//! `mptcp_connection_subflows` is a histogram of the connections alive at scrape time,
//! not an accumulation: read it without `rate()` (its buckets go down when connections
//! close).

use std::collections::HashMap;

use mptcp_metrics::prometheus::core::Collector;
use mptcp_metrics::prometheus::proto::MetricFamily;
use mptcp_metrics::prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};
use mptcp_netlink::EndpointFlags;

use mptcp_netlink::mib::CounterKind;

use crate::mib;
use crate::snapshot::{Snapshot, SYSCTLS};

/// The content type of [`render`]'s text.
pub use mptcp_metrics::CONTENT_TYPE;

/// The buckets of `mptcp_connection_subflows` (the kernel allows at most 8 extra subflows).
const SUBFLOW_BUCKETS: [f64; 8] = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0];

/// The endpoint flags that get a label each.
const FLAG_LABELS: [(&str, EndpointFlags); 6] = [
    ("signal", EndpointFlags::SIGNAL),
    ("subflow", EndpointFlags::SUBFLOW),
    ("backup", EndpointFlags::BACKUP),
    ("fullmesh", EndpointFlags::FULLMESH),
    ("implicit", EndpointFlags::IMPLICIT),
    ("laminar", EndpointFlags::LAMINAR),
];

/// An error building the text (a metric the encoder refuses: a bug, not bad input).
#[derive(Debug)]
pub struct RenderError(String);

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot encode the metrics: {}", self.0)
    }
}

impl std::error::Error for RenderError {}

impl From<mptcp_metrics::Error> for RenderError {
    fn from(e: mptcp_metrics::Error) -> Self {
        RenderError(e.to_string())
    }
}

/// The metrics of `snapshots`, in the Prometheus text format (0.0.4). Each snapshot
/// comes with its namespace's name, which becomes the `netns` label when there is
/// more than one snapshot.
pub fn render(snapshots: &[(&str, &Snapshot)]) -> Result<String, RenderError> {
    let labelled = snapshots.len() > 1;
    let mut m = Metrics::new(labelled)?;
    for (netns, snap) in snapshots {
        let ns: Vec<&str> = if labelled { vec![netns] } else { vec![] };
        m.add(&ns, snap);
    }
    m.encode()
}

/// The metric vectors of one scrape.
struct Metrics {
    base: Vec<&'static str>,
    /// MIB counters, in the order first seen.
    mib: Vec<MibVec>,
    mib_index: HashMap<String, usize>,
    connections: IntGaugeVec,
    listeners: IntGaugeVec,
    subflows: HistogramVec,
    sent: IntGaugeVec,
    received: IntGaugeVec,
    endpoint: IntGaugeVec,
    endpoints: IntGaugeVec,
    limit_subflows: IntGaugeVec,
    limit_add_addr: IntGaugeVec,
    sysctl_info: IntGaugeVec,
    success: IntGaugeVec,
}

enum MibVec {
    Counter(IntCounterVec),
    Gauge(IntGaugeVec),
}

fn labels(base: &[&'static str], more: &[&'static str]) -> Vec<&'static str> {
    base.iter().chain(more).copied().collect()
}

fn gauge(
    base: &[&'static str],
    name: &str,
    help: &str,
    more: &[&'static str],
) -> Result<IntGaugeVec, RenderError> {
    Ok(IntGaugeVec::new(
        Opts::new(name, help),
        &labels(base, more),
    )?)
}

/// `v` as a gauge value (saturating).
fn int(v: impl TryInto<i64>) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

impl Metrics {
    fn new(labelled: bool) -> Result<Metrics, RenderError> {
        let base: Vec<&'static str> = if labelled { vec!["netns"] } else { vec![] };
        let b = &base;
        let mut flag_labels = vec!["id", "address", "port", "interface"];
        flag_labels.extend(FLAG_LABELS.iter().map(|(n, _)| *n));
        Ok(Metrics {
            mib: Vec::new(),
            mib_index: HashMap::new(),
            connections: gauge(b, "mptcp_connections", "MPTCP connections by state and fallback to TCP (listeners left out).", &["state", "fallback"])?,
            listeners: gauge(b, "mptcp_listeners", "MPTCP listening sockets.", &[])?,
            subflows: HistogramVec::new(
                HistogramOpts::new("mptcp_connection_subflows", "Subflows per MPTCP connection alive at scrape time.")
                    .buckets(SUBFLOW_BUCKETS.to_vec()),
                b,
            )?,
            sent: gauge(b, "mptcp_connections_sent_bytes", "Bytes sent, summed over the MPTCP connections alive at scrape time (Linux 6.5+).", &[])?,
            received: gauge(b, "mptcp_connections_received_bytes", "Bytes received, summed over the MPTCP connections alive at scrape time (Linux 6.5+).", &[])?,
            endpoint: gauge(b, "mptcp_endpoint", "A path-manager endpoint (always 1), with its flags as labels.", &flag_labels)?,
            endpoints: gauge(b, "mptcp_endpoints", "Path-manager endpoints.", &[])?,
            limit_subflows: gauge(b, "mptcp_limit_subflows", "Path-manager limit: extra subflows per connection.", &[])?,
            limit_add_addr: gauge(b, "mptcp_limit_add_addr_accepted", "Path-manager limit: ADD_ADDR announcements accepted per connection.", &[])?,
            sysctl_info: gauge(b, "mptcp_sysctl_info", "The net.mptcp sysctls that matter, as labels (always 1).", &SYSCTLS)?,
            success: gauge(b, "mptcp_collector_success", "1 when this part of the scrape was read, 0 when it failed.", &["collector"])?,
            base,
        })
    }

    fn add(&mut self, ns: &[&str], snap: &Snapshot) {
        let with = |more: &[&str]| -> Vec<String> {
            ns.iter().chain(more).map(|s| s.to_string()).collect()
        };
        let ok = |r: bool| i64::from(r);
        for (collector, read) in [
            ("counters", snap.counters.is_ok()),
            ("connections", snap.connections.is_ok()),
            ("endpoints", snap.endpoints.is_ok()),
            ("limits", snap.limits.is_ok()),
            ("sysctls", snap.sysctls.is_ok()),
        ] {
            self.success
                .with_label_values(&with(&[collector]))
                .set(ok(read));
        }

        if let Ok(counters) = &snap.counters {
            for (name, value) in counters.iter() {
                match self.mib_vec(name) {
                    Some(MibVec::Counter(c)) => c.with_label_values(ns).inc_by(value),
                    Some(MibVec::Gauge(g)) => g.with_label_values(ns).set(int(value)),
                    None => {}
                }
            }
        }

        if let Ok(conns) = &snap.connections {
            for fallback in ["false", "true"] {
                self.connections
                    .with_label_values(&with(&["established", fallback]))
                    .set(0);
            }
            let (mut listeners, mut sent, mut received) = (0i64, 0u64, 0u64);
            let hist = self.subflows.with_label_values(ns);
            for c in conns {
                if c.is_listener() {
                    listeners += 1;
                    continue;
                }
                let fallback = if c.fallback() { "true" } else { "false" };
                self.connections
                    .with_label_values(&with(&[&c.state.name(), fallback]))
                    .inc();
                hist.observe(c.subflows.len() as f64);
                if let Some(info) = &c.info {
                    sent = sent.saturating_add(info.bytes_sent.unwrap_or(0));
                    received = received.saturating_add(info.bytes_received.unwrap_or(0));
                }
            }
            self.listeners.with_label_values(ns).set(listeners);
            self.sent.with_label_values(ns).set(int(sent));
            self.received.with_label_values(ns).set(int(received));
        }

        if let Ok(endpoints) = &snap.endpoints {
            self.endpoints
                .with_label_values(ns)
                .set(int(endpoints.len()));
            for e in endpoints {
                let id = e.id.to_string();
                let address = e.address.to_string();
                let port = e.port.map(|p| p.to_string()).unwrap_or_default();
                let interface = match (&e.interface, e.ifindex) {
                    (Some(name), _) => name.clone(),
                    (None, Some(index)) => format!("#{index}"),
                    (None, None) => String::new(),
                };
                let mut values: Vec<String> = ns.iter().map(|s| s.to_string()).collect();
                values.extend([id, address, port, interface]);
                values.extend(
                    FLAG_LABELS
                        .iter()
                        .map(|(_, f)| e.flags.contains(*f).to_string()),
                );
                self.endpoint.with_label_values(&values).set(1);
            }
        }

        if let Ok(limits) = &snap.limits {
            self.limit_subflows
                .with_label_values(ns)
                .set(int(limits.subflows));
            self.limit_add_addr
                .with_label_values(ns)
                .set(int(limits.add_addr_accepted));
        }

        if let Ok(sysctls) = &snap.sysctls {
            let mut values: Vec<String> = ns.iter().map(|s| s.to_string()).collect();
            values.extend(SYSCTLS.iter().map(|name| {
                sysctls
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            }));
            self.sysctl_info.with_label_values(&values).set(1);
        }
    }

    /// The vector of kernel counter `name`, made on first sight.
    fn mib_vec(&mut self, name: &str) -> Option<&MibVec> {
        if let Some(&i) = self.mib_index.get(name) {
            return self.mib.get(i);
        }
        let metric = mib::metric(name);
        let opts = Opts::new(metric.name, metric.help);
        let made = match metric.kind {
            CounterKind::Counter => IntCounterVec::new(opts, &self.base).map(MibVec::Counter),
            CounterKind::Gauge => IntGaugeVec::new(opts, &self.base).map(MibVec::Gauge),
        };
        match made {
            Ok(v) => {
                self.mib.push(v);
                self.mib_index.insert(name.to_string(), self.mib.len() - 1);
                self.mib.last()
            }
            Err(e) => {
                // A kernel name that makes no valid metric name: skip it, say so once per scrape.
                tracing::warn!("MPTcpExt {name:?} cannot be exported: {e}");
                None
            }
        }
    }

    fn encode(self) -> Result<String, RenderError> {
        let mut families: Vec<MetricFamily> = Vec::new();
        for v in &self.mib {
            match v {
                MibVec::Counter(c) => families.extend(c.collect()),
                MibVec::Gauge(g) => families.extend(g.collect()),
            }
        }
        for g in [&self.connections, &self.listeners] {
            families.extend(g.collect());
        }
        families.extend(self.subflows.collect());
        for g in [
            &self.sent,
            &self.received,
            &self.endpoint,
            &self.endpoints,
            &self.limit_subflows,
            &self.limit_add_addr,
            &self.sysctl_info,
            &self.success,
        ] {
            families.extend(g.collect());
        }
        // A part that could not be read has no samples: left out.
        Ok(mptcp_metrics::encode(&families)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mptcp_netlink::{Counters, Limits};

    fn snapshot(counters: &str) -> Snapshot {
        Snapshot {
            counters: Counters::parse(counters).map_err(|e| e.to_string()),
            connections: Ok(Vec::new()),
            endpoints: Ok(Vec::new()),
            limits: Ok(Limits {
                subflows: 4,
                add_addr_accepted: 2,
            }),
            sysctls: Ok(vec![
                ("enabled".into(), "1".into()),
                ("scheduler".into(), "default".into()),
            ]),
        }
    }

    #[test]
    fn one_namespace_has_no_netns_label() {
        let snap = snapshot("MPTcpExt: MPJoinAckRx MPCurrEstab NewThing\nMPTcpExt: 3 1 7\n");
        let text = render(&[("", &snap)]).unwrap();
        for line in [
            "# TYPE mptcp_mib_mp_join_ack_rx_total counter",
            "mptcp_mib_mp_join_ack_rx_total 3",
            "# HELP mptcp_mib_mp_join_ack_rx_total ACKs received with MP_JOIN (MPTcpExt MPJoinAckRx).",
            "# TYPE mptcp_mib_mp_curr_estab gauge",
            "mptcp_mib_mp_curr_estab 1",
            "# HELP mptcp_mib_new_thing_total MPTCP MIB counter (MPTcpExt NewThing).",
            "mptcp_mib_new_thing_total 7",
            "mptcp_connections{fallback=\"false\",state=\"established\"} 0",
            "mptcp_connection_subflows_count 0",
            "mptcp_endpoints 0",
            "mptcp_limit_subflows 4",
            "mptcp_limit_add_addr_accepted 2",
            "mptcp_collector_success{collector=\"limits\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
        }
        assert!(text.contains("mptcp_sysctl_info{blackhole_timeout=\"\",checksum_enabled=\"\",enabled=\"1\",path_manager=\"\",pm_type=\"\",scheduler=\"default\"} 1"), "{text}");
        assert!(!text.contains("netns"), "{text}");
        // No endpoint, so no mptcp_endpoint family (an empty family would not encode).
        assert!(!text.contains("mptcp_endpoint{"), "{text}");
    }

    #[test]
    fn several_namespaces_are_labelled_and_a_failed_part_is_left_out() {
        let a = snapshot("MPTcpExt: MPJoinAckRx\nMPTcpExt: 3\n");
        let b = Snapshot::failed("gone");
        let text = render(&[("blue", &a), ("red", &b)]).unwrap();
        assert!(
            text.contains("mptcp_mib_mp_join_ack_rx_total{netns=\"blue\"} 3"),
            "{text}"
        );
        assert!(
            !text.contains("mptcp_mib_mp_join_ack_rx_total{netns=\"red\"}"),
            "{text}"
        );
        assert!(
            text.contains("mptcp_collector_success{collector=\"counters\",netns=\"red\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("mptcp_collector_success{collector=\"counters\",netns=\"blue\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("mptcp_limit_subflows{netns=\"blue\"} 4"),
            "{text}"
        );
        assert!(
            !text.contains("mptcp_limit_subflows{netns=\"red\"}"),
            "{text}"
        );
    }

    #[test]
    fn nothing_read_still_renders() {
        let text = render(&[("", &Snapshot::failed("no MPTCP"))]).unwrap();
        assert!(
            text.contains("mptcp_collector_success{collector=\"connections\"} 0"),
            "{text}"
        );
        assert!(!text.contains("mptcp_mib_"), "{text}");
    }
}
