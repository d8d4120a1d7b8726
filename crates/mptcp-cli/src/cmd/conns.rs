//! `mptcp conns [--watch]`: the namespace's MPTCP connections and their subflows,
//! from [`mptcp_netlink::connections`] (`sock_diag`, what `ss -M` reads).
//!
//! JSON: `{"time", "connections": [...]}` ([`Snapshot`]), one document, or one per
//! line with `--watch`. Bytes come from the connection's `mptcp_info` (Linux 6.5+;
//! absent before: a field without a value is left out). Listening sockets are left
//! out unless `--all` (or `--state listen`).
//!
//! The filters (`--port`, `--local`, `--remote`, `--state`, `--fallback`, `--token`,
//! `--min-subflows`) are a [`Filter`]; addresses and ports match the connection's own
//! or any of its subflows', so `--local 198.18.1.1` finds the connections that have a
//! subflow from that address.
//!
//! With `--watch` on a terminal the screen is cleared before each refresh (ANSI
//! `ESC[H ESC[2J`); into a pipe each refresh is a new block, blank-line separated.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mptcp_netlink::{Connection, Subflow};
use serde::Serialize;

use crate::cli::ConnsArgs;
use crate::error::{Error, EXIT_OK};
use crate::output::{self, Cell, Output, Table, Timestamp, BAD, DIM, NAME};

/// How often a waiting `--watch` looks at the stop flag.
const TICK: Duration = Duration::from_millis(100);

/// One listing.
#[derive(Debug, Serialize)]
pub struct Snapshot {
    /// When it was taken (RFC 3339, UTC).
    pub time: String,
    /// The connections.
    pub connections: Vec<ConnectionJson>,
}

/// A connection in JSON.
#[derive(Debug, Serialize)]
pub struct ConnectionJson {
    /// The connection token (as in path-manager events); absent if unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<u32>,
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
    /// The MPTCP socket's state, snake_case (`established`, `listen`, ...).
    pub state: String,
    /// The connection fell back to plain TCP.
    pub fallback: bool,
    /// How many subflows are listed below.
    pub subflow_count: usize,
    /// Bytes sent (`mptcpi_bytes_sent`), absent before Linux 6.5.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_sent: Option<u64>,
    /// Bytes received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_received: Option<u64>,
    /// Bytes acknowledged by the peer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_acked: Option<u64>,
    /// Bytes retransmitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_retrans: Option<u64>,
    /// The subflows.
    pub subflows: Vec<SubflowJson>,
}

/// A subflow in JSON.
#[derive(Debug, Serialize)]
pub struct SubflowJson {
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
    /// TCP state, snake_case.
    pub state: String,
    /// Local address id (0: the initial subflow's address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_id: Option<u8>,
    /// Remote address id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<u8>,
    /// A backup subflow.
    pub backup: bool,
    /// Made by MP_JOIN (not the initial subflow).
    pub join: bool,
    /// The kernel's subflow flags (`mcap_loc`, `join_rem`, `fully_established`, ...).
    pub flags: Vec<String>,
}

impl From<&Subflow> for SubflowJson {
    fn from(s: &Subflow) -> Self {
        let flags = s.flags.to_string();
        SubflowJson {
            local: s.local,
            remote: s.remote,
            state: output::state_name(s.state),
            local_id: s.local_id,
            remote_id: s.remote_id,
            backup: s.flags.is_backup(),
            join: s.flags.is_join(),
            flags: flags
                .split(',')
                .filter(|f| !f.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }
}

/// The subflows, the initial one first, then by local address id.
fn ordered(c: &Connection) -> Vec<&Subflow> {
    let mut subflows: Vec<&Subflow> = c.subflows.iter().collect();
    subflows.sort_by_key(|s| (s.flags.is_join(), s.local_id, s.local));
    subflows
}

/// The token, for a connection (a listener's is meaningless).
fn token_of(c: &Connection) -> Option<u32> {
    c.token.filter(|_| !c.is_listener())
}

impl From<&Connection> for ConnectionJson {
    fn from(c: &Connection) -> Self {
        let info = c.info.as_ref();
        ConnectionJson {
            token: token_of(c),
            local: c.local,
            remote: c.remote,
            state: output::state_name(c.state),
            fallback: c.fallback(),
            subflow_count: c.subflows.len(),
            bytes_sent: info.and_then(|i| i.bytes_sent),
            bytes_received: info.and_then(|i| i.bytes_received),
            bytes_acked: info.and_then(|i| i.bytes_acked),
            bytes_retrans: info.and_then(|i| i.bytes_retrans),
            subflows: ordered(c).into_iter().map(SubflowJson::from).collect(),
        }
    }
}

/// Lists the connections, once or with `--watch`.
pub fn run(args: &ConnsArgs, out: &Output) -> Result<u8, Error> {
    let filter = Filter::from(args);
    if !args.watch {
        let (time, conns) = snapshot(&filter)?;
        print(&time, &conns, false, out)?;
        return Ok(EXIT_OK);
    }
    let stop = super::stop_flag()?;
    let mut shown = 0u64;
    loop {
        let (time, conns) = snapshot(&filter)?;
        if out.json {
            print(&time, &conns, true, out)?;
        } else {
            let mut text = String::new();
            if out.is_terminal() {
                text.push_str("\x1b[H\x1b[2J");
            } else if shown > 0 {
                text.push('\n');
            }
            let every = format!(
                "{} UTC, every {:?} (Ctrl-C to stop)",
                time.clock, args.interval
            );
            text.push_str(&out.paint(DIM, &every));
            text.push('\n');
            text.push_str(&render(&conns, out));
            out.print(&text)?;
        }
        shown += 1;
        if args.count.is_some_and(|n| shown >= n) {
            break;
        }
        let next = Instant::now() + args.interval;
        while Instant::now() < next && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(TICK.min(next.saturating_duration_since(Instant::now())));
        }
        if stop.load(Ordering::SeqCst) {
            break;
        }
    }
    Ok(EXIT_OK)
}

fn snapshot(filter: &Filter) -> Result<(Timestamp, Vec<Connection>), Error> {
    let time = Timestamp::now();
    let conns = mptcp_netlink::connections()?
        .into_iter()
        .filter(|c| filter.matches(c))
        .collect();
    Ok((time, conns))
}

/// An address to match, with or without a port (`--local`, `--remote`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrFilter {
    /// The address.
    pub ip: IpAddr,
    /// The port, when given.
    pub port: Option<u16>,
}

