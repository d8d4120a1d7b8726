//! `mptcp proxy`: a TCP <-> MPTCP relay, over [`mptcp_proxy`].
//!
//! One line per route when listening, one per finished connection, one when
//! stopped. JSON lines with `--json`: `{"type": "listening", "route", "listen",
//! "to", "metrics"}`, `{"type": "connection", "time", ...ConnRecord}` and
//! `{"type": "stopped", "reset_at_deadline"}`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use mptcp_proxy::{Config, ConnRecord, Proxy, ProxyProtocol, Route, DEFAULT_DRAIN_TIMEOUT};
use serde::Serialize;

use crate::error::{Error, EXIT_OK};
use crate::output::{Output, Timestamp, BAD, DIM, GOOD, WARN};

mod gateway;

pub const PROXY_HELP: &str = "\
Relays every connection accepted on --listen to --to. The listen side takes MPTCP
and plain TCP clients (--listen-tcp: TCP only); the dial side tries MPTCP and falls
back safely (--to-tcp: TCP only). Bytes are copied through a 64 KiB buffer, and a
bulk transfer through a 1 MiB one (--splice: splice(2) between plain TCP sockets);
half-closes and resets are carried to the other side.

Client host (legacy TCP client -> MPTCP):
  mptcp proxy --listen 127.0.0.1:8080 --listen-tcp --to server.example:8443
Server host (MPTCP -> legacy TCP server), client address in a PROXY v2 header:
  mptcp proxy --listen [::]:8443 --to 127.0.0.1:80 --to-tcp --proxy-protocol v2
Several routes, metrics:
  mptcp proxy --config /etc/mptcp-proxy.toml

Config file (TOML; unknown keys are refused):
  metrics = \"127.0.0.1:9100\"   # optional
  threads = 2                  # optional
  drain_timeout = \"10s\"
  [[route]]
  name = \"web\"                 # optional, default: the listen address
  listen = \"[::]:8443\"
  to = \"127.0.0.1:80\"
  listen_tcp = false
  to_tcp = true
  proxy_protocol = \"v2\"        # v1, v2 or none
  max_conns = 10000
  connect_timeout = \"5s\"
  idle_timeout = \"5m\"          # \"off\" for none
  bulk_buffer = 1048576         # bytes; 65536 or less: none
  notsent_lowat = 1048576       # bytes unsent per socket; 0: the kernel's default
  splice = false

Durations: 500ms, 5s, 2m, or a number of seconds. SIGTERM or Ctrl-C: stop accepting,
let connections finish for up to the drain timeout, then reset them; a second signal
resets them at once. The PROXY v2 header carries TLV 0xEC (1 byte: 0 plain TCP,
1 MPTCP, 2 MPTCP fell back) for the client's connection.

