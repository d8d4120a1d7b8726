//! `mptcp bench server|client`: an iperf-like throughput test that sees the
//! subflows, over [`mptcp_bench`].
//!
//! JSON lines. The client prints `{"type": "interval", ...}` per interval
//! (start_s, end_s, bytes, mbit_per_s, subflows: [{id, local, remote, bytes,
//! mbit_per_s, rtt_ms}]) and then `{"type": "summary", ...}` (direction, local,
//! remote, bytes, seconds, mbit_per_s, retransmits, subflows_seen,
//! status_start, status_end, mptcp_stayed_on, verified, max_stall_ms,
//! subflow_bytes). The server prints `{"type": "listening", "addr", "status"}`
//! and one `{"type": "test", ...}` per finished test (peer, status, direction,
//! bytes, seconds, mbit_per_s, verified, error).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use mptcp_bench::{Client, ClientOptions, ConnReport, Interval, Server, Summary, DEFAULT_PORT};
use serde::Serialize;

use crate::args::seconds_up_to;
use crate::error::{Error, EXIT_OK, EXIT_PROBLEMS};
use crate::output::{self, Output, DIM, GOOD, HEADER, NAME, WARN};

pub const BENCH_HELP: &str = "\
A throughput test that sees subflows: each interval prints the total throughput and
one line per subflow (its addresses and throughput, from the kernel's per-subflow byte
counters), then a summary. The server takes MPTCP and plain TCP clients at once.

Examples:
  mptcp bench server                           # listens on [::]:5201
  mptcp bench client 198.18.0.2 --time 10 --verify
  mptcp bench client 198.18.0.2:5201 --bytes 1G --reverse
  mptcp bench client 198.18.0.2 --tcp          # plain TCP, for comparison
  mptcp --json bench client 198.18.0.2 | jq 'select(.type == \"summary\")'

Exit status: 0 done (client: and the data verified, when asked), 1 the data did not
verify, 2 the test could not run.";

/// `mptcp bench`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Accept bench clients (MPTCP and plain TCP) until Ctrl-C.
    Server(ServerArgs),
    /// Run one test against a bench server.
    Client(ClientArgs),
}

/// `mptcp bench server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on; use the wildcard on multipath hosts (joins to the
    /// host's other addresses need it).
    #[arg(long, short, value_name = "ADDR", default_value = "[::]:5201")]
    pub listen: String,
    /// Listen with plain TCP only.
    #[arg(long)]
    pub tcp: bool,
    /// Stop after N tests.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
}

/// `mptcp bench client`.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The server: HOST or HOST:PORT (port 5201 by default).
    #[arg(value_name = "ADDR")]
    pub addr: String,
    /// Send for this many seconds (default 10).
    #[arg(long, short, value_name = "SECONDS", value_parser = seconds_up_to(mptcp_bench::proto::MAX_DURATION), conflicts_with = "bytes")]
    pub time: Option<Duration>,
    /// Send this many bytes (suffixes K, M, G: powers of 1024).
    #[arg(long, short = 'n', value_name = "N", value_parser = byte_count)]
    pub bytes: Option<u64>,
    /// The server sends, this client receives.
    #[arg(long, short = 'R')]
    pub reverse: bool,
    /// Plain TCP instead of MPTCP.
    #[arg(long)]
    pub tcp: bool,
    /// Seconds between reports.
    #[arg(long, short, value_name = "SECONDS", value_parser = seconds_up_to(mptcp_bench::proto::MAX_DURATION), default_value = "1")]
    pub interval: Duration,
    /// Check every received byte.
    #[arg(long)]
    pub verify: bool,
}

fn byte_count(s: &str) -> Result<u64, String> {
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, ""),
    };
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use K, M, G or T)")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{s:?} is not a positive byte count"))
}

