//! A multipath gateway: the RFC 8803 converter, and the client side that feeds
//! it from SOCKS5, HTTP CONNECT or transparently redirected connections.
//!
//! One [`Gateway`] serves one listener in one [`Mode`]:
//!
//! - [`Mode::Convert`] (`mptcp proxy --convert ADDR --allow CIDR`): the
//!   Transport Converter of RFC 8803. It accepts MPTCP and plain TCP, reads the
//!   client's Convert message (at most 1020 bytes, within the handshake
//!   timeout), checks the [`Policy`], dials the Connect TLV's destination, answers
//!   with its own Convert message and then relays as [`Proxy`](crate::Proxy) does.
//!   Refusals are Error TLVs with the RFC's codes (§4.2.8), after which the
//!   connection is closed: 32 Not Authorized (client outside `--allow`, or a
//!   destination the policy refuses), 0/1/2 for messages it cannot read, 33 for
//!   TCP options it will not forward, 96 Connection Reset (the destination
//!   refused), 97 Destination Unreachable (no answer, no route), 64 Resource
//!   Exceeded (out of descriptors), 65 Network Failure (any other dial error).
//! - [`Mode::Socks5`], [`Mode::HttpConnect`], [`Mode::Transparent`]: the client
//!   role. The destination comes from the SOCKS5 request (RFC 1928; no auth, or
//!   RFC 1929 username/password), the CONNECT line, or the socket itself
//!   (`SO_ORIGINAL_DST` / `IP6T_SO_ORIGINAL_DST` after a REDIRECT; the local
//!   address after a TPROXY, whose listener gets `IP_TRANSPARENT`). With a
//!   converter ([`GatewayConfig::converter`]) the gateway dials it over MPTCP and
//!   sends the Convert message right after the handshake, or in the SYN with
//!   [`GatewayConfig::tcp_fastopen`] (`TCP_FASTOPEN_CONNECT`: `connect` returns
//!   at once and the first write is the SYN's payload); it waits for the
//!   converter's answer and maps an Error TLV to a SOCKS5 reply code, an HTTP
//!   status, or (transparent) a reset. Without a converter it dials the
//!   destination itself over MPTCP.
//!
//! # Decisions where the RFC and the issue are silent
//!
//! - The client waits for the converter's answer before it tells a SOCKS5 or
//!   HTTP client that the tunnel is open: a refusal then reaches the client as a
//!   proper error instead of a tunnel that closes. The SYN still carries the
//!   Convert message, so the converter dials the server without waiting for a
//!   round trip of its own.
//! - SOCKS5 domain names are resolved by the gateway: the Connect TLV carries
//!   addresses only (§4.2.5).
//! - The converter answers an Info TLV with a Supported TCP Extensions TLV
//!   listing kind 30 (MPTCP): it relays over MPTCP on the client side. TCP
//!   options in the Connect TLV other than NOP/EOL padding are refused with 33
//!   (Unsupported TCP Option): it does not forward options to servers.
//! - "Private destinations" are the ranges RFC 6890 marks not globally
//!   reachable, the RFC 2544 benchmarking range 198.18.0.0/15 included; loopback,
//!   link-local, multicast and the converter's own addresses are refused even
//!   with `--allow-private-destinations`.
//! - TCP Fast Open is **opt-in** ([`GatewayConfig::tcp_fastopen`], `--fastopen`
//!   on both ends), though RFC 8803 is built around it. Measured on Linux 6.18
//!   (the chain of crates/mptcp-proxy/tests/gateway_net.rs, 4 transfers of 3 MiB
//!   through the converter on the 2-path test network): without TFO 0.8 s in all; with the
//!   Convert message in the SYN and a second subflow joining, 38 s, and some
//!   transfers stalled past curl's 20 s limit; with TFO and a single subflow,
//!   0.7 s. The kernel, not this crate: `perf/gateway/tfo_join_stall.py`
//!   reproduces it with two Python sockets (3 MiB per connection, two unshaped
//!   paths: 2 ms without TFO, 13-19 s with the data in the SYN and a joined
//!   subflow). A TFO connection saves one round trip, a stall costs seconds. The converter asks for TFO on its listener
//!   with the `TCP_FASTOPEN` socket option (queue 1024; the kernel also needs
//!   `net.ipv4.tcp_fastopen` bit 0x2), the gateway with `TCP_FASTOPEN_CONNECT`
//!   (bit 0x1, the default). Cookies are the kernel's.
//! - No `TCP_DEFER_ACCEPT` on the converter's listener, though its clients
//!   speak first and it would keep connect-and-reset storms out of `accept()`
//!   (measured: the converter's p99 under `perf/hostile/run.sh`'s attack fell
//!   2-3x in two runs). On Linux 6.18 it delays every MP_JOIN: the kernel drops
//!   a bare third ACK while the defer period runs, the third ACK of a join is
//!   one, and the join is taken only once the server's SYN-ACK retransmissions
//!   reach the defer count (7.2-7.4 s for 5 s, 1.1 s for 1 s;
//!   `perf/gateway/defer_accept_join.sh` reproduces it with two Python
//!   sockets). A converter exists for its MPTCP clients' extra subflows.
//!
//! # Connections lost before the converter's answer
//!
//! A client role that loses its converter connection before the converter's
//! answer (no answer within the handshake timeout, or the connection closed,
//! reset or failed a write) gives it up with a reset and makes the exchange once
//! more on a new connection. That is safe: until the answer, the gateway has
//! sent the Convert message and nothing of the client's, so the converter has at
//! most opened an empty connection to the server. The record's
//! [`GatewayRecord::converter_retry`] says why; `mptcp_proxy_converter_retries_total`
//! counts them. A refusal (an Error TLV) or an answer that is not a Convert
//! message is final. The case it is for: an MPTCP dial made as its path fails
//! can be left with no subflow before it is fully established (the kernel adds
//! subflows only to established connections), and with no answer.
//!
//! The same holds for a connection that was MPTCP when dialled and is plain TCP
//! when the answer comes: its third ACK and first data were lost, and the
//! server's kernel completed the handshake from a later segment without MPTCP
//! and fell back (mptcp-proxy's crate docs, "Connections that fall back after
//! the handshake"). Such a connection lives on one path and dies with it, so it
//! is replaced too, still before any byte of the client's (one `getsockopt`
//! after each answer; `fell_back` in the record and the counter). A connection
//! that fell back at its dial (its SYNs lost) had its second dial already.
//!
//! # Convert messages delivered twice
//!
//! On Linux 6.18 an MPTCP connection can fall back to TCP after its first data
//! was sent twice: once on the subflow, and once more by an MPTCP-level
//! retransmission, which plain TCP then takes for new data (the kernel's
//! `__mptcp_retrans`; upstream discussion: multipath-tcp/mptcp_net-next issue
//! 519). The converter then reads the client's Convert message twice, and a
//! 10-minute chaos soak saw the second copy passed on to the server as the
//! start of its stream. So on a connection that is not MPTCP (fell back, or
//! plain TCP), an exact copy of the Convert message that directly follows it,
//! already queued when the message has been read, is dropped
//! ([`GatewayRecord::convert_duplicate_dropped`],
//! `mptcp_proxy_convert_duplicates_total`). Anything else is passed on as sent:
//! a different message, part of one, or any bytes on an MPTCP connection, whose
//! data sequence numbers keep duplicates out. A client would have to ask the
//! converter to connect, then tell the server to connect to that same server,
//! to send such a copy itself. The client side of such a connection usually
//! cannot complete the fallback (the kernel counts `FallbackFailed`) and gets no
//! answer: the retry above serves it.
//!
//! # Not done yet
//!
//! Cookie TLV checks (the converter never asks for one), the Extended TCP Header
//! TLV (never sent; parsed), UDP, a config file for the gateway roles, PROXY
//! protocol on the converter's server side, a second-signal forced stop in the
//! CLI, and a benchmark against shadowsocks-rust (not installed on the build
//! host).
//! Transparent mode without a converter dials the original destination itself:
//! the firewall rule must then exclude the gateway's own traffic (an owner or
//! mark match), or the dial is redirected back into the gateway.

