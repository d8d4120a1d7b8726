//! A TCP <-> Multipath TCP relay for tokio: MPTCP in front of any TCP server, and
//! behind any TCP client.
//!
//! A [`Proxy`] listens on one or more [`Route`]s and relays each accepted
//! connection to the route's upstream `HOST:PORT`. The listen side is an
//! [`mptcp_net::ListenConfig`] listener (MPTCP, which takes plain TCP clients
//! too; or plain TCP with [`Route::listen_tcp`]), the dial side an
//! [`mptcp_net::Dialer`] (MPTCP first with mptcp-net's safe fallback, or plain TCP
//! with [`Route::to_tcp`]). Sides not forced to TCP follow mptcp-net's process
//! default, so `MPTCP_NET=0` turns MPTCP off for a whole proxy, as for any program
//! built on mptcp-net. So the same relay serves both roles:
//!
//! - on a server host, in front of a legacy TCP server: clients reach it with
//!   MPTCP, it relays over loopback TCP (`to_tcp`);
//! - on a client host, behind a legacy TCP client: the client connects to a local
//!   port (`listen_tcp`), the relay carries the bytes over MPTCP.
//!
//! ```no_run
//! # #[tokio::main]
//! # async fn main() -> std::io::Result<()> {
//! use mptcp_proxy::{Config, Proxy, ProxyProtocol, Route};
//!
//! let route = Route::new("[::]:8443".parse().unwrap(), "127.0.0.1:443")
//!     .to_tcp(true)
//!     .proxy_protocol(ProxyProtocol::V2);
//! let mut proxy = Proxy::bind(&Config::new(vec![route])).await?;
//! proxy.on_connection_end(|record| println!("{}", serde_json::to_string(record).unwrap()));
//! let stop = proxy.shutdown_handle();
//! tokio::spawn(async move {
//!     let _ = tokio::signal::ctrl_c().await;
//!     stop.shutdown(); // stop accepting, drain for up to `Config::drain_timeout`
//! });
//! proxy.run().await;
//! # Ok(()) }
//! ```
//!
//! # The relay
//!
//! Each direction is moved by `splice(2)` through a pipe (socket to pipe, pipe to
//! socket: the bytes never enter user space) where the kernel allows it on both
//! sockets, else by `read`/`write` through a fixed-size buffer. The choice is made
//! per connection and direction by **trying**: the first splice either works, or
//! fails with `EINVAL`/`EOPNOTSUPP`/`ENOSYS` before any byte is lost, and that
//! direction copies from then on (bytes already in the pipe are taken out and
//! written first). No kernel version is parsed. A pipe that cannot be made
//! (`EMFILE`) also means copying. Splicing starts only once a direction looks like
//! a bulk transfer, that is once one read fills the whole copy buffer (HAProxy's
//! `splice-auto` has the same idea): for requests and replies of a few KiB, two
//! `splice` calls through a pipe cost more than one `read` and one `write`.
//! [`RecordCore::relay`] and the `mptcp_proxy_relay_total{mode}` metric say which
//! was used; [`Route::force_copy`] turns splice off, for comparisons.
//!
//! Splice is used only between two plain TCP sockets; as soon as either side is an
//! MPTCP socket (fallen back or not) both directions copy. On Linux 6.18, bytes
//! spliced into an MPTCP socket were seen out of place when a subflow failed
//! mid-transfer (80 bytes of a 12 MB echo moved by 64 KiB, in about 1 run in 10 of
//! `tests/chain.rs`'s path-cut test under load), and a splice *from* an MPTCP socket
//! that had fallen back to TCP once returned end of stream at byte 407093 of a
//! 1 MiB reply the server had sent whole (the gateway's TPROXY test). Copying never
//! showed either, and on MPTCP legs it is as fast (table below), so nothing is lost.
//!
//! - **Half-close is carried**: when one direction reaches end of stream, the
//!   relay shuts down the write side of the other socket (`shutdown(SHUT_WR)`),
//!   and the other direction goes on until its own end of stream.
//! - **A reset is carried as a reset**: an error on either socket (`ECONNRESET`,
//!   `EPIPE`, a timeout) ends both directions, and both sockets are closed with
//!   `SO_LINGER` 0, so the peer on the other side gets a RST, never a clean FIN
//!   that would make a truncated transfer look complete. A failed dial resets the
//!   client for the same reason.
//! - **Idle timeout** ([`Route::idle_timeout`], default 5 minutes): a connection
//!   with no byte either way for that long is closed cleanly (FIN both ways).
//! - **Connect timeout** ([`Route::connect_timeout`], default 5 s): bounds the
//!   whole dial, name resolution included.
//!
//! # Limits and lifecycle
//!
//! - Past [`Route::max_conns`] the accept loop **waits** for a slot instead of
//!   accepting and closing: new clients queue in the listen backlog
//!   ([`Route::backlog`], default 4096) and nothing spins.
//! - Out of descriptors or socket memory (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`
//!   from `accept` or from a dial's `socket`), the accept loops pause until a
//!   connection closes or a backoff passes (10 ms doubling to 1 s): the pending
//!   clients stay in the backlog, so nothing spins on a listener that stays
//!   readable. One warning per burst of failures. During a burst, clients are
//!   taken one at a time, each dial waits (within the connect timeout) for a
//!   descriptor that a closing connection frees, and the pipe pool is emptied; a
//!   dial that nothing can help fails at once and resets its client. The
//!   details, and why, are in the `pressure` module.
//! - [`ShutdownHandle::shutdown`]: listeners close at once, connections finish for
//!   up to [`Config::drain_timeout`] (default 10 s), those left are reset.
//! - TCP keep-alive: accepted clients get mptcp-net's default (Go's 15 s, set once
//!   on the listener and inherited); upstream dials have none, which saves four
//!   `setsockopt` calls per connection (HAProxy, the connection-rate anchor, sets
//!   none either by default), and the idle timeout ends pairs whose peer vanished.
//!
//! # Memory per connection
//!
//! Bounded, and independent of the transfer's size. A direction moves bytes in
//! bursts: woken when its source is readable, it moves until the source has no
//! more, and only during a burst does it hold a pipe (splice) or a buffer (copy).
//!
//! - one tokio task holding both directions' state and the two sockets: an idle
//!   connection costs that and two descriptors, nothing more. Measured: with
//!   5,000 connections open at once, `mptcp proxy` had an RSS of 28 MB, runtime
//!   and metrics included, so under 6 KiB per connection (the
//!   `proxy_serves_5000_concurrent_connections` test prints it);
//! - a spliced direction in a burst holds one pipe (two descriptors, 64 KiB of
//!   kernel capacity, one chunk in flight). Pipes come from a process-wide pool
//!   and go back empty before the direction waits, so the number of pipes follows
//!   the number of busy directions, not of connections (HAProxy pools pipes the
//!   same way); at most 64 idle pipes are kept, and none once descriptors run out;
//! - a copied direction in a burst holds one buffer of [`Route::copy_buffer`]
//!   bytes (default 64 KiB): at most 2 x `copy_buffer` per connection;
//! - in the kernel, the sockets' own buffers, as for any TCP/MPTCP socket
//!   (bounded by `net.ipv4.tcp_rmem`/`tcp_wmem`).
//!
//! ## Splice or copy, measured
//!
//! On Linux 6.18, loopback, one bulk connection through `mptcp proxy --threads 1`
//! (`perf/proxy/splice_vs_copy.sh`, 5 rounds of 3 s, median [min-max], on a
//! shared, loaded 2-CPU host):
//!
//! | legs | mode | Mbit/s | proxy CPU-s per GB |
//! |---|---|---|---|
//! | MPTCP | splice | 3570 [2365-6539] | 0.61 [0.49-0.77] |
//! | MPTCP | copy | 5225 [4197-6537] | 0.71 [0.48-0.77] |
//! | TCP | splice | 13153 [7831-16364] | 0.29 [0.28-0.31] |
//! | TCP | copy | 11808 [11429-13876] | 0.42 [0.37-0.45] |
//!
//! Between TCP sockets splice is the clear win (a third less CPU per byte).
//! Between MPTCP sockets the kernel accepts splice, but it saves little or no CPU
//! and does not raise throughput: the ranges overlap, and the per-byte cost is
//! twice TCP's either way (these MPTCP rows predate the rule above, which now
//! copies there). Splice stays the default between TCP sockets;
//! [`Route::force_copy`] (`--no-splice`) is there to compare. Pipes keep the
//! kernel's default 64 KiB: 256 KiB pipes gained 10-15% on TCP legs in a trial, but every pipe counts against `fs.pipe-user-pages-soft`, past which the
//! kernel hands out 8 KiB pipes.
//!
//! # Visibility
//!
//! Every finished connection yields a [`ConnRecord`] (client, MPTCP status of both
//! sides, subflows, bytes each way, duration, relay mode, how it ended) given to
//! the [`Proxy::on_connection_end`] callback; [`Metrics`] holds Prometheus
//! counters, served on [`Config::metrics`] by the toolkit's one bounded `/metrics`
//! responder ([`mptcp_metrics::serve`]).
//!
//! # PROXY protocol
//!
//! With [`Route::proxy_protocol`], the upstream first receives a PROXY protocol
//! header (version 1 text or version 2 binary) naming the client's address; version
//! 2 adds a TLV saying whether the client's connection is MPTCP. The encoder is the
//! sans-I/O [`proxy_protocol`] module, which documents the TLV's layout.
//!
//! # Multipath gateway
//!
//! [`gateway`] serves connections whose destination is chosen per connection:
//! the RFC 8803 Transport Converter (`mptcp proxy --convert`), and its client
//! behind SOCKS5, HTTP CONNECT or a firewall redirect (`--socks5`,
//! `--http-connect`, `--transparent`, `--converter`). The wire formats are
//! sans-I/O modules tested on byte fixtures, by a fixed-seed fuzz run
//! (`tests/fuzz_parsers.rs`) and by libFuzzer (`fuzz/` at the repository
//! root): [`convert`] (RFC 8803), [`socks5`] (RFC 1928 and 1929),
//! [`http_connect`]. They are hand-written: each is a few dozen lines
//! over a bounded buffer, and the RFC 8803 one exists in no crate.
#![warn(missing_docs)]

mod config;
mod conn;
pub mod convert;
pub mod gateway;
pub mod http_connect;
pub mod metrics;
mod pressure;
mod proxy;
pub mod proxy_protocol;
mod relay;
mod session;
pub mod socks5;
mod sys;

pub use config::{
    check_upstream, parse_duration, Config, ConfigError, ProxyProtocol, Route, DEFAULT_BACKLOG,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_COPY_BUFFER, DEFAULT_DRAIN_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNS, MAX_CONNS_LIMIT, MAX_THREADS, MAX_TIMEOUT,
};
pub use conn::{ConnRecord, EndReason};
pub use metrics::Metrics;
pub use proxy::{Callback, Proxy};
pub use relay::{RelayMode, Side};
pub use session::{OnEnd, RecordCore, RunSummary, ShutdownHandle};