/// Runs one `bench` subcommand.
pub fn run(cmd: BenchCommand, out: &Output) -> Result<u8, Error> {
    match cmd {
        BenchCommand::Server(args) => server(&args, out),
        BenchCommand::Client(args) => client(&args, out),
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line<'a> {
    Listening {
        addr: SocketAddr,
        status: mptcp_net::MptcpStatus,
    },
    Test(&'a ConnReport),
    Interval(&'a Interval),
    Summary(&'a Summary),
}

fn server(args: &ServerArgs, out: &Output) -> Result<u8, Error> {
    let server = Server::bind(args.listen.as_str(), args.tcp)
        .map_err(|e| Error::io(format!("cannot listen on {}", args.listen), e))?;
    let addr = server.local_addr().map_err(|e| Error::io("listener", e))?;
    let status = server.status().map_err(|e| Error::io("listener", e))?;
    if out.json {
        out.json_line(&Line::Listening { addr, status })?;
    } else {
        out.print(&format!("listening on {addr} ({status}); Ctrl-C to stop\n"))?;
    }
    let stop = super::stop_flag()?;
    let failed = std::sync::Mutex::new(None::<Error>);
    let on_report = |r: ConnReport| {
        let printed = if out.json {
            out.json_line(&Line::Test(&r))
        } else {
            out.print(&server_line(&r, out))
        };
        if let Err(e) = printed {
            // stdout is gone: stop serving.
            stop.store(true, Ordering::SeqCst);
            *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        }
    };
    let max = args.count.map(|c| usize::try_from(c).unwrap_or(usize::MAX));
    server
        .serve(max, Some(&stop), &on_report)
        .map_err(|e| Error::io("accept", e))?;
    match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(EXIT_OK),
    }
}

fn server_line(r: &ConnReport, out: &Output) -> String {
    match &r.error {
        Some(e) => format!(
            "{}  {}  {}\n",
            r.peer,
            r.status,
            out.paint(WARN, &format!("error: {e}"))
        ),
        None => format!(
            "{}  {:<22}  {:?}  {}  in {:.2} s  {}{}\n",
            r.peer,
            r.status.to_string(),
            r.direction
                .map_or("-".into(), |d| format!("{d:?}").to_lowercase()),
            output::bytes(r.bytes),
            r.seconds,
            out.paint(HEADER, &format!("{:.1} Mbit/s", r.mbit_per_s)),
            match r.verified {
                Some(true) => "  verified".to_string(),
                Some(false) => format!("  {}", out.paint(WARN, "CORRUPTED")),
                None => String::new(),
            }
        ),
    }
}

/// HOST or HOST:PORT; literal addresses never touch the resolver.
fn resolve(addr: &str) -> Result<SocketAddr, Error> {
    let bad = || {
        Error::msg(format!(
            "bad server address {addr:?}: expected HOST or HOST:PORT"
        ))
    };
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = addr
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    let has_port = addr
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let mut addrs = if has_port {
        addr.to_socket_addrs()
    } else {
        (addr, DEFAULT_PORT).to_socket_addrs()
    }
    .map_err(|_| bad())?;
    addrs
        .next()
        .ok_or_else(|| Error::msg(format!("{addr:?} resolves to no address")))
}

fn client(args: &ClientArgs, out: &Output) -> Result<u8, Error> {
    let addr = resolve(&args.addr)?;
    let duration = match (args.time, args.bytes) {
        (None, None) => Some(Duration::from_secs(10)),
        (t, _) => t,
    };
    let opts = ClientOptions {
        addr,
        duration,
        bytes: args.bytes,
        reverse: args.reverse,
        tcp: args.tcp,
        interval: args.interval,
        verify: args.verify,
    };
    let client =
        Client::connect(&opts).map_err(|e| Error::io(format!("cannot connect to {addr}"), e))?;
    let stop = super::stop_flag()?;
    if !out.json {
        out.print(&format!(
            "connected to {addr}: {}; {} {}\n",
            client.status(),
            if args.reverse { "receiving" } else { "sending" },
            match (duration, args.bytes) {
                (Some(d), _) => format!("for {:.1} s", d.as_secs_f64()),
                (None, Some(b)) => output::bytes(b),
                (None, None) => String::new(),
            }
        ))?;
    }
    let bar = progress_bar(out, duration, args.bytes);
    let mut print_err = None;
    let summary = client.run(Some(&stop), |i| {
        let printed = if out.json {
            out.json_line(&Line::Interval(i))
        } else {
            let text = interval_text(i, out);
            match &bar {
                Some(b) => {
                    b.set_position(progress(i, duration));
                    b.println(text.trim_end());
                    Ok(())
                }
                None => out.print(&text),
            }
        };
        if let Err(e) = printed {
            stop.store(true, Ordering::SeqCst);
            print_err.get_or_insert(e);
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if let Some(e) = print_err {
        return Err(e);
    }
    let summary = summary.map_err(|e| Error::io("bench", e))?;
    if out.json {
        out.json_line(&Line::Summary(&summary))?;
    } else {
        out.print(&summary_text(&summary, out))?;
    }
    Ok(if summary.verified == Some(false) {
        EXIT_PROBLEMS
    } else {
        EXIT_OK
    })
}

/// A bar of the test's time (or bytes), on a terminal only.
fn progress_bar(
    out: &Output,
    duration: Option<Duration>,
    bytes: Option<u64>,
) -> Option<ProgressBar> {
    if out.json || !out.is_terminal() {
        return None;
    }
    let (len, template) = match (duration, bytes) {
        (Some(d), _) => (
            d.as_millis() as u64,
            "{spinner} [{bar:40}] {elapsed_precise} of the test",
        ),
        (None, Some(b)) => (b, "{spinner} [{bar:40}] {bytes}/{total_bytes}"),
        (None, None) => return None,
    };
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar)
}

fn progress(i: &Interval, duration: Option<Duration>) -> u64 {
    match duration {
        Some(_) => (i.end_s * 1000.0) as u64,
        None => i.bytes,
    }
}

fn interval_text(i: &Interval, out: &Output) -> String {
    let mut s = format!(
        "{:>6.1}-{:<6.1} s  {}  {} subflow(s)\n",
        i.start_s,
        i.end_s,
        out.paint(HEADER, &format!("{:>8.1} Mbit/s", i.mbit_per_s)),
        i.subflows.len()
    );
    for sf in &i.subflows {
        s.push_str(&format!(
            "           {} {} -> {}  {:>8.1} Mbit/s  {}\n",
            out.paint(NAME, &sf.id.map_or("-".into(), |id| format!("#{id}"))),
            sf.local.map_or("?".into(), |a| a.to_string()),
            sf.remote.map_or("?".into(), |a| a.to_string()),
            sf.mbit_per_s,
            out.paint(DIM, &format!("rtt {:.2} ms", sf.rtt_ms)),
        ));
    }
    s
}

fn summary_text(s: &Summary, out: &Output) -> String {
    let mptcp = if s.mptcp_stayed_on {
        out.paint(GOOD, "MPTCP all along")
    } else {
        out.paint(WARN, &format!("{} -> {}", s.status_start, s.status_end))
    };
    let mut text = format!(
        "{}\n  {} in {:.2} s = {}\n  retransmits {}, subflows seen {}, {}\n",
        out.paint(
            HEADER,
            &format!("summary ({:?}, {} -> {})", s.direction, s.local, s.remote).to_lowercase()
        ),
        output::bytes(s.bytes),
        s.seconds,
        out.paint(HEADER, &format!("{:.1} Mbit/s", s.mbit_per_s)),
        s.retransmits,
        s.subflows_seen,
        mptcp,
    );
    text.push_str(&format!("  longest stall {:.0} ms", s.max_stall_ms));
    text.push_str(match s.verified {
        Some(true) => ", data verified\n",
        Some(false) => ", DATA CORRUPTED\n",
        None => "\n",
    });
    for sf in &s.subflow_bytes {
        let share = sf.bytes as f64 * 100.0 / s.bytes.max(1) as f64;
        text.push_str(&format!(
            "    {} -> {}  {}  ({share:.0}%)\n",
            sf.local.map_or("?".into(), |a| a.to_string()),
            sf.remote.map_or("?".into(), |a| a.to_string()),
            output::bytes(sf.bytes),
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_and_seconds_parse_or_name_the_bad_value() {
        assert_eq!(byte_count("1000"), Ok(1000));
        assert_eq!(byte_count("4K"), Ok(4096));
        assert_eq!(byte_count("1G"), Ok(1 << 30));
        assert_eq!(byte_count("2mib"), Ok(2 << 20));
        for bad in ["", "0", "G", "12X", "-5", "99999999999999999999T"] {
            let e = byte_count(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
        let seconds = seconds_up_to(mptcp_bench::proto::MAX_DURATION);
        assert_eq!(seconds("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(seconds("3600"), Ok(Duration::from_secs(3600)));
        for bad in ["0", "-1", "nan", "inf", "x", "3601"] {
            assert!(seconds(bad).unwrap_err().contains(bad));
        }
    }

    #[test]
    fn server_addresses_with_and_without_port() {
        assert_eq!(
            resolve("127.0.0.1").unwrap(),
            "127.0.0.1:5201".parse().unwrap()
        );
        assert_eq!(
            resolve("127.0.0.1:80").unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        assert_eq!(resolve("[::1]").unwrap(), "[::1]:5201".parse().unwrap());
        assert_eq!(resolve("::1").unwrap(), "[::1]:5201".parse().unwrap());
        // Malformed ports fail before any name lookup.
        let e = resolve("198.18.0.2:99999").unwrap_err().to_string();
        assert!(e.contains("198.18.0.2:99999"), "{e}");
    }
}