mod client;
mod converter;
pub mod policy;
mod sys;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mptcp_net::{Dialer, ListenConfig};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::metrics::{Metrics, RouteMetrics};
use crate::relay::{RelayError, Side};
use crate::session::{
    record_core, Dial, Front, OnEnd, Pipeline, Record, RecordCore, RelayEnd, RelaySettings, Shared,
    ShutdownHandle,
};
pub use ipnet::IpNet;
pub use policy::{Policy, Refusal};

/// Which job a [`Gateway`] does on its listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The RFC 8803 Transport Converter.
    Convert,
    /// A SOCKS5 server (CONNECT).
    Socks5,
    /// An HTTP CONNECT proxy.
    HttpConnect,
    /// Connections redirected by the firewall (REDIRECT, or TPROXY with [`GatewayConfig::tproxy`]).
    Transparent,
}

impl Mode {
    /// `convert`, `socks5`, `http_connect` or `transparent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Convert => "convert",
            Mode::Socks5 => "socks5",
            Mode::HttpConnect => "http_connect",
            Mode::Transparent => "transparent",
        }
    }
}

/// A [`Gateway`]'s settings.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct GatewayConfig {
    /// The listen address.
    pub listen: SocketAddr,
    /// The role.
    pub mode: Mode,
    /// Client roles: the converter `HOST:PORT`; `None` dials destinations directly.
    pub converter: Option<String>,
    /// SOCKS5: require this username and password (RFC 1929).
    pub credentials: Option<(String, String)>,
    /// Client roles: send the Convert message in the SYN (TCP Fast Open) when
    /// the socket accepts it. Convert: ask for TFO on the listener. Off by
    /// default (see the module docs: MPTCP TFO and joins on Linux 6.18).
    pub tcp_fastopen: bool,
    /// Transparent: a TPROXY listener (`IP_TRANSPARENT`; the destination is the
    /// accepted socket's local address).
    pub tproxy: bool,
    /// Convert: allowed client networks (required, non-empty).
    pub allow: Vec<IpNet>,
    /// Convert: allow private destinations.
    pub allow_private_destinations: bool,
    /// Bound on reading the client's first message (SOCKS5, CONNECT, Convert)
    /// and the converter's answer.
    pub handshake_timeout: Duration,
    /// Bound on dialing (name resolution included).
    pub connect_timeout: Duration,
    /// Close connections idle this long (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// Most connections at once; others wait in the backlog.
    pub max_conns: usize,
    /// How long connections may finish after shutdown.
    pub drain_timeout: Duration,
    /// `TCP_NOTSENT_LOWAT` of both sockets of a relayed connection (`None`: the
    /// kernel's default), as [`Route::notsent_lowat`](crate::Route::notsent_lowat).
    pub notsent_lowat: Option<u32>,
}

