//! `mptcp proxy --convert / --socks5 / --http-connect / --transparent`: the
//! multipath gateway roles, over [`mptcp_proxy::gateway`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::Args;
use mptcp_proxy::gateway::{Gateway, GatewayConfig, GatewayEnd, GatewayRecord, IpNet, Mode};
use mptcp_proxy::Metrics;
use serde::Serialize;

use super::ProxyArgs;
use crate::error::{Error, EXIT_OK};
use crate::output::{Output, BAD, DIM, GOOD, WARN};

/// The gateway's options of `mptcp proxy`.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Be an RFC 8803 Transport Converter on ADDR (MPTCP and TCP clients).
    #[arg(long, value_name = "ADDR", conflicts_with_all = ["listen", "to", "config"])]
    pub convert: Option<SocketAddr>,
    /// Converter: a client network it serves (CIDR or address; repeatable; required).
    #[arg(long, value_name = "CIDR", value_parser = cidr, requires = "convert")]
    pub allow: Vec<IpNet>,
    /// Converter: also connect to private (not globally reachable) destinations.
    #[arg(long, requires = "convert")]
    pub allow_private_destinations: bool,
    /// Serve SOCKS5 (RFC 1928 CONNECT) on ADDR.
    #[arg(long, value_name = "ADDR", conflicts_with_all = ["listen", "to", "config"])]
    pub socks5: Option<SocketAddr>,
    /// SOCKS5: require this username and password (RFC 1929), as USER:PASSWORD.
    #[arg(long, value_name = "USER:PASSWORD", value_parser = user_pass, requires = "socks5")]
    pub socks5_auth: Option<(String, String)>,
    /// Serve HTTP CONNECT on ADDR.
    #[arg(long, value_name = "ADDR", conflicts_with_all = ["listen", "to", "config"])]
    pub http_connect: Option<SocketAddr>,
    /// Take connections redirected by the firewall on ADDR (REDIRECT: the
    /// destination from SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST).
    #[arg(long, value_name = "ADDR", conflicts_with_all = ["listen", "to", "config"])]
    pub transparent: Option<SocketAddr>,
    /// The --transparent listener is a TPROXY target (IP_TRANSPARENT).
    #[arg(long, requires = "transparent")]
    pub tproxy: bool,
    /// Reach destinations through this RFC 8803 converter (over MPTCP) instead
    /// of dialing them directly.
    #[arg(long, value_name = "HOST:PORT", value_parser = super::upstream)]
    pub converter: Option<String>,
    /// TCP Fast Open: the gateway sends the Convert message in the SYN
    /// (TCP_FASTOPEN_CONNECT), the converter accepts it (TCP_FASTOPEN).
    /// Off by default: on Linux 6.18 such connections stall once a second
    /// subflow joins.
    #[arg(long)]
    pub fastopen: bool,
    /// Bound on reading a client's first message and the converter's answer (default 5s).
    #[arg(long, value_name = "DUR", value_parser = super::duration)]
    pub handshake_timeout: Option<Duration>,
}

impl GatewayArgs {
    /// Whether any gateway role is asked for.
    pub fn any(&self) -> bool {
        self.convert.is_some()
            || self.socks5.is_some()
            || self.http_connect.is_some()
            || self.transparent.is_some()
    }
}

fn cidr(s: &str) -> Result<IpNet, String> {
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    s.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{s:?} is not a CIDR (198.51.100.0/24, 2001:db8::/32) or an address"))
}

/// Splits USER:PASSWORD; their lengths are checked by `GatewayConfig::validate`.
fn user_pass(s: &str) -> Result<(String, String), String> {
    s.split_once(':')
        .map(|(u, p)| (u.to_string(), p.to_string()))
        .ok_or_else(|| "expected USER:PASSWORD".into())
}

#[derive(Serialize)]
struct Listening {
    r#type: &'static str,
    mode: Mode,
    listen: SocketAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    converter: Option<String>,
}

fn configs(args: &ProxyArgs) -> Result<Vec<GatewayConfig>, Error> {
    let g = &args.gateway;
    let mut out = Vec::new();
    let mut push = |listen: Option<SocketAddr>, mode: Mode| {
        let Some(listen) = listen else { return };
        let mut c = GatewayConfig::new(listen, mode).tcp_fastopen(g.fastopen);
        if mode == Mode::Convert {
            c = c
                .allow(g.allow.clone())
                .allow_private_destinations(g.allow_private_destinations);
        } else if let Some(conv) = &g.converter {
            c = c.converter(conv.clone());
        }
        if mode == Mode::Socks5 {
            if let Some((u, p)) = &g.socks5_auth {
                c = c.credentials(u.clone(), p.clone());
            }
        }
        if mode == Mode::Transparent {
            c = c.tproxy(g.tproxy);
        }
        if let Some(t) = g.handshake_timeout {
            c.handshake_timeout = t;
        }
        if let Some(t) = args.connect_timeout {
            c.connect_timeout = t;
        }
        if let Some(t) = args.idle_timeout {
            c.idle_timeout = (!t.is_zero()).then_some(t);
        }
        if let Some(n) = args.max_conns {
            c.max_conns = n as usize;
        }
        if let Some(d) = args.drain_timeout {
            c.drain_timeout = d;
        }
        if let Some(b) = args.notsent_lowat {
            c.notsent_lowat = (b > 0).then_some(b);
        }
        out.push(c);
    };
    push(g.convert, Mode::Convert);
    push(g.socks5, Mode::Socks5);
    push(g.http_connect, Mode::HttpConnect);
    push(g.transparent, Mode::Transparent);
    // What a role's settings must be is the library's to say, once.
    for c in &out {
        c.validate().map_err(Error::msg)?;
    }
    // Across roles: a --converter that no client role would use.
    if g.converter.is_some() && out.iter().all(|c| c.mode == Mode::Convert) {
        return Err(Error::msg(
            "--converter is for --socks5, --http-connect and --transparent",
        ));
    }
    Ok(out)
}

