//! `mptcp monitor`: the path manager's events, live, through
//! [`mptcp_netlink::Events`] (`ip mptcp monitor`, with times and JSON).
//!
//! Runs until Ctrl-C, `--count N` events or `--timeout S` seconds, whichever comes
//! first, and exits 0. Once subscribed it prints `listening for events` on stderr, so
//! a script (or a test) knows that events from then on will be seen.
//!
//! JSON lines: one [`EventJson`] per event.
//!
//! `--event NAME` (repeatable) and `--token HEX` keep only the matching events;
//! `--count` counts those.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Args;
use mptcp_netlink::{Event, Events};
use serde::Serialize;

use crate::args::seconds;
use crate::error::{Error, EXIT_OK};
use crate::output::{self, Output, Timestamp, NAME};

pub const MONITOR_HELP: &str = "\
One line per event: time (UTC), event, then what the kernel said: token, saddr, daddr,
locid, remid, backup, error, reset reason, server_side. Needs CAP_NET_ADMIN. Prints
`listening for events` on stderr once subscribed. With --event or --token, only the
matching events are printed (and counted by --count).

Examples:
  mptcp monitor
  mptcp monitor --count 10 --timeout 30
  mptcp monitor --event sub_established --event sub_closed --token 0x1a2b3c4d
  mptcp --netns blue monitor --json | jq -c 'select(.event == \"sub_established\")'

JSON lines: {\"time\" (RFC 3339, UTC), \"event\": \"created\"|\"established\"|\"closed\"|
\"announced\"|\"removed\"|\"sub_established\"|\"sub_closed\"|\"sub_priority\"|\"listener_created\"|
\"listener_closed\"|\"unknown_N\", \"token\", \"local\", \"remote\", \"local_id\", \"remote_id\",
\"backup\", \"error\", \"server_side\", \"timeout\", \"ifindex\", \"reset_reason\", \"reset_flags\"};
a field the event does not carry is left out.";

/// `mptcp monitor`.
#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// Stop after N events (that pass --event and --token).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    pub timeout: Option<Duration>,
    /// Only events of this kind (created, established, closed, announced, removed,
    /// sub_established, sub_closed, sub_priority, listener_created, listener_closed);
    /// repeat for several.
    #[arg(long = "event", value_name = "NAME", value_parser = crate::cmd::monitor::event_name)]
    pub events: Vec<String>,
    /// Only events of the connection with this token (hex, `0x` optional).
    #[arg(long, value_name = "HEX", value_parser = crate::cmd::conns::token)]
    pub token: Option<u32>,
}

/// The longest wait for an event before the stop flag and deadline are looked at.
const TICK: Duration = Duration::from_millis(200);

/// An event in JSON; fields the event does not carry are left out.
#[derive(Debug, Serialize)]
pub struct EventJson {
    /// When it was received (RFC 3339, UTC, milliseconds).
    pub time: String,
    /// `created`, `established`, `closed`, `announced`, `removed`, `sub_established`,
    /// `sub_closed`, `sub_priority`, `listener_created`, `listener_closed`, or
    /// `unknown_N`.
    pub event: String,
    /// The connection token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<u32>,
    /// Local address and port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<SocketAddr>,
    /// Remote address and port (port 0 for an announcement without one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<SocketAddr>,
    /// Local address id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_id: Option<u8>,
    /// Remote address id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<u8>,
    /// The subflow is a backup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<bool>,
    /// The subflow's socket error (errno).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<u8>,
    /// This host is the connection's server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_side: Option<bool>,
    /// ADD_ADDR timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u32>,
    /// The subflow's interface index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ifindex: Option<u32>,
    /// Why the subflow was reset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset_reason: Option<String>,
    /// MP_TCPRST flags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset_flags: Option<u32>,
}

impl EventJson {
    fn new(time: &Timestamp, e: &Event) -> EventJson {
        EventJson {
            time: time.rfc3339.clone(),
            event: e.kind.name().into_owned(),
            token: e.token,
            local: e.local,
            remote: e.remote,
            local_id: e.local_id,
            remote_id: e.remote_id,
            backup: e.backup,
            error: e.error,
            server_side: e.server_side,
            timeout: e.timeout,
            ifindex: e.ifindex,
            reset_reason: e.reset_reason.map(|r| r.to_string()),
            reset_flags: e.reset_flags,
        }
    }
}