impl GatewayConfig {
    /// Defaults: TFO off, 5 s handshake and connect timeouts, 5 min idle,
    /// 10,000 connections, 10 s drain, 1 MiB unsent per socket.
    pub fn new(listen: SocketAddr, mode: Mode) -> GatewayConfig {
        GatewayConfig {
            listen,
            mode,
            converter: None,
            credentials: None,
            tcp_fastopen: false,
            tproxy: false,
            allow: Vec::new(),
            allow_private_destinations: false,
            handshake_timeout: Duration::from_secs(5),
            connect_timeout: crate::DEFAULT_CONNECT_TIMEOUT,
            idle_timeout: Some(crate::DEFAULT_IDLE_TIMEOUT),
            max_conns: 10_000,
            drain_timeout: crate::DEFAULT_DRAIN_TIMEOUT,
            notsent_lowat: Some(crate::DEFAULT_NOTSENT_LOWAT),
        }
    }

    /// Sets the converter (client roles).
    pub fn converter(mut self, hostport: impl Into<String>) -> Self {
        self.converter = Some(hostport.into());
        self
    }

    /// Sets the allowed client networks (convert).
    pub fn allow(mut self, nets: Vec<IpNet>) -> Self {
        self.allow = nets;
        self
    }

    /// Allows private destinations (convert).
    pub fn allow_private_destinations(mut self, on: bool) -> Self {
        self.allow_private_destinations = on;
        self
    }

