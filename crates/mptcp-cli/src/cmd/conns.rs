//! `mptcp conns [--watch]`: the namespace's MPTCP connections and their subflows,
//! from [`mptcp_netlink::connections`] (`sock_diag`, what `ss -M` reads).
//!
//! JSON: `{"time", "connections": [...]}` ([`Snapshot`]), one document, or one per
//! line with `--watch`. Bytes come from the connection's `mptcp_info` (Linux 6.5+;
//! absent before: a field without a value is left out). Listening sockets are left
//! out unless `--all` (or `--state listen`).
//!
//! The filters (`--port`, `--local`, `--remote`, `--state`, `--fallback`, `--token`,
//! `--min-subflows`) are a [`ConnectionFilter`]; addresses and ports match the connection's own
//! or any of its subflows', so `--local 198.18.1.1` finds the connections that have a
//! subflow from that address.
//!
//! With `--watch` on a terminal the screen is cleared before each refresh (ANSI
//! `ESC[H ESC[2J`); into a pipe each refresh is a new block, blank-line separated.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Args;
use mptcp_netlink::{Connection, ConnectionFilter, Subflow, TcpState};
use serde::Serialize;

use crate::args::seconds;
use crate::error::{Error, EXIT_OK};
use crate::output::{self, Cell, Output, Table, Timestamp, BAD, DIM, NAME};

pub const CONNS_HELP: &str = "\
Each connection (token, state, addresses, fallback, subflow count, bytes sent and
received), then its subflows (addresses, state, local/remote address ids, flags).
Bytes need Linux 6.5. Listeners are shown with --all.

Filters (all given must match): --port, --local and --remote match the connection's
own addresses or any of its subflows'; --state listen shows listeners without --all.

Examples:
  mptcp conns
  mptcp conns --watch --interval 0.5
  mptcp conns --remote 198.18.0.2:443 --min-subflows 2
  mptcp conns --fallback --json
  mptcp --netns blue conns --json | jq '.connections[] | .subflow_count'

JSON: {\"time\", \"connections\": [{\"token\", \"local\", \"remote\", \"state\", \"fallback\",
\"subflow_count\", \"bytes_sent\", \"bytes_received\", \"bytes_acked\", \"bytes_retrans\",
\"bytes_unacked\", \"path_manager\": {\"subflows\", \"subflows_max\", \"local_addr_used\",
\"local_addr_max\", \"add_addr_signal\", \"add_addr_signal_max\", \"add_addr_accepted\",
\"add_addr_accepted_max\"}, \"subflows\": [{\"local\", \"remote\", \"state\", \"local_id\", \"remote_id\", \"backup\", \"join\",
\"flags\": [...]}]}]}; with --watch one such document per line. States are snake_case
(established, syn_sent, listen, ...). A field without a value is left out: token for a
listener, bytes_* before Linux 6.5, bytes_unacked and path_manager after a fallback, local_id/remote_id when the kernel gave none.";

/// `mptcp conns`.
#[derive(Debug, Args)]
pub struct ConnsArgs {
    /// Refresh until Ctrl-C (in place on a terminal).
    #[arg(long, short)]
    pub watch: bool,
    /// Seconds between refreshes with --watch.
    #[arg(long, value_name = "SECONDS", default_value = "1", value_parser = seconds, requires = "watch")]
    pub interval: Duration,
    /// Stop after N refreshes with --watch.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), requires = "watch")]
    pub count: Option<u64>,
    /// Also list listening sockets.
    #[arg(long, short)]
    pub all: bool,
    /// Only connections with this port, local or remote (theirs or a subflow's).
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// Only connections with this local address, and port if given (theirs or a
    /// subflow's): `198.18.0.1`, `198.18.0.1:5201`, `2001:db8::1`, `[2001:db8::1]:5201`.
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = mptcp_netlink::AddrFilter::parse)]
    pub local: Option<mptcp_netlink::AddrFilter>,
    /// Only connections with this remote address, and port if given (as --local).
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = mptcp_netlink::AddrFilter::parse)]
    pub remote: Option<mptcp_netlink::AddrFilter>,
    /// Only connections in this state (established, syn_sent, fin_wait1, close_wait,
    /// listen, ...; `ss` spellings such as ESTAB or syn-sent too).
    #[arg(long, value_name = "STATE", value_parser = crate::cmd::conns::state)]
    pub state: Option<mptcp_netlink::TcpState>,
    /// Only connections that fell back to plain TCP.
    #[arg(long)]
    pub fallback: bool,
    /// Only the connection with this token (hex, `0x` optional).
    #[arg(long, value_name = "HEX", value_parser = crate::cmd::conns::token)]
    pub token: Option<u32>,
    /// Only connections with at least N subflows.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(0..=255))]
    pub min_subflows: Option<u64>,
}

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
    /// Bytes written and not yet acknowledged at the data level
    /// (`mptcpi_write_seq - mptcpi_snd_una`): a connection with bytes here and no
    /// subflow is stuck.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_unacked: Option<u64>,
    /// What the kernel's path manager has used of its limits on this connection:
    /// when it opens no more subflows, this says which limit it sees reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_manager: Option<PathManagerJson>,
    /// The subflows.
    pub subflows: Vec<SubflowJson>,
}