/// Prints events until stopped.
pub fn run(args: &MonitorArgs, out: &Output) -> Result<u8, Error> {
    let mut events = Events::subscribe()?;
    let stop = super::stop_flag()?;
    let _ = writeln!(std::io::stderr(), "listening for events (Ctrl-C to stop)");
    let deadline = args.timeout.map(|t| Instant::now() + t);
    let mut seen = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let wait = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left.min(TICK),
                _ => break,
            },
            None => TICK,
        };
        let event = match events.next_timeout(wait) {
            Ok(Some(event)) => event,
            Ok(None) => continue,
            Err(mptcp_netlink::Error::EventsLost) => {
                tracing::warn!("{}", mptcp_netlink::Error::EventsLost);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if !wanted(args, &event) {
            continue;
        }
        let time = Timestamp::now();
        if out.json {
            out.json_line(&EventJson::new(&time, &event))?;
        } else {
            out.print(&line(&time, &event, out))?;
        }
        seen += 1;
        if args.count.is_some_and(|n| seen >= n) {
            break;
        }
    }
    Ok(EXIT_OK)
}

/// The event names `--event` takes, as `EventKind::name` writes them.
const EVENTS: [&str; 10] = [
    "created",
    "established",
    "closed",
    "announced",
    "removed",
    "sub_established",
    "sub_closed",
    "sub_priority",
    "listener_created",
    "listener_closed",
];

/// An event name for `--event` (a clap value parser): one of [`EVENTS`], any case,
/// `-` for `_`.
pub fn event_name(s: &str) -> Result<String, String> {
    let name = s.to_ascii_lowercase().replace('-', "_");
    if EVENTS.contains(&name.as_str()) {
        Ok(name)
    } else {
        Err(format!("not an event; one of {}", EVENTS.join(", ")))
    }
}

/// Whether `e` passes `--event` and `--token`.
fn wanted(args: &MonitorArgs, e: &Event) -> bool {
    (args.events.is_empty() || args.events.iter().any(|n| *n == e.kind.name()))
        && args.token.is_none_or(|t| e.token == Some(t))
}

/// `HH:MM:SS.mmm EVENT token=... saddr=... daddr=... ...`, the fields in `ip mptcp
/// monitor`'s words.
fn line(time: &Timestamp, e: &Event, out: &Output) -> String {
    let kind = format!("{:<16}", e.kind.name().to_ascii_uppercase());
    let mut text = format!("{} {}", time.clock, out.paint(NAME, &kind));
    let mut field = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            text.push_str(&format!(" {name}={v}"));
        }
    };
    field("token", e.token.map(output::token));
    field("saddr", e.local.map(|a| a.to_string()));
    field("daddr", e.remote.map(|a| a.to_string()));
    field("locid", e.local_id.map(|v| v.to_string()));
    field("remid", e.remote_id.map(|v| v.to_string()));
    field("backup", e.backup.map(|b| u8::from(b).to_string()));
    field("error", e.error.map(|v| v.to_string()));
    field("timeout", e.timeout.map(|v| v.to_string()));
    field("ifindex", e.ifindex.map(|v| v.to_string()));
    field("reset_reason", e.reset_reason.map(|r| r.to_string()));
    field("reset_flags", e.reset_flags.map(|v| format!("{v:#x}")));
    if e.server_side == Some(true) {
        text.push_str(" server_side");
    }
    text.trim_end().to_string() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use mptcp_netlink::EventKind;

    #[test]
    fn filters() {
        assert_eq!(event_name("SUB-ESTABLISHED").unwrap(), "sub_established");
        assert!(event_name("subflow").is_err());
        let mut e = Event::new(EventKind::Closed);
        e.token = Some(7);
        let args = |events: &[&str], token: Option<u32>| MonitorArgs {
            count: None,
            timeout: None,
            events: events.iter().map(|s| s.to_string()).collect(),
            token,
        };
        assert!(wanted(&args(&[], None), &e));
        assert!(wanted(&args(&["created", "closed"], Some(7)), &e));
        assert!(!wanted(&args(&["created"], None), &e));
        assert!(!wanted(&args(&[], Some(8)), &e));
    }

    #[test]
    fn a_line_per_event() {
        let mut e = Event::new(EventKind::SubEstablished);
        e.token = Some(0xabc);
        e.local = Some("198.18.1.1:40000".parse().unwrap());
        e.remote = Some("198.18.0.2:5201".parse().unwrap());
        e.local_id = Some(2);
        e.remote_id = Some(0);
        e.backup = Some(false);
        e.server_side = Some(true);
        let time = Timestamp::from_unix_millis(1_000);
        let out = Output::new(false, crate::cli::ColorWhen::Never);
        assert_eq!(
            line(&time, &e, &out),
            "00:00:01.000 SUB_ESTABLISHED  token=0x00000abc saddr=198.18.1.1:40000 \
             daddr=198.18.0.2:5201 locid=2 remid=0 backup=0 server_side\n"
        );
        let json = serde_json::to_value(EventJson::new(&time, &e)).unwrap();
        assert_eq!(json["event"], "sub_established");
        assert_eq!(json["time"], "1970-01-01T00:00:01.000Z");
        assert_eq!(json["local"], "198.18.1.1:40000");
        assert!(
            json.get("reset_reason").is_none(),
            "absent, not null: {json}"
        );
        assert!(json.get("timeout").is_none(), "{json}");
    }
}
