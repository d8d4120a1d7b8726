//! The target dial: connect to a peer with MPTCP, send two bytes, watch the subflows
//! and the peer's announcements ([`dial`]), and judge what was seen ([`target_checks`],
//! pure).

use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use mptcp_net::{Dialer, MptcpExt, MptcpStatus, Unavailable};
use mptcp_netlink::{Counters, Event, EventKind, Events};

use crate::check::{unknown, Check, Status};
use crate::checks::subflow_endpoints;
use crate::facts::Facts;

/// How often the target connection's subflows are looked at.
const POLL: Duration = Duration::from_millis(50);
/// A subflow count of 2 or more that has not changed for this long is final.
const SETTLED: Duration = Duration::from_millis(500);
/// The most events read while watching the target (other connections' included).
const MAX_EVENTS: usize = 10_000;

/// What dialing the target gave.
#[derive(Debug)]
pub enum TargetOutcome {
    /// The name did not resolve.
    Unresolved(String),
    /// MPTCP sockets cannot be created here.
    NoMptcp(Unavailable),
    /// The connect failed.
    Failed(String),
    /// Connected.
    Connected(Dialed),
}

/// What was seen on a connection to the target.
#[derive(Debug, Default)]
pub struct Dialed {
    /// The address connected to.
    pub address: Option<SocketAddr>,
    /// MPTCP status of the connection.
    pub status: Option<MptcpStatus>,
    /// The connection token.
    pub token: Option<u32>,
    /// The most subflows seen at once.
    pub subflows: usize,
    /// `mptcp_info.add_addr_accepted`: peer addresses taken up.
    pub add_addr_accepted: Option<u8>,
    /// ANNOUNCED events for this connection (`None` without the event stream).
    pub announced: Option<Vec<Event>>,
    /// Why there were no events, if there were none.
    pub events_error: Option<String>,
    /// `MPCapableFallbackSYNACK` went up during the dial.
    pub synack_without_mptcp: bool,
    /// Writing the probe bytes failed.
    pub write_error: Option<String>,
}

/// Dials the target with MPTCP and watches the connection.
pub fn dial(target: &str, connect_timeout: Duration, wait: Duration) -> TargetOutcome {
    let addrs: Vec<SocketAddr> = match target.to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => return TargetOutcome::Unresolved(format!("cannot resolve {target}: {e}")),
    };
    let before = Counters::read().ok();
    // Subscribe before dialing, so the peer's announcements are not missed.
    let mut events = Events::subscribe().map_err(|e| e.to_string());
    let mut dialer = Dialer::new();
    dialer
        .require_multipath_tcp(true)
        .set_timeout(Some(connect_timeout));
    let mut stream = match dialer.dial(&addrs[..]) {
        Ok(s) => s,
        Err(e) => {
            if let Some(why) = e.get_ref().and_then(|r| r.downcast_ref::<Unavailable>()) {
                return TargetOutcome::NoMptcp(*why);
            }
            return TargetOutcome::Failed(format!("cannot connect to {target}: {e}"));
        }
    };
    let mut dialed = Dialed {
        address: stream.peer_addr().ok(),
        status: stream.mptcp_status().ok(),
        ..Dialed::default()
    };
    // Extra subflows come after the first data exchange.
    if let Err(e) = stream.write_all(b"\r\n") {
        dialed.write_error = Some(e.to_string());
    }
    let mut seen = Vec::new();
    dialed.subflows = watch_subflows(&stream, wait, &mut events, &mut seen);
    if let Ok(Some(info)) = stream.mptcp_info() {
        dialed.token = Some(info.token);
        dialed.add_addr_accepted = Some(info.add_addr_accepted);
    }
    drain(&mut events, &mut seen);
    match events {
        Ok(_) => {
            dialed.announced = Some(
                seen.into_iter()
                    .filter(|e| e.kind == EventKind::Announced && e.token == dialed.token)
                    .collect(),
            )
        }
        Err(e) => dialed.events_error = Some(e),
    }
    close_gently(stream);
    if let (Some(before), Ok(after)) = (before, Counters::read()) {
        dialed.synack_without_mptcp = after.delta(&before).get("MPCapableFallbackSYNACK") > Some(0);
    }
    TargetOutcome::Connected(dialed)
}