JSON lines: {\"type\": \"listening\", \"route\", \"listen\", \"to\", \"metrics\"},
{\"type\": \"connection\", \"time\", \"route\", \"client\", \"upstream\", \"client_mptcp\",
\"upstream_mptcp\" (active|fell_back|plain_tcp), \"upstream_redial\" (mptcp|fell_back|failed|
timed_out: the first dial fell back to TCP after losing its SYNs; what a second gave),
\"upstream_fell_back_later\" (true: MPTCP when dialled, plain TCP when the relay failed), \"client_subflows\",
\"upstream_subflows\", \"bytes_to_upstream\", \"bytes_to_client\", \"duration\" (seconds),
\"relay\" (splice|copy|mixed), \"end\" (closed|client_reset|upstream_reset|client_error|upstream_error|
idle_timeout|connect_timeout|connect_refused|connect_failed|shutdown), \"error\"},
{\"type\": \"stopped\", \"reset_at_deadline\"}. Absent fields had no value.

Multipath gateway (RFC 8803, 0-RTT TCP Convert Protocol):
  Converter (server side; not an open proxy: --allow is required):
    mptcp proxy --convert [::]:5124 --allow 192.0.2.0/24 [--allow-private-destinations]
  Gateway (router side): SOCKS5, HTTP CONNECT, or connections redirected by the firewall
  (iptables -t nat -A PREROUTING -p tcp -j REDIRECT --to-ports 1234), through the converter:
    mptcp proxy --socks5 127.0.0.1:1080 --http-connect 127.0.0.1:3128 \\
                --transparent [::]:1234 --converter converter.example:5124
  Without --converter, destinations are dialed directly over MPTCP. The Convert message
  follows the handshake; with --fastopen (on both ends) it rides in the SYN (TCP Fast
  Open; net.ipv4.tcp_fastopen bit 0x1 on the gateway, 0x2 on the converter). Off by
  default: on Linux 6.18 an MPTCP connection whose SYN carried data stalls once a
  second subflow joins.
  Gateway JSON lines: {\"type\": \"gateway_listening\", \"mode\", \"listen\"} and
  {\"type\": \"gateway_connection\", \"time\", \"mode\", \"client\", \"destination\",
  \"upstream\", \"client_mptcp\", \"upstream_mptcp\", \"fastopen\", \"bytes_to_upstream\",
  \"bytes_to_client\", \"duration\", \"relay\", \"end\" (closed|bad_handshake|refused|
  connect_failed|reset|idle_timeout|shutdown), \"convert_error\" (RFC 8803 code),
  \"converter_retry\" (no_answer|lost|fell_back: the first converter connection gave no
  answer, or fell back to TCP after its handshake, and the exchange was made again on a
  new one; nothing of the client's had been sent),
  \"convert_duplicate_dropped\" (converter: a second copy of the Convert message, which
  Linux can deliver on a connection that fell back to TCP, was dropped), \"error\"}.";

/// `mptcp proxy`.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Address to listen on (use the wildcard on a multipath server: joins to the
    /// host's other addresses need it).
    #[arg(long, value_name = "ADDR",
          required_unless_present_any = ["config", "convert", "socks5", "http_connect", "transparent"])]
    pub listen: Option<SocketAddr>,
    /// Where to relay: HOST:PORT (IPv6 in brackets), resolved per connection.
    #[arg(long, value_name = "HOST:PORT",
          required_unless_present_any = ["config", "convert", "socks5", "http_connect", "transparent"],
          value_parser = upstream)]
    pub to: Option<String>,
    /// Listen with plain TCP only.
    #[arg(long, conflicts_with = "config")]
    pub listen_tcp: bool,
    /// Dial the upstream with plain TCP only.
    #[arg(long, conflicts_with = "config")]
    pub to_tcp: bool,
    /// Send a PROXY protocol header to the upstream: v1 or v2.
    #[arg(long, value_name = "VERSION", value_parser = proxy_protocol, conflicts_with = "config")]
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Most connections at once; past it, new clients wait in the listen backlog.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..1_000_000_001),
          conflicts_with = "config")]
    pub max_conns: Option<u64>,
    /// Give up dialing the upstream after this long (default 5s).
    #[arg(long, value_name = "DUR", value_parser = duration, conflicts_with = "config")]
    pub connect_timeout: Option<Duration>,
    /// Close a connection idle for this long: no byte relayed and none of the
    /// written ones acknowledged (default 5m; 0 or off: never).
    #[arg(long, value_name = "DUR", value_parser = idle, conflicts_with = "config")]
    pub idle_timeout: Option<Duration>,
    /// Splice bulk transfers between two plain TCP sockets instead of copying
    /// them through the bulk buffer (never with MPTCP sockets).
    #[arg(long, conflicts_with = "config")]
    pub splice: bool,
    /// Accepted for older scripts: copying is the default now.
    #[arg(long, hide = true, conflicts_with_all = ["config", "splice"])]
    pub no_splice: bool,
    /// Bytes of the buffer a bulk transfer copies through (default 1048576;
    /// 65536 or less: no bulk buffer).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(0..=(64 << 20)),
          conflicts_with = "config")]
    pub bulk_buffer: Option<u64>,
    /// Most bytes each relayed socket holds written but not yet sent before the
    /// relay stops reading the other side (TCP_NOTSENT_LOWAT; default 1048576; 0:
    /// the kernel's default, the whole send buffer).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32),
          conflicts_with = "config")]
    pub notsent_lowat: Option<u32>,
    /// Serve Prometheus metrics on http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Once listening, run as this user (a name or a uid) with no capabilities:
    /// root is needed only to bind, enter a namespace or listen transparently.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Worker threads (default: one per CPU).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: Option<u64>,
    /// Print no line per connection (the metrics still count every one): for
    /// busy relays whose connections are watched through /metrics.
    #[arg(long)]
    pub no_connection_log: bool,
    /// How long connections may finish after SIGTERM/Ctrl-C (default 10s).
    #[arg(long, value_name = "DUR", value_parser = duration)]
    pub drain_timeout: Option<Duration>,
    /// Read the routes and settings from a TOML file instead.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["listen", "to"])]
    pub config: Option<PathBuf>,
    /// Multipath gateway roles (RFC 8803 converter, SOCKS5, HTTP CONNECT,
    /// transparent): see `mptcp proxy --help` and the gateway module.
    #[command(flatten)]
    pub gateway: Box<gateway::GatewayArgs>,
}

fn upstream(s: &str) -> Result<String, String> {
    mptcp_proxy::check_upstream(s).map(|()| s.to_string())
}