    /// Requires RFC 1929 credentials (socks5).
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }

    /// Turns TCP Fast Open on or off.
    pub fn tcp_fastopen(mut self, on: bool) -> Self {
        self.tcp_fastopen = on;
        self
    }

    /// Marks a transparent listener as TPROXY.
    pub fn tproxy(mut self, on: bool) -> Self {
        self.tproxy = on;
        self
    }

    /// Checks that the settings fit the mode (what [`Gateway::bind`] checks
    /// first); the message names the command-line options.
    pub fn validate(&self) -> Result<(), String> {
        match self.mode {
            Mode::Convert => {
                if self.allow.is_empty() {
                    return Err(
                        "--convert needs --allow CIDR (the client networks it serves): \
                                a converter is not an open proxy"
                            .into(),
                    );
                }
                if self.converter.is_some() {
                    return Err("a converter does not chain to another converter".into());
                }
            }
            _ => {
                if !self.allow.is_empty() || self.allow_private_destinations {
                    return Err("--allow and --allow-private-destinations are for --convert".into());
                }
            }
        }
        if self.credentials.is_some() && self.mode != Mode::Socks5 {
            return Err("credentials are for --socks5".into());
        }
        if let Some((u, p)) = &self.credentials {
            if u.is_empty() || u.len() > 255 || p.is_empty() || p.len() > 255 {
                return Err("SOCKS5 username and password are 1 to 255 bytes (RFC 1929)".into());
            }
        }
        if self.tproxy && self.mode != Mode::Transparent {
            return Err("--tproxy is for --transparent".into());
        }
        if let Some(c) = &self.converter {
            crate::check_upstream(c)?;
        }
        if self.max_conns == 0 {
            return Err("max_conns must be at least 1".into());
        }
        Ok(())
    }
}

/// How a gateway connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GatewayEnd {
    /// Relayed, then both sides closed cleanly.
    Closed,
    /// The client's first message was not valid, or not in time.
    BadHandshake,
    /// The policy (or the converter) refused: not authorized.
    Refused,
    /// The destination (or the converter) could not be reached or refused.
    ConnectFailed,
    /// The relay ended with a reset or error on one side.
    Reset,
    /// Idle for the idle timeout.
    IdleTimeout,
    /// The gateway stopped before the connection finished.
    Shutdown,
}

/// What a [`Gateway`] records about each finished connection: the
/// [`RecordCore`] every front end fills (reached through `Deref`), and what the
/// gateway adds.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct GatewayRecord {
    /// The gateway's mode.
    pub mode: Mode,
    /// Where the client asked to go (an address, or a SOCKS5/CONNECT name:port).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// The sides (the upstream is the converter's address, or the
    /// destination's), bytes (application bytes, not the handshakes), time and
    /// relay mode.
    #[serde(flatten)]
    pub core: RecordCore,
    /// Client role with a converter: whether `TCP_FASTOPEN_CONNECT` was on for
    /// the dial (the Convert message then rides in the SYN when the kernel has a
    /// cookie, or does not need one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fastopen: Option<bool>,
    /// How it ended.
    pub end: GatewayEnd,
    /// The RFC 8803 error code sent (convert) or received (client roles).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub convert_error: Option<u8>,
    /// Client roles with a converter: why the first converter connection was
    /// given up before its answer and the exchange made again on a new one (see
    /// the [module docs](self), "Connections lost before the converter's
    /// answer"). The record's `end` says how the second went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub converter_retry: Option<ConverterRetry>,
    /// Converter: a second copy of the client's Convert message came right after
    /// the first on a plain TCP connection and was dropped (see the [module
    /// docs](self), "Convert messages delivered twice").
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub convert_duplicate_dropped: bool,
}

/// Why a gateway gave up a converter connection before the converter's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConverterRetry {
    /// No answer within the handshake timeout.
    NoAnswer,
    /// The connection closed, was reset, or failed a write before the answer.
    Lost,
    /// MPTCP when dialled, plain TCP by the time the answer came: the server
    /// completed the handshake without its last MPTCP packets and fell back, and
    /// a plain TCP connection lives on one path.
    FellBack,
}

impl ConverterRetry {
    /// The name used in records and in `mptcp_proxy_converter_retries_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConverterRetry::NoAnswer => "no_answer",
            ConverterRetry::Lost => "lost",
            ConverterRetry::FellBack => "fell_back",
        }
    }
}

record_core!(GatewayRecord);