/// Closes without a reset: a socket closed with unread data sends RST, so whatever
/// the peer answered is read first (at most 64 KiB, for at most 200 ms).
fn close_gently(mut stream: TcpStream) {
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 4096];
    for _ in 0..16 {
        if !matches!(std::io::Read::read(&mut stream, &mut buf), Ok(n) if n > 0) {
            break;
        }
    }
}

/// The most subflows `stream` had at once within `wait`; stops early once a count of
/// 2 or more has settled. Reads events meanwhile, so the socket's queue cannot fill.
fn watch_subflows(
    stream: &TcpStream,
    wait: Duration,
    events: &mut Result<Events, String>,
    seen: &mut Vec<Event>,
) -> usize {
    let start = Instant::now();
    let (mut most, mut last, mut since) = (0, 0, start);
    while start.elapsed() < wait {
        let n = stream.subflows().map_or(0, |s| s.len());
        most = most.max(n);
        if n != last {
            (last, since) = (n, Instant::now());
        } else if n >= 2 && since.elapsed() >= SETTLED {
            break;
        }
        drain(events, seen);
        std::thread::sleep(POLL);
    }
    most
}

/// Takes the events already queued, without waiting.
fn drain(events: &mut Result<Events, String>, seen: &mut Vec<Event>) {
    let Ok(ev) = events else { return };
    while seen.len() < MAX_EVENTS {
        match ev.next_timeout(Duration::ZERO) {
            Ok(Some(e)) => seen.push(e),
            Ok(None) => break,
            Err(mptcp_netlink::Error::EventsLost) => continue,
            Err(e) => {
                tracing::warn!("path-manager events: {e}");
                break;
            }
        }
    }
}