impl AddrFilter {
    /// `ADDR`, `ADDR:PORT`, `IPV6` or `[IPV6]:PORT` (a clap value parser).
    pub fn parse(s: &str) -> Result<AddrFilter, String> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(AddrFilter { ip, port: None });
        }
        match s.parse::<SocketAddr>() {
            Ok(a) if a.port() != 0 => Ok(AddrFilter {
                ip: a.ip(),
                port: Some(a.port()),
            }),
            Ok(_) => Err("the port must be 1-65535".into()),
            Err(_) => Err(
                "expected ADDR or ADDR:PORT, e.g. 198.18.0.1, 198.18.0.1:5201, [2001:db8::1]:5201"
                    .into(),
            ),
        }
    }

    fn matches(&self, a: &SocketAddr) -> bool {
        a.ip() == self.ip && self.port.is_none_or(|p| p == a.port())
    }
}

/// A connection token in hexadecimal, `0x` optional (a clap value parser).
pub fn token(s: &str) -> Result<u32, String> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if digits.is_empty() || digits.len() > 8 {
        return Err("a token is 1-8 hexadecimal digits, e.g. 0x1a2b3c4d".into());
    }
    u32::from_str_radix(digits, 16)
        .map_err(|_| "a token is 1-8 hexadecimal digits, e.g. 0x1a2b3c4d".into())
}

/// The states `--state` knows, as JSON writes them.
const STATES: [&str; 11] = [
    "established",
    "syn_sent",
    "syn_recv",
    "fin_wait1",
    "fin_wait2",
    "time_wait",
    "close",
    "close_wait",
    "last_ack",
    "listen",
    "closing",
];

/// A state name as JSON writes it, or as `ss` does (`ESTAB`, `syn-sent`, `FIN-WAIT-1`,
/// `UNCONN`), to the JSON spelling (a clap value parser).
pub fn state(s: &str) -> Result<String, String> {
    let name = s.to_ascii_lowercase().replace('-', "_");
    let name = match name.as_str() {
        "estab" => "established".to_string(),
        "unconn" => "close".to_string(),
        "fin_wait_1" => "fin_wait1".to_string(),
        "fin_wait_2" => "fin_wait2".to_string(),
        _ => name,
    };
    if STATES.contains(&name.as_str()) {
        Ok(name)
    } else {
        Err(format!("not a state; one of {}", STATES.join(", ")))
    }
}

/// What `conns` keeps.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Listeners too (`--all`, or `--state listen`).
    pub listeners: bool,
    /// A port on either side.
    pub port: Option<u16>,
    /// The local address.
    pub local: Option<AddrFilter>,
    /// The remote address.
    pub remote: Option<AddrFilter>,
    /// The state, JSON spelling.
    pub state: Option<String>,
    /// Only connections that fell back.
    pub fallback: bool,
    /// The token.
    pub token: Option<u32>,
    /// At least this many subflows.
    pub min_subflows: Option<u64>,
}

impl From<&ConnsArgs> for Filter {
    fn from(a: &ConnsArgs) -> Filter {
        Filter {
            listeners: a.all || a.state.as_deref() == Some("listen"),
            port: a.port,
            local: a.local,
            remote: a.remote,
            state: a.state.clone(),
            fallback: a.fallback,
            token: a.token,
            min_subflows: a.min_subflows,
        }
    }
}

