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
//! Each direction is copied with `read`/`write` through a buffer: a
//! [`Route::copy_buffer`] (64 KiB) until one read fills it, then, for a bulk
//! transfer, a [`Route::bulk_buffer`] (1 MiB) for every burst after that. Fewer,
//! larger reads and writes matter most on MPTCP sockets, where each `recvmsg` and
//! `sendmsg` has a high fixed cost: the bulk buffer nearly doubled the throughput
//! of one MPTCP connection through the relay and cut its CPU per byte by 40%
//! (table below). Bulk buffers come from a process-wide budget of 64 MiB; past
//! it, a burst copies through its 64 KiB buffer, so memory stays bounded however
//! many bulk transfers run at once.
//!
//! [`Route::splice`] (`--splice`) moves bulk transfers between two **plain TCP**
//! sockets by `splice(2)` through a pipe instead (the choice is made by trying:
//! a splice refused with `EINVAL`/`EOPNOTSUPP`/`ENOSYS` before any byte moved
//! means copying from then on; a pipe that cannot be made, copying for that
//! burst). It is off by default: on Linux 6.18 the 1 MiB copy was faster and
//! cheaper than splice through 64 KiB pipes even between TCP sockets. As soon as
//! either side is an MPTCP socket (fallen back or not), both directions copy
//! whatever the setting: bytes spliced into an MPTCP socket were seen out of
//! place when a subflow failed mid-transfer (80 bytes of a 12 MB echo moved by
//! 64 KiB, in about 1 run in 10 of `tests/chain.rs`'s path-cut test under load),
//! and a splice *from* an MPTCP socket that had fallen back to TCP once returned
//! end of stream at byte 407093 of a 1 MiB reply the server had sent whole.
//! [`RecordCore::relay`] and the `mptcp_proxy_relay_total{mode}` metric say
//! which was used.
//!
//! - **Half-close is carried**: when one direction reaches end of stream, the
//!   relay shuts down the write side of the other socket (`shutdown(SHUT_WR)`),
//!   and the other direction goes on until its own end of stream. Towards an
//!   MPTCP peer, the end of stream waits until the peer has acknowledged every
//!   byte before it (looked at again when the pace of the acknowledgements says
//!   the last byte is in, 1-250 ms on; up to 1 s apart while none come; 120 s at
//!   most): the kernel refuses new subflows of a connection that has sent its
//!   DATA_FIN, so bytes written just before it over a path that then failed
//!   could never be repaired over another path. It costs the FIN a round trip.
//! - **A reset is carried as a reset**: an error on either socket (`ECONNRESET`,
//!   `EPIPE`, a timeout) ends both directions, and both sockets are closed with
//!   `SO_LINGER` 0, so the peer on the other side gets a RST, never a clean FIN
//!   that would make a truncated transfer look complete. A failed dial resets the
//!   client for the same reason.
//! - **Idle timeout** ([`Route::idle_timeout`], default 5 minutes): a connection
//!   with no byte either way for that long is closed cleanly (FIN both ways).
//!   Bytes the kernel still delivers from a send buffer count: a slow path can
//!   take tens of seconds to drain the megabytes the relay wrote at once, and the
//!   peer acknowledging them keeps the connection (read halfway through a quiet
//!   stretch and at its end, one `getsockopt` a socket each time).
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
//! # Dials that lost their SYNs
//!
//! When an MPTCP SYN and its first two retransmissions go unanswered, the kernel
//! sends the next SYN without MPTCP (`net.mptcp.syn_retrans_before_tcp_fallback`),
//! guessing that a middlebox drops MPTCP options. After an outage, or while the
//! local address was briefly gone, the guess is wrong, and the upstream connection
//! is plain TCP for its whole life: one path, lost with that path. So the relay
//! dials once more, to the same address, when an MPTCP dial fell back *and* had
//! retransmitted its SYN; the path has just answered, so that SYN is answered
//! within a few round trips, or on its one retransmission (the wait is four of
//! the first connection's round trips, 100 ms to 1 s, plus the kernel's 1 s first
//! SYN timeout). An MPTCP answer replaces the first connection, closed
//! before a byte was sent on it (the upstream sees one empty connection); plain
//! TCP again, an error or no answer keeps the first. A peer without MPTCP answers
//! the first SYN without it, so is never dialled twice. The record says
//! [`RecordCore::upstream_redial`]; `mptcp_proxy_redials_total{outcome}` counts
//! them. With the kernel's blackhole detection on (`net.mptcp.blackhole_timeout`,
//! default 3600 s), such a fallback whose first plain SYN is answered turns active
//! MPTCP off for the whole host; the second dial is then plain TCP too (outcome
//! `fell_back`), and `mptcp doctor` says so.
//!
//! # Connections that fall back after the handshake
//!
//! A dial can be MPTCP when it returns and plain TCP later. When the handshake's
//! last packets are lost (the third ACK and the first data, which carry the
//! MP_CAPABLE option; a path that goes dark just after the server's answer), the
//! server's kernel completes the connection from a later packet without it and
//! falls back to plain TCP (`MPCapableFallbackACK`), and the client's follows when
//! the server's first plain segment arrives (`MPCapableDataFallback`). The
//! connection is then on one path for life and fails with it (`perf/proxy/late_fallback.sh`:
//! the client's packets after its SYN lost for 1 s or 3 s, and both ends are plain
//! TCP). A relay that fails notes it: [`RecordCore::upstream_fell_back_later`]. (Linux 6.18 can also fail to
//! follow, `FallbackFailed`: the client goes on as MPTCP against a plain TCP
//! peer, re-sends at the MPTCP level what that peer already has, and the peer reads
//! those bytes twice; the chaos soak caught a Convert message read twice that way.)
//! A relay cannot undo either: the client's bytes flow at once. The gateway's
//! client roles can, since they send nothing of the client's before the
//! converter's answer: a converter connection that fell back by then is replaced
//! by a new one, and the converter drops a Convert message delivered twice
//! ([`gateway`], "Connections lost before the converter's answer" and "Convert
//! messages delivered twice").
//!
//! # Memory per connection
//!
//! Bounded, and independent of the transfer's size. A direction moves bytes in
//! bursts: woken when its source is readable, it moves until the source has no
//! more, and only during a burst does it hold a pipe (splice) or a buffer (copy).
//!
//! - one tokio task holding both directions' state and the two sockets: an idle
//!   connection costs that and two descriptors, nothing more, and no CPU: its
//!   idle-timeout watchdog sleeps until bytes move or the timeout needs a look
//!   (measured: 5,000 idle relayed connections, relay CPU 0.1 % of a core; 3.3 %
//!   when the watchdog woke once a second). Measured: with
//!   5,000 connections open at once, `mptcp proxy --threads 2` had an RSS of
//!   36 MB, runtime, metrics and the two threads' buffer pools (up to 4 MiB each)
//!   included, so about 7.3 KiB per connection (the
//!   `proxy_serves_5000_concurrent_connections` test prints it);
//! - a spliced direction in a burst holds one pipe (two descriptors, 64 KiB of
//!   kernel capacity, one chunk in flight). Pipes come from a process-wide pool
//!   and go back empty before the direction waits, so the number of pipes follows
//!   the number of busy directions, not of connections (HAProxy pools pipes the
//!   same way); at most 64 idle pipes are kept, and none once descriptors run out;
//! - a copied direction in a burst holds one buffer: [`Route::copy_buffer`]
//!   (64 KiB), or once it is a bulk transfer a [`Route::bulk_buffer`] (1 MiB)
//!   while the process-wide bulk budget (64 MiB) has room. Buffers come from a
//!   per-thread pool of at most 4 MiB, so a burst does not allocate and zero a
//!   new one (without the pool, zeroing 64 KiB per burst was 2% of the relay's
//!   CPU at 5,000 short connections a second);
//! - in the kernel, the sockets' own buffers, as for any TCP/MPTCP socket
//!   (bounded by `net.ipv4.tcp_rmem`/`tcp_wmem`).
//!
//! ## Bytes held in send buffers
//!
//! A send buffer grows to megabytes (`tcp_wmem`), and a socket whose buffer is full
//! is reported writable again only once a third of it is free. On a slow path (a
//! few hundred kbit/s for one of many connections on a cut or shared link) that is
//! tens of seconds during which the relay, its write blocked, reads nothing from
//! the other side: the sender's writes stop for as long while its bytes still
//! arrive, and the relay holds seconds of data that a failed path then has to
//! give back. So each relayed socket gets `TCP_NOTSENT_LOWAT`
//! ([`Route::notsent_lowat`], 1 MiB by default, `--notsent-lowat`): it counts
//! as writable while fewer bytes than that wait unsent (bytes sent and not yet
//! acknowledged are not limited), and the relay reads on as the path drains.
//! MPTCP sockets take it at the connection level where the kernel supports it
//! (6.18 does; one that refuses it leaves the relay as it was). `0` leaves the
//! kernel's default.
//!
//! The price is wakeups: the relay writes at most about half the limit per
//! wakeup. On loopback, one bulk connection (`perf/proxy/splice_vs_copy.sh`,
//! mode `nolowat` against the default), 1 MiB cost 0-7 % more CPU per GB than no
//! limit (MPTCP legs 0.64 against 0.60 CPU-s per GB, TCP 0.55 against 0.55), and
//! 256 KiB 24-33 % (0.80, 0.68), hence 1 MiB. In the chaos soak (`mptcp-testnet`;
//! 200 transfers over three paths the schedule cuts and slows) the longest time a
//! client's write blocked while its bytes still reached the far end went from
//! 143 s without the limit to 67 s with 256 KiB, and the longest stall from 54 s
//! to 33 s.
//!
//! ## Copy, bulk buffer or splice, measured
//!
//! On Linux 6.18, loopback, one bulk connection through `mptcp proxy --threads 1`
//! (`perf/proxy/splice_vs_copy.sh`, 5 rounds of 3 s, median [min-max], on the
//! shared 2-CPU development host; "copy64k" is `--bulk-buffer 0`, "splice" is
//! `--splice`, which copies like the default on MPTCP legs):
//!
//! | legs | mode | Mbit/s | proxy CPU-s per GB |
//! |---|---|---|---|
//! | MPTCP | direct (no relay) | 11196 [8703-12966] | - |
//! | MPTCP | copy (default) | 9062 [7874-10508] | 0.45 [0.44-0.52] |
//! | MPTCP | copy64k | 4988 [3562-6291] | 0.75 [0.72-0.81] |
//! | TCP | direct (no relay) | 21260 [14439-23976] | - |
//! | TCP | copy (default) | 18017 [14954-18858] | 0.27 [0.26-0.31] |
//! | TCP | splice | 14525 [13377-15143] | 0.33 [0.29-0.34] |
//! | TCP | copy64k | 13464 [12224-14691] | 0.41 [0.39-0.54] |
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
    check_upstream, Config, ConfigError, ProxyProtocol, Route, DEFAULT_BACKLOG,
    DEFAULT_BULK_BUFFER, DEFAULT_CONNECT_TIMEOUT, DEFAULT_COPY_BUFFER, DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNS, DEFAULT_NOTSENT_LOWAT, MAX_BUFFER, MAX_CONNS_LIMIT,
    MAX_THREADS, MAX_TIMEOUT,
};
pub use conn::{ConnRecord, EndReason};
pub use metrics::Metrics;
pub use proxy::{Callback, Proxy};
pub use relay::{RelayMode, Side};
pub use session::{OnEnd, RecordCore, Redial, RunSummary, ShutdownHandle};