impl GatewayRecord {
    fn fail(&mut self, end: GatewayEnd, error: impl Into<String>) {
        self.end = end;
        self.core.error = Some(error.into());
    }
}

impl Record for GatewayRecord {
    fn core(&mut self) -> &mut RecordCore {
        &mut self.core
    }

    fn relay_ended(&mut self, end: RelayEnd) {
        match end {
            RelayEnd::Done => self.end = GatewayEnd::Closed,
            RelayEnd::Idle => self.end = GatewayEnd::IdleTimeout,
            RelayEnd::Forced => self.end = GatewayEnd::Shutdown,
            RelayEnd::Failed(RelayError { side, error }) => {
                self.fail(GatewayEnd::Reset, format!("{}: {error}", side.as_str()));
            }
        }
    }

    fn error_kind(&self) -> Option<&'static str> {
        Some(match self.end {
            GatewayEnd::Closed => return None,
            GatewayEnd::BadHandshake => "bad_handshake",
            GatewayEnd::Refused => "refused",
            GatewayEnd::ConnectFailed => "connect_failed",
            GatewayEnd::Reset => "reset",
            GatewayEnd::IdleTimeout => "idle_timeout",
            GatewayEnd::Shutdown => "shutdown",
        })
    }
}

/// A function called with each finished connection's record.
pub type GatewayCallback = OnEnd<GatewayRecord>;

/// What every connection of a gateway shares.
pub(crate) struct Ctx {
    pub(crate) config: GatewayConfig,
    pub(crate) policy: Option<Policy>,
    pub(crate) local: SocketAddr,
    pub(crate) shared: Shared,
}

/// What a gateway role learned while reaching the upstream, for its greeting.
pub(crate) enum Pending {
    Convert(converter::Pending),
    Client(client::Pending),
}

impl Front for Ctx {
    type Record = GatewayRecord;
    type Pending = Pending;

    fn shared(&self) -> &Shared {
        &self.shared
    }

    fn record(&self, core: RecordCore) -> GatewayRecord {
        GatewayRecord {
            mode: self.config.mode,
            destination: None,
            core,
            fastopen: None,
            end: GatewayEnd::Closed,
            convert_error: None,
            converter_retry: None,
            convert_duplicate_dropped: false,
        }
    }

    async fn reach<'a>(
        &'a self,
        client: &'a mut TcpStream,
        dial: &'a Dial<'a>,
        record: &'a mut GatewayRecord,
    ) -> Option<(TcpStream, Pending)> {
        if self.config.mode == Mode::Convert {
            let (s, p) = converter::reach(self, client, dial, record).await?;
            Some((s, Pending::Convert(p)))
        } else {
            let (s, p) = client::reach(self, client, dial, record).await?;
            Some((s, Pending::Client(p)))
        }
    }

    async fn greet<'a>(
        &'a self,
        client: &'a mut TcpStream,
        upstream: &'a mut TcpStream,
        pending: Pending,
        record: &'a mut GatewayRecord,
    ) -> bool {
        match pending {
            Pending::Convert(p) => converter::greet(self, client, upstream, p, record).await,
            Pending::Client(p) => client::greet(self, client, upstream, p, record).await,
        }
    }

    fn stopped(&self, record: &mut GatewayRecord) {
        record.fail(GatewayEnd::Shutdown, "stopped before the relay began");
    }
}

/// Passes on bytes read with a handshake to `to`, counted as relayed bytes;
/// `false` (the record says why) if the write fails.
pub(crate) async fn pass_on(
    ctx: &Ctx,
    dst: &mut TcpStream,
    to: Side,
    bytes: &[u8],
    record: &mut GatewayRecord,
) -> bool {
    if bytes.is_empty() {
        return true;
    }
    if let Err(e) = dst.write_all(bytes).await {
        record.fail(GatewayEnd::Reset, format!("{}: {e}", to.as_str()));
        return false;
    }
    let n = bytes.len() as u64;
    let metrics = &ctx.shared.metrics;
    match to {
        Side::Upstream => {
            record.core.bytes_to_upstream += n;
            metrics.to_upstream.inc_by(n);
        }
        Side::Client => {
            record.core.bytes_to_client += n;
            metrics.to_client.inc_by(n);
        }
    }
    true
}

