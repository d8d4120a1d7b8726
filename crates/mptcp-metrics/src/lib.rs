//! One Prometheus metrics stack for the MPTCP toolkit: a [`Registry`] that a
//! program registers its counters and gauges in, the text exposition format, and
//! one bounded async `/metrics` responder ([`serve`]). `mptcp proxy`, its gateway
//! roles and `mptcp exporter` all serve through it, and so can any daemon:
//!
//! ```no_run
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:9850").await?;
//! let registry = mptcp_metrics::Registry::with_prefix("mptcp_lb");
//! let backends = registry.gauge_vec("backends", "Backends by state.", &["state"])?;
//! tokio::spawn(mptcp_metrics::serve(listener, registry.clone()));
//! backends.with_label_values(&["up"]).set(3);
//! # Ok(()) }
//! ```
//!
//! What a scrape sees, without the server:
//!
//! ```
//! use mptcp_metrics::Registry;
//!
//! let registry = Registry::with_prefix("mptcp_lb");
//! let joins = registry.counter_vec("joins_total", "MP_JOIN SYNs steered.", &["backend"])?;
//! joins.with_label_values(&["b1"]).inc_by(2);
//! let text = registry.render()?;
//! assert!(text.contains("# TYPE mptcp_lb_joins_total counter\n"));
//! assert!(text.contains("mptcp_lb_joins_total{backend=\"b1\"} 2\n"));
//! # Ok::<(), mptcp_metrics::Error>(())
//! ```
//!
//! A source that computes its metrics at scrape time (`mptcp exporter` reads the
//! kernel per scrape) implements [`Scrape`] instead of filling a registry; it may
//! block, since [`serve`] calls it on tokio's blocking pool.
//!
//! # Decisions
//!
//! - The `prometheus` crate (tikv/rust-prometheus) and the classic text format
//!   0.0.4 ([`CONTENT_TYPE`]), not `prometheus-client`: the latter writes only
//!   OpenMetrics text, whose counter families (`# TYPE x counter` with samples
//!   `x_total`) and `# EOF` line `promtool check metrics` of Prometheus 2.42
//!   (Debian 12) refuses. So a counter's name is written as it is sampled, with
//!   its `_total`, and labels come out sorted by name.
//! - The crate is re-exported as [`prometheus`], so users name the metric types
//!   of the one version this crate encodes.
//! - Families without samples are left out of the text: the encoder refuses them,
//!   and an empty family says nothing.
//! - The responder is a few dozen lines on tokio rather than an HTTP library: it
//!   answers one request shape (`GET` or `HEAD /metrics`, one request per
//!   connection), and every resource it spends is bounded by [`Limits`]: scrapes
//!   run at once, clients waiting for their request (past the bound the oldest is
//!   closed, so idle connections never stop a scrape), the request head's size
//!   (431 past it), and the time a client gets to send its request and to take
//!   the answer.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod http;
mod registry;

pub use http::{serve, serve_with, Limits};
pub use prometheus;
pub use registry::{encode, Registry, Scrape, ScrapeError, CONTENT_TYPE};

/// An error registering or encoding a metric (a name or label the format refuses,
/// a name registered twice): the program's mistake, not bad input.
pub type Error = prometheus::Error;
