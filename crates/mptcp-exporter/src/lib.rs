//! Prometheus metrics for Linux Multipath TCP, the library behind `mptcp exporter`.
//!
//! node_exporter's netstat collector drops the `MPTcpExt` counters unless its field
//! regex is changed, and nothing exports per-connection MPTCP state. This crate reads,
//! per network namespace and per scrape, one counters read
//! (`/proc/thread-self/net/netstat`), one `sock_diag` dump of the MPTCP sockets, one
//! endpoint dump and the limits over `mptcp_pm`, and the `net.mptcp` sysctls that
//! matter ([`Snapshot`]); [`render`] turns snapshots into the Prometheus text format;
//! [`Collector`] keeps one thread inside each namespace and is a
//! [`mptcp_metrics::Scrape`] source, so [`mptcp_metrics::serve`] answers `GET /metrics`
//! with it, as it does for the proxy's metrics.
//!
//! The metric names and labels are listed in [`render`]'s module docs.
//!
//! ```no_run
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // This process's namespace, or one thread per name in /run/netns.
//! let collector = mptcp_exporter::Collector::new(&[])?;
//! print!("{}", collector.scrape()?);
//! let listener = tokio::net::TcpListener::bind(mptcp_exporter::DEFAULT_LISTEN).await?;
//! mptcp_metrics::serve(listener, collector).await;
//! # Ok(()) }
//! ```
//!
//! Rendering is pure, so snapshots can be made up:
//!
//! ```
//! use mptcp_exporter::{render, Snapshot};
//!
//! let text = render(&[("", &Snapshot::failed("made up"))])?;
//! assert!(text.contains("mptcp_collector_success{collector=\"counters\"} 0"));
//! # Ok::<(), mptcp_exporter::RenderError>(())
//! ```
//!
//! # Decisions
//!
//! - Exposition through [`mptcp_metrics`] (the `prometheus` crate, text format 0.0.4;
//!   its docs say why not OpenMetrics), like every metric of the toolkit.
//! - Kernel counter names are made snake_case (`MPJoinAckRx` ->
//!   `mptcp_mib_mp_join_ack_rx_total`), as Prometheus naming wants; the help text ends
//!   with the kernel's own name so the two can be matched (`(MPTcpExt MPJoinAckRx)`).
//!   `MPCurrEstab`, a current value, is a gauge.
//! - `mptcp_sysctl_info` is an info metric in the classic convention (a gauge named
//!   `_info`, always 1, the values as labels, like node_exporter's `node_uname_info`):
//!   text format 0.0.4 has no `info` type.
//! - Per connection: state, fallback, subflow count and bytes come from the one
//!   `sock_diag` listing of [`mptcp_netlink::connections`]; no per-connection series
//!   (a token or a port as a label would grow without bound).
//! - A part that cannot be read (no `mptcp_pm` family, a namespace gone) leaves its
//!   metrics out of that scrape and sets `mptcp_collector_success{collector=...}` to 0;
//!   the scrape itself still succeeds.
//! - The responder and its bounds (scrapes at once, request size, timeouts) are
//!   [`mptcp_metrics::http`]'s; a scrape runs on tokio's blocking pool, since it waits
//!   for the namespaces' threads.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod collector;
pub mod mib;
mod render;
mod snapshot;

pub use collector::{Collector, StartError, NETNS_DIR, SCRAPE_TIMEOUT};
pub use render::{render, RenderError, CONTENT_TYPE};
pub use snapshot::{Snapshot, SYSCTLS};

/// The default listen address of `mptcp exporter`: loopback only, port 9849 (outside
/// the ports of node_exporter 9100, Prometheus 9090-9093 and the common exporters).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9849";