/// The lines about the target.
pub fn target_checks(facts: &Facts, target: &str, outcome: &TargetOutcome) -> Vec<Check> {
    const CONNECT: &str = "target_connect";
    const CONNECT_WHAT: &str = "target speaks MPTCP";
    let dialed = match outcome {
        TargetOutcome::Unresolved(e) | TargetOutcome::Failed(e) => {
            return vec![unknown(CONNECT, CONNECT_WHAT, e)];
        }
        TargetOutcome::NoMptcp(why) => {
            return vec![Check::new(
                CONNECT,
                CONNECT_WHAT,
                Status::Fail,
                format!("cannot test {target}: {why}"),
            )
            .fix(why.fix())];
        }
        TargetOutcome::Connected(d) => d,
    };
    let token = dialed
        .token
        .map(|t| format!("{t:#010x}"))
        .unwrap_or_else(|| "?".into());
    let mut lines = Vec::new();
    match dialed.status {
        Some(MptcpStatus::Active) => lines.push(Check::new(
            CONNECT,
            CONNECT_WHAT,
            Status::Ok,
            format!("{target} speaks MPTCP (connection token {token})"),
        )),
        Some(MptcpStatus::FellBack) => {
            let seen = if dialed.synack_without_mptcp {
                "its SYN-ACK came back without MP_CAPABLE; "
            } else {
                ""
            };
            lines.push(
                Check::new(
                    CONNECT,
                    CONNECT_WHAT,
                    Status::Fail,
                    format!(
                        "the connection to {target} fell back to plain TCP: {seen}one path only"
                    ),
                )
                .fix(
                    "likely causes: the peer does not speak MPTCP (a Go server before 1.24, \
                     nginx without `multipath` on its listen line, a program that does not ask \
                     for IPPROTO_MPTCP, or net.mptcp.enabled=0 on the server), or a middlebox \
                     on the way strips TCP option 30",
                ),
            );
            return lines;
        }
        Some(_) | None => {
            lines.push(Check::new(
                CONNECT,
                CONNECT_WHAT,
                Status::Unknown,
                format!("connected to {target}, but its MPTCP status could not be read"),
            ));
            return lines;
        }
    }

    let announced = dialed.announced.as_deref().unwrap_or_default();
    let accepted = dialed.add_addr_accepted.unwrap_or(0);
    let local_paths = facts.endpoints.as_ref().map_or(0, |e| subflow_endpoints(e));
    let expect_more = local_paths > 0 || !announced.is_empty() || accepted > 0;
    let subflows = match dialed.subflows {
        n if n >= 2 => Check::new(
            "target_subflows",
            "target subflows",
            Status::Ok,
            format!("{n} subflows"),
        ),
        n if expect_more => {
            let write = dialed
                .write_error
                .as_ref()
                .map(|e| format!(" (sending the first bytes failed: {e})"))
                .unwrap_or_default();
            Check::new(
                "target_subflows",
                "target subflows",
                Status::Warn,
                format!(
                    "{n} subflow although there is more to use ({local_paths} local subflow \
                     endpoint(s), {} address(es) announced by the peer){write}",
                    announced.len().max(accepted.into())
                ),
            )
            .fix(
                "check that the extra addresses reach the peer (routing by source address, \
                 firewalls on the other paths) and the endpoints and limits lines above",
            )
        }
        n => Check::new(
            "target_subflows",
            "target subflows",
            Status::Ok,
            format!(
                "{n} subflow: nothing else to use (no subflow endpoint here, no address \
                 announced by the peer)"
            ),
        ),
    };
    lines.push(subflows);

    const ANNOUNCED: &str = "target_announced";
    const ANNOUNCED_WHAT: &str = "peer announcements";
    let limit = facts.limits.as_ref().ok().map(|l| l.add_addr_accepted);
    let line = match (&dialed.announced, &dialed.events_error) {
        (Some(list), _) if !list.is_empty() => {
            let addrs: Vec<String> = list
                .iter()
                .map(|e| {
                    let addr = e.remote.map_or_else(|| "?".into(), announced_addr);
                    match e.remote_id {
                        Some(id) => format!("{addr} (id {id})"),
                        None => addr,
                    }
                })
                .collect();
            let detail = format!("the peer announced {}", addrs.join(", "));
            if limit == Some(0) {
                Check::new(
                    ANNOUNCED,
                    ANNOUNCED_WHAT,
                    Status::Warn,
                    format!("{detail}, ignored: add_addr_accepted is 0"),
                )
                .fix(format!(
                    "mptcp limits set --add-addr-accepted {}",
                    list.len().min(8)
                ))
            } else {
                Check::new(
                    ANNOUNCED,
                    ANNOUNCED_WHAT,
                    Status::Ok,
                    format!("{detail}; {accepted} taken up"),
                )
            }
        }
        (Some(_), _) => Check::new(
            ANNOUNCED,
            ANNOUNCED_WHAT,
            Status::Ok,
            "the peer announced no address".into(),
        ),
        (None, Some(why)) => Check::new(
            ANNOUNCED,
            ANNOUNCED_WHAT,
            Status::Ok,
            format!(
                "{accepted} peer address(es) taken up (what the peer announced is not known \
                 without the event stream: {why})"
            ),
        ),
        (None, None) => Check::new(
            ANNOUNCED,
            ANNOUNCED_WHAT,
            Status::Ok,
            format!("{accepted} peer address(es) taken up"),
        ),
    };
    lines.push(line);
    lines
}

/// An announced address: with its port when one was announced.
pub(crate) fn announced_addr(a: SocketAddr) -> String {
    if a.port() == 0 {
        a.ip().to_string()
    } else {
        a.to_string()
    }
}