fn proxy_protocol(s: &str) -> Result<ProxyProtocol, String> {
    match s.parse()? {
        ProxyProtocol::None => Err("use v1 or v2 (leave the option out for none)".into()),
        v => Ok(v),
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    mptcp_net::duration::parse(s)
}

/// An idle timeout; zero (also written `off`) is none.
fn idle(s: &str) -> Result<Duration, String> {
    if s == "off" || s == "none" {
        return Ok(Duration::ZERO);
    }
    mptcp_net::duration::parse(s)
}

impl ProxyArgs {
    fn config(&self) -> Result<Config, Error> {
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
                Config::from_toml(&text)
                    .map_err(|e| Error::msg(format!("{}: {e}", path.display())))?
            }
            None => {
                // clap guarantees both with no --config.
                let (Some(listen), Some(to)) = (self.listen, self.to.clone()) else {
                    return Err(Error::msg(
                        "--listen and --to are required without --config",
                    ));
                };
                let mut route = Route::new(listen, to)
                    .listen_tcp(self.listen_tcp)
                    .to_tcp(self.to_tcp)
                    .proxy_protocol(self.proxy_protocol.unwrap_or_default())
                    .splice(self.splice);
                if let Some(b) = self.bulk_buffer {
                    route = route.bulk_buffer(b as usize);
                }
                if let Some(n) = self.max_conns {
                    route = route.max_conns(n as usize);
                }
                if let Some(t) = self.connect_timeout {
                    route = route.connect_timeout(t);
                }
                if let Some(t) = self.idle_timeout {
                    route = route.idle_timeout((!t.is_zero()).then_some(t));
                }
                if let Some(b) = self.notsent_lowat {
                    route = route.notsent_lowat(Some(b));
                }
                let mut c = Config::new(vec![route]);
                c.drain_timeout = DEFAULT_DRAIN_TIMEOUT;
                c
            }
        };
        if let Some(m) = self.metrics {
            config.metrics = Some(m);
        }
        if let Some(t) = self.threads {
            config.threads = Some(t as usize);
        }
        if let Some(d) = self.drain_timeout {
            config.drain_timeout = d;
        }
        Ok(config)
    }
}

#[derive(Serialize)]
struct Listening<'a> {
    r#type: &'static str,
    route: &'a str,
    listen: SocketAddr,
    to: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics: Option<SocketAddr>,
}

/// A finished connection as one JSON line: its kind, the time, then the record.
#[derive(Serialize)]
struct RecordLine<'a, R: Serialize> {
    r#type: &'static str,
    time: String,
    #[serde(flatten)]
    record: &'a R,
}

/// The time a record ended at, and (with `--json`) its JSON line with the newline.
fn record_line<R: Serialize>(
    out: &Output,
    kind: &'static str,
    at: SystemTime,
    record: &R,
) -> Result<(Timestamp, Option<String>), Error> {
    let ms = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let now = Timestamp::from_unix_millis(ms);
    if !out.json {
        return Ok((now, None));
    }
    let mut line = serde_json::to_string(&RecordLine {
        r#type: kind,
        time: now.rfc3339.clone(),
        record,
    })
    .map_err(|e| Error::msg(format!("cannot encode JSON: {e}")))?;
    line.push('\n');
    Ok((now, Some(line)))
}

#[derive(Serialize)]
struct Stopped {
    r#type: &'static str,
    reset_at_deadline: usize,
}

/// How often finished connections are printed.
const PRINT_EVERY: Duration = Duration::from_millis(50);

/// Finished connections waiting to be printed, at most; past it records are
/// dropped (and counted) rather than slowing the relay down on a stalled stdout.
const PRINT_QUEUE: usize = 4096;