/// Stops a running [`Gateway`]: the same handle as the proxy's.
pub type GatewayShutdown = ShutdownHandle;

/// One listener in one [`Mode`]. See the [module docs](self).
pub struct Gateway {
    listener: TcpListener,
    ctx: Arc<Ctx>,
    metrics: Arc<Metrics>,
    pipeline: Pipeline,
    on_end: Option<GatewayCallback>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("mode", &self.ctx.config.mode)
            .field("local", &self.ctx.local)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Checks the configuration and binds the listener.
    pub async fn bind(config: GatewayConfig, metrics: Arc<Metrics>) -> io::Result<Gateway> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut lc = ListenConfig::new();
        lc.set_backlog(crate::DEFAULT_BACKLOG);
        match config.mode {
            // The converter takes MPTCP (and TCP) clients; TFO if the kernel allows.
            Mode::Convert if config.tcp_fastopen => {
                lc.set_socket_hook(|s| {
                    if let Err(e) = sys::set_fastopen_listener(s, 1024) {
                        tracing::debug!("TCP_FASTOPEN on the listener: {e}");
                    }
                    Ok(())
                });
            }
            Mode::Convert => {}
            // Local clients are plain TCP.
            _ => {
                lc.set_multipath_tcp(false);
                if config.tproxy {
                    let v6 = config.listen.is_ipv6();
                    lc.set_socket_hook(move |s| sys::set_transparent(s, v6));
                }
            }
        }
        let listener = lc
            .listen_async(config.listen)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("listen on {}: {e}", config.listen)))?;
        let local = listener.local_addr()?;
        let policy = (config.mode == Mode::Convert).then(|| {
            let mut own = policy::own_addresses();
            own.push(local.ip());
            Policy {
                allow: config.allow.clone(),
                allow_private_destinations: config.allow_private_destinations,
                own,
            }
        });
        let mut dialer = Dialer::new();
        dialer.set_timeout(Some(config.connect_timeout));
        // No keep-alive on upstream dials (four setsockopt calls per connection):
        // the idle timeout ends dead pairs, and accepted clients keep the
        // listener's keep-alive, which costs nothing per connection.
        dialer.set_keep_alive(None);
        if config.converter.is_some() && config.tcp_fastopen {
            // Errors are ignored: without TFO the message follows the handshake,
            // and MPTCP must not be given up for it (the hook's fallback).
            dialer.set_socket_hook(|s| {
                if let Err(e) = sys::set_fastopen_connect(s) {
                    tracing::debug!("TCP_FASTOPEN_CONNECT: {e}");
                }
                Ok(())
            });
        }
        let shared = Shared {
            name: config.mode.as_str().to_string(),
            dialer,
            connect_timeout: config.connect_timeout,
            metrics: RouteMetrics::new(&metrics, config.mode.as_str()),
            relay: RelaySettings {
                idle_timeout: config.idle_timeout,
                copy_buffer: crate::DEFAULT_COPY_BUFFER,
                bulk_buffer: crate::DEFAULT_BULK_BUFFER,
                try_splice: false,
                notsent_lowat: config.notsent_lowat,
            },
            max_conns: config.max_conns,
        };
        let pipeline = Pipeline::new(config.drain_timeout);
        Ok(Gateway {
            listener,
            ctx: Arc::new(Ctx {
                config,
                policy,
                local,
                shared,
            }),
            metrics,
            pipeline,
            on_end: None,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.ctx.local
    }

    /// The metrics this gateway counts into.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// A handle that stops the gateway.
    pub fn shutdown_handle(&self) -> GatewayShutdown {
        self.pipeline.shutdown_handle()
    }

    /// Calls `f` with every finished connection's record.
    pub fn on_connection_end(&mut self, f: impl Fn(&GatewayRecord) + Send + Sync + 'static) {
        self.on_end = Some(Arc::new(f));
    }

    /// Accepts and serves until stopped, then drains for up to the drain
    /// timeout and resets what is left. Returns the number of connections still
    /// open at the drain deadline.
    pub async fn run(self) -> usize {
        let accept = self
            .pipeline
            .listen(self.listener, self.ctx, self.on_end.clone());
        self.pipeline.run(vec![accept]).await.reset_at_deadline
    }
}