/// A connection's path-manager counters (`struct mptcp_info`), each with its limit.
#[derive(Debug, Serialize)]
pub struct PathManagerJson {
    /// Extra subflows counted against `subflows_max` (`mptcpi_subflows`).
    pub subflows: u8,
    /// The limit (`mptcpi_subflows_max`).
    pub subflows_max: u8,
    /// Local endpoints used for subflows (`mptcpi_local_addr_used`).
    pub local_addr_used: u8,
    /// The endpoints it may use (`mptcpi_local_addr_max`).
    pub local_addr_max: u8,
    /// Addresses it announced (`mptcpi_add_addr_signal`).
    pub add_addr_signal: u8,
    /// The limit (`mptcpi_add_addr_signal_max`).
    pub add_addr_signal_max: u8,
    /// Peer announcements it took (`mptcpi_add_addr_accepted`).
    pub add_addr_accepted: u8,
    /// The limit (`mptcpi_add_addr_accepted_max`).
    pub add_addr_accepted_max: u8,
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
            state: s.state.name().into_owned(),
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

impl From<&Connection> for ConnectionJson {
    fn from(c: &Connection) -> Self {
        let info = c.info.as_ref();
        ConnectionJson {
            token: c.connection_token(),
            local: c.local,
            remote: c.remote,
            state: c.state.name().into_owned(),
            fallback: c.fallback(),
            subflow_count: c.subflows.len(),
            bytes_sent: info.and_then(|i| i.bytes_sent),
            bytes_received: info.and_then(|i| i.bytes_received),
            bytes_acked: info.and_then(|i| i.bytes_acked),
            bytes_retrans: info.and_then(|i| i.bytes_retrans),
            bytes_unacked: info.filter(|_| !c.fallback()).map(|i| i.bytes_unacked()),
            path_manager: info.filter(|_| !c.fallback()).map(|i| PathManagerJson {
                subflows: i.subflows,
                subflows_max: i.subflows_max,
                local_addr_used: i.local_addr_used,
                local_addr_max: i.local_addr_max,
                add_addr_signal: i.add_addr_signal,
                add_addr_signal_max: i.add_addr_signal_max,
                add_addr_accepted: i.add_addr_accepted,
                add_addr_accepted_max: i.add_addr_accepted_max,
            }),
            subflows: ordered(c).into_iter().map(SubflowJson::from).collect(),
        }
    }
}

/// Lists the connections, once or with `--watch`.
pub fn run(args: &ConnsArgs, out: &Output) -> Result<u8, Error> {
    let filter = filter(args);
    if !args.watch {
        print(&snapshot(&filter)?, false, out)?;
        return Ok(EXIT_OK);
    }
    let stop = super::stop_flag()?;
    let mut shown = 0u64;
    loop {
        let listing = snapshot(&filter)?;
        if out.json {
            print(&listing, true, out)?;
        } else {
            let mut text = String::new();
            if out.is_terminal() {
                text.push_str("\x1b[H\x1b[2J");
            } else if shown > 0 {
                text.push('\n');
            }
            let every = format!(
                "{} UTC, every {:?} (Ctrl-C to stop)",
                listing.time.clock, args.interval
            );
            text.push_str(&out.paint(DIM, &every));
            text.push('\n');
            text.push_str(&render(&listing, out));
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

/// One listing: the connections `filter` keeps, and how many there were before
/// its conditions (listeners counted only when it keeps them).
struct Listing {
    time: Timestamp,
    kept: Vec<Connection>,
    before_filters: usize,
}

fn snapshot(filter: &ConnectionFilter) -> Result<Listing, Error> {
    let time = Timestamp::now();
    let unfiltered = ConnectionFilter {
        listeners: filter.listeners,
        ..ConnectionFilter::default()
    };
    let all = mptcp_netlink::connections()?;
    let before_filters = all.iter().filter(|c| unfiltered.matches(c)).count();
    let kept = all.into_iter().filter(|c| filter.matches(c)).collect();
    Ok(Listing {
        time,
        kept,
        before_filters,
    })
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

/// A state name as JSON writes it, or as `ss` does (`ESTAB`, `syn-sent`, `FIN-WAIT-1`,
/// `UNCONN`) (a clap value parser).
pub fn state(s: &str) -> Result<TcpState, String> {
    TcpState::from_name(s).ok_or_else(|| {
        format!(
            "not a state; one of {}",
            TcpState::names().collect::<Vec<_>>().join(", ")
        )
    })
}

/// What `conns` keeps: the arguments as a [`ConnectionFilter`].
fn filter(a: &ConnsArgs) -> ConnectionFilter {
    ConnectionFilter {
        listeners: a.all || a.state == Some(TcpState::Listen),
        port: a.port,
        local: a.local,
        remote: a.remote,
        state: a.state,
        fallback: a.fallback,
        token: a.token,
        min_subflows: a.min_subflows,
    }
}

/// Prints one listing: JSON (one line when `stream`, else pretty) or a table.
fn print(listing: &Listing, stream: bool, out: &Output) -> Result<(), Error> {
    if out.json {
        let snapshot = Snapshot {
            time: listing.time.rfc3339.clone(),
            connections: listing.kept.iter().map(ConnectionJson::from).collect(),
        };
        return if stream {
            out.json_line(&snapshot)
        } else {
            out.json(&snapshot)
        };
    }
    out.print(&render(listing, out))
}

/// The connections as one table, each followed by its subflows (ids under
/// FALLBACK, initial/join/backup under SUBFLOWS).
fn render(listing: &Listing, out: &Output) -> String {
    let conns = &listing.kept;
    match listing.before_filters {
        _ if !conns.is_empty() => {}
        0 => return "no MPTCP connections\n".into(),
        1 => return "1 MPTCP connection, none matched the filters\n".into(),
        n => return format!("{n} MPTCP connections, none matched the filters\n"),
    }
    let bytes = |v: Option<u64>| v.map_or_else(|| "-".to_string(), output::bytes);
    let mut t = Table::with_header(&[
        "TOKEN", "STATE", "LOCAL", "REMOTE", "FALLBACK", "SUBFLOWS", "SENT", "RECEIVED",
    ]);
    for c in conns {
        let info = c.info.as_ref();
        let mut row = vec![
            Cell::styled(
                c.connection_token()
                    .map_or_else(|| "-".into(), output::token),
                NAME,
            ),
            c.state.ss_name().into_owned().into(),
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
                s.state.ss_name().into_owned().into(),
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
        assert_eq!(token("0x0a1b2c3d").unwrap(), 0x0a1b_2c3d);
        assert_eq!(token("FF").unwrap(), 255);
        for bad in ["", "0x", "0x123456789", "g", "-1"] {
            assert!(token(bad).is_err(), "{bad}");
        }
        assert_eq!(state("ESTAB").unwrap(), TcpState::Established);
        assert_eq!(state("syn-sent").unwrap(), TcpState::SynSent);
        assert_eq!(state("FIN-WAIT-1").unwrap(), TcpState::FinWait1);
        assert_eq!(state("listen").unwrap(), TcpState::Listen);
        assert!(state("open").is_err());
    }
}