/// Runs the gateway listeners until SIGTERM or SIGINT.
pub fn run(args: &ProxyArgs, out: &Output) -> Result<u8, Error> {
    let configs = configs(args)?;
    if let Some(user) = &args.user {
        // Checked now, and the bounding set emptied before the runtime's threads
        // exist (it is per thread): once --user takes the capabilities away,
        // nothing the proxy runs can get one back.
        crate::privilege::check_user(user)?;
        crate::privilege::drop_bounding(rustix::thread::CapabilitySet::empty())?;
    }
    let mut rt = match args.threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n as usize);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let rt = rt
        .enable_all()
        .thread_name("mptcp-gateway")
        .build()
        .map_err(|e| Error::io("cannot start the runtime", e))?;
    let out = *out;
    rt.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (mut term, mut int) = signal(SignalKind::terminate())
            .and_then(|t| Ok((t, signal(SignalKind::interrupt())?)))
            .map_err(|e| Error::io("cannot handle SIGTERM/SIGINT", e))?;
        let metrics = Arc::new(Metrics::new());
        let mut gateways = Vec::new();
        for c in configs {
            let converter = c.converter.clone();
            let mode = c.mode;
            let mut g = Gateway::bind(c, Arc::clone(&metrics))
                .await
                .map_err(|e| Error::io(format!("cannot start --{}", flag(mode)), e))?;
            let line = Listening {
                r#type: "gateway_listening",
                mode,
                listen: g.local_addr(),
                converter,
            };
            if out.json {
                out.json_line(&line)?;
            } else {
                let via = line
                    .converter
                    .as_ref()
                    .map(|c| format!(" via converter {c}"))
                    .unwrap_or_default();
                out.print(&format!(
                    "{} listening on {}{via}\n",
                    mode.as_str(),
                    line.listen
                ))?;
            }
            if !args.no_connection_log {
                g.on_connection_end(move |r| {
                    // Gateway connections are fewer than relay routes see: one
                    // write per line is fine here.
                    if let Ok(text) = format_record(&out, SystemTime::now(), r) {
                        let _ = out.print(&text);
                    }
                });
            }
            gateways.push(g);
        }
        if let Some(addr) = args.metrics {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| Error::io(format!("metrics on {addr}"), e))?;
            tokio::spawn(mptcp_metrics::serve(l, metrics.registry().clone()));
        }
        if let Some(user) = &args.user {
            crate::privilege::become_user(user)?;
        }
        let stops: Vec<_> = gateways.iter().map(|g| g.shutdown_handle()).collect();
        let runs: Vec<_> = gateways
            .into_iter()
            .map(|g| tokio::spawn(g.run()))
            .collect();
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        tracing::info!("stopping: no new connections; draining");
        for s in &stops {
            s.shutdown();
        }
        let mut left = 0;
        for r in runs {
            left += r.await.unwrap_or(0);
        }
        if out.json {
            out.json_line(&serde_json::json!({"type": "stopped", "reset_at_deadline": left}))?;
        } else {
            out.print(&format!(
                "stopped ({left} connections reset at the drain deadline)\n"
            ))?;
        }
        Ok(EXIT_OK)
    })
}

fn flag(mode: Mode) -> &'static str {
    match mode {
        Mode::Convert => "convert",
        Mode::Socks5 => "socks5",
        Mode::HttpConnect => "http-connect",
        Mode::Transparent => "transparent",
    }
}

fn format_record(out: &Output, at: SystemTime, r: &GatewayRecord) -> Result<String, Error> {
    let (now, json) = super::record_line(out, "gateway_connection", at, r)?;
    if let Some(line) = json {
        return Ok(line);
    }
    let style = match r.end {
        GatewayEnd::Closed => GOOD,
        GatewayEnd::IdleTimeout => WARN,
        _ => BAD,
    };
    let end = serde_json::to_value(r.end)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut line = format!(
        "{} {} {} -> {} via {} up {} B down {} B {:.3}s {}",
        out.paint(DIM, &now.clock),
        r.mode.as_str(),
        r.client,
        r.destination.as_deref().unwrap_or("-"),
        r.upstream.map_or("-".to_string(), |u| u.to_string()),
        r.bytes_to_upstream,
        r.bytes_to_client,
        r.duration.as_secs_f64(),
        out.paint(style, &end),
    );
    if let Some(c) = r.convert_error {
        line.push_str(&format!(
            " convert error {}",
            mptcp_proxy::convert::ErrorCode(c)
        ));
    }
    if let Some(why) = r.converter_retry {
        line.push_str(&format!(" converter retried ({})", why.as_str()));
    }
    if r.convert_duplicate_dropped {
        line.push_str(" duplicate Convert message dropped");
    }
    if let Some(e) = &r.error {
        line.push_str(&format!(" ({e})"));
    }
    line.push('\n');
    Ok(line)
}