/// Runs the proxy until SIGTERM or SIGINT.
pub fn run(args: &ProxyArgs, out: &Output) -> Result<u8, Error> {
    if args.gateway.any() {
        return gateway::run(args, out);
    }
    let config = args.config()?;
    if let Some(user) = &args.user {
        // Checked now, and the bounding set emptied before the runtime's threads
        // exist (it is per thread): once --user takes the capabilities away,
        // nothing the proxy runs can get one back.
        crate::privilege::check_user(user)?;
        crate::privilege::drop_bounding(rustix::thread::CapabilitySet::empty())?;
    }
    // One thread: everything on it, without a scheduler that steals work.
    let mut rt = match config.threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let rt = rt
        .enable_all()
        .thread_name("mptcp-proxy")
        .build()
        .map_err(|e| Error::io("cannot start the runtime", e))?;
    let out = *out;
    rt.block_on(async move {
        // Before the listening line: a SIGTERM right after it must drain, not kill.
        use tokio::signal::unix::{signal, SignalKind};
        let (mut term, mut int) = signal(SignalKind::terminate())
            .and_then(|t| Ok((t, signal(SignalKind::interrupt())?)))
            .map_err(|e| Error::io("cannot handle SIGTERM/SIGINT", e))?;
        let mut proxy = Proxy::bind(&config)
            .await
            .map_err(|e| Error::io("cannot start the proxy", e))?;
        if let Some(user) = &args.user {
            crate::privilege::become_user(user)?;
        }
        let upstreams: Vec<&str> = config.routes.iter().map(|r| r.upstream.as_str()).collect();
        for ((name, addr), to) in proxy.local_addrs().iter().zip(upstreams) {
            let line = Listening {
                r#type: "listening",
                route: name,
                listen: *addr,
                to,
                metrics: proxy.metrics_addr(),
            };
            if out.json {
                out.json_line(&line)?;
            } else {
                let metrics = proxy
                    .metrics_addr()
                    .map(|m| format!(", metrics on http://{m}/metrics"))
                    .unwrap_or_default();
                out.print(&format!(
                    "listening on {addr} -> {to} (route {name}){metrics}\n"
                ))?;
            }
        }

        let (tx, rx) = mpsc::sync_channel::<(SystemTime, ConnRecord)>(PRINT_QUEUE);
        let dropped = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let d = std::sync::Arc::clone(&dropped);
        if !args.no_connection_log {
            proxy.on_connection_end(move |record| {
                if tx.try_send((SystemTime::now(), record.clone())).is_err() {
                    d.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        } else {
            drop(tx);
        }
        // The printer wakes on its own every PRINT_EVERY and prints what came
        // meanwhile in one write, so a finished connection costs the relay
        // neither a thread wake-up nor a system call.
        let printer = thread::spawn(move || -> Result<(), Error> {
            loop {
                thread::sleep(PRINT_EVERY);
                let mut batch = String::new();
                let gone = loop {
                    match rx.try_recv() {
                        Ok((at, record)) => batch.push_str(&format_record(&out, at, &record)?),
                        Err(mpsc::TryRecvError::Empty) => break false,
                        Err(mpsc::TryRecvError::Disconnected) => break true,
                    }
                };
                if !batch.is_empty() {
                    out.print(&batch)?;
                }
                if gone {
                    return Ok(());
                }
            }
        });

        let stop = proxy.shutdown_handle();
        let signals = tokio::spawn(async move {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            tracing::info!("stopping: no new connections; draining");
            stop.shutdown();
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            tracing::warn!("second signal: resetting the remaining connections");
            stop.shutdown_now();
        });
        let summary = proxy.run().await;
        signals.abort();
        // The proxy (and with it the sender) is gone: the printer ends.
        let printed = printer
            .join()
            .map_err(|_| Error::msg("the output thread panicked"))?;
        printed?;
        let lost = dropped.load(std::sync::atomic::Ordering::Relaxed);
        if lost > 0 {
            tracing::warn!("{lost} connection lines were not printed (stdout too slow)");
        }
        if out.json {
            out.json_line(&Stopped {
                r#type: "stopped",
                reset_at_deadline: summary.reset_at_deadline,
            })?;
        } else {
            out.print(&format!(
                "stopped ({} connections reset at the drain deadline)\n",
                summary.reset_at_deadline
            ))?;
        }
        Ok(EXIT_OK)
    })
}

/// One line (with its newline) for a connection that ended at `at`.
fn format_record(out: &Output, at: SystemTime, r: &ConnRecord) -> Result<String, Error> {
    let (now, json) = record_line(out, "connection", at, r)?;
    if let Some(line) = json {
        return Ok(line);
    }
    let side = |status: Option<mptcp_net::MptcpStatus>, subflows: Option<u32>| match status {
        Some(s) if s.is_active() => format!("MPTCP/{}", subflows.unwrap_or(1)),
        Some(s) => s.as_str().to_string(),
        None => "-".to_string(),
    };
    let end_style = match r.end {
        mptcp_proxy::EndReason::Closed => GOOD,
        mptcp_proxy::EndReason::IdleTimeout => WARN,
        _ => BAD,
    };
    let upstream = r
        .upstream
        .map(|u| u.to_string())
        .unwrap_or_else(|| "-".into());
    let mut line = format!(
        "{} {} {} -> {} client {} upstream {} up {} B down {} B {:.3}s {} {}",
        out.paint(DIM, &now.clock),
        r.route,
        r.client,
        upstream,
        side(r.client_mptcp, r.client_subflows),
        side(r.upstream_mptcp, r.upstream_subflows),
        r.bytes_to_upstream,
        r.bytes_to_client,
        r.duration.as_secs_f64(),
        r.relay.map_or("-", |m| m.as_str()),
        out.paint(end_style, r.end.as_str()),
    );
    if let Some(redial) = r.upstream_redial {
        line.push_str(&format!(" redial {}", redial.as_str()));
    }
    if r.upstream_fell_back_later {
        line.push_str(" upstream fell back later");
    }
    if let Some(e) = &r.error {
        line.push_str(&format!(" ({e})"));
    }
    line.push('\n');
    Ok(line)
}