impl Filter {
    /// Whether `c` is listed.
    pub fn matches(&self, c: &Connection) -> bool {
        let locals = || std::iter::once(&c.local).chain(c.subflows.iter().map(|s| &s.local));
        let remotes = || std::iter::once(&c.remote).chain(c.subflows.iter().map(|s| &s.remote));
        (self.listeners || !c.is_listener())
            && self
                .port
                .is_none_or(|p| locals().chain(remotes()).any(|a| a.port() == p))
            && self.local.is_none_or(|f| locals().any(|a| f.matches(a)))
            && self.remote.is_none_or(|f| remotes().any(|a| f.matches(a)))
            && self
                .state
                .as_ref()
                .is_none_or(|s| *s == output::state_name(c.state))
            && (!self.fallback || c.fallback())
            && self.token.is_none_or(|t| token_of(c) == Some(t))
            && self
                .min_subflows
                .is_none_or(|n| c.subflows.len() as u64 >= n)
    }
}

/// Prints one listing: JSON (one line when `stream`, else pretty) or a table.
fn print(time: &Timestamp, conns: &[Connection], stream: bool, out: &Output) -> Result<(), Error> {
    if out.json {
        let snapshot = Snapshot {
            time: time.rfc3339.clone(),
            connections: conns.iter().map(ConnectionJson::from).collect(),
        };
        return if stream {
            out.json_line(&snapshot)
        } else {
            out.json(&snapshot)
        };
    }
    out.print(&render(conns, out))
}

/// The connections as one table, each followed by its subflows (ids under
/// FALLBACK, initial/join/backup under SUBFLOWS).
fn render(conns: &[Connection], out: &Output) -> String {
    if conns.is_empty() {
        return "no MPTCP connections\n".into();
    }
    let bytes = |v: Option<u64>| v.map_or_else(|| "-".to_string(), output::bytes);
    let mut t = Table::with_header(&[
        "TOKEN", "STATE", "LOCAL", "REMOTE", "FALLBACK", "SUBFLOWS", "SENT", "RECEIVED",
    ]);
    for c in conns {
        let info = c.info.as_ref();
        let mut row = vec![
            Cell::styled(token_of(c).map_or_else(|| "-".into(), output::token), NAME),
            output::state_short(c.state).into(),
            c.local.to_string().into(),
            c.remote.to_string().into(),
        ];
        if !c.is_listener() {
            row.extend([
                if c.fallback() {
                    Cell::styled("yes", BAD)
                } else {
                    "no".into()
                },
                c.subflows.len().to_string().into(),
                bytes(info.and_then(|i| i.bytes_sent)).into(),
                bytes(info.and_then(|i| i.bytes_received)).into(),
            ]);
        }
        t.row(row);
        for s in ordered(c) {
            let ids = match (s.local_id, s.remote_id) {
                (Some(l), Some(r)) => format!("id {l}/{r}"),
                _ => "-".to_string(),
            };
            let mut kind = vec![if s.flags.is_join() { "join" } else { "initial" }];
            if s.flags.is_backup() {
                kind.push("backup");
            }
            t.row(vec![
                Cell::styled("  `-", DIM),
                output::state_short(s.state).into(),
                s.local.to_string().into(),
                s.remote.to_string().into(),
                Cell::styled(ids, DIM),
                Cell::styled(kind.join(","), DIM),
            ]);
        }
    }
    t.render(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_values() {
        let f = AddrFilter::parse("198.18.0.1").unwrap();
        assert_eq!((f.ip.to_string(), f.port), ("198.18.0.1".into(), None));
        let f = AddrFilter::parse("[2001:db8::1]:5201").unwrap();
        assert_eq!(
            (f.ip.to_string(), f.port),
            ("2001:db8::1".into(), Some(5201))
        );
        assert_eq!(AddrFilter::parse("2001:db8::1").unwrap().port, None);
        assert!(f.matches(&"[2001:db8::1]:5201".parse().unwrap()));
        assert!(!f.matches(&"[2001:db8::1]:5202".parse().unwrap()));
        for bad in [
            "",
            "198.18.0.1:0",
            "198.18.0.1:x",
            "host:80",
            "2001:db8::1:80000",
        ] {
            assert!(AddrFilter::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(token("0x0a1b2c3d").unwrap(), 0x0a1b_2c3d);
        assert_eq!(token("FF").unwrap(), 255);
        for bad in ["", "0x", "0x123456789", "g", "-1"] {
            assert!(token(bad).is_err(), "{bad}");
        }
        assert_eq!(state("ESTAB").unwrap(), "established");
        assert_eq!(state("syn-sent").unwrap(), "syn_sent");
        assert_eq!(state("FIN-WAIT-1").unwrap(), "fin_wait1");
        assert_eq!(state("listen").unwrap(), "listen");
        assert!(state("open").is_err());
    }
}
