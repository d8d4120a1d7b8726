//! `mptcp demo`: what MPTCP does, live, on a multipath network built in
//! network namespaces ([`mptcp_bench::demo`]).
//!
//! JSON: one document at the end, the library's `DemoReport`: paths,
//! rate_mbit, sum_of_links_mbit, tcp / mptcp / failover (bench summaries),
//! mptcp_over_tcp, mptcp_share_of_links, path_shares, path_cut, cut_at_s,
//! failover_stall_ms, data_verified, all_paths_used, problems.

use std::time::Duration;

use clap::Args;
use mptcp_bench::demo::{self, Act, DemoEvent, DemoOptions, DemoReport};
use mptcp_bench::Interval;

use crate::error::{Error, EXIT_OK, EXIT_PROBLEMS};
use crate::output::{Cell, Output, Table, BAD, DIM, GOOD, HEADER, NAME, WARN};

pub const DEMO_HELP: &str = "\
Builds a client and a server in network namespaces joined by N shaped paths
(198.18.0.0/15, removed at the end, also on Ctrl-C or error), then:
  1. one plain TCP connection for --seconds: the speed of one path;
  2. one MPTCP connection for --seconds: every path at once, live per subflow;
  3. failover: an MPTCP transfer during which path 0 is cut; it finishes,
     byte-exact, on the paths left.
Ends with a table: TCP throughput, MPTCP throughput, MPTCP as a share of the sum of
the link rates, the failover stall, and whether every byte arrived intact.

Needs root and iproute2 (ip, tc).

Examples:
  mptcp demo
  mptcp demo --paths 3 --rate 20 --seconds 3
  mptcp --json demo --seconds 2 | jq '{mptcp_over_tcp, failover_stall_ms}'

Exit status: 0 MPTCP used every path and no data was lost, 1 it did not, 2 the demo
could not run.";

/// `mptcp demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of paths between client and server.
    #[arg(long, default_value = "2", value_parser = clap::value_parser!(u8).range(1..=8))]
    pub paths: u8,
    /// Rate of each path, in Mbit/s.
    #[arg(long, default_value = "50", value_name = "MBIT", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub rate: u32,
    /// Length of each act, in seconds.
    #[arg(long, default_value = "5", value_parser = clap::value_parser!(u64).range(1..=600))]
    pub seconds: u64,
}

/// Runs the demo.
pub fn run(args: &DemoArgs, out: &Output) -> Result<u8, Error> {
    if !rustix::process::geteuid().is_root() {
        return Err(Error::msg(
            "mptcp demo needs root: it creates network namespaces (run it as root)",
        ));
    }
    let opts = DemoOptions {
        paths: usize::from(args.paths),
        rate_mbit: args.rate,
        seconds: args.seconds,
        interval: Duration::from_secs(1),
    };
    let stop = super::stop_flag()?;
    let mut print_err = None;
    let result = demo::run(&opts, Some(&stop), &mut |event| {
        if out.json {
            return;
        }
        if let Err(e) = out.print(&event_text(&event, out)) {
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            print_err.get_or_insert(e);
        }
    });
    if let Some(e) = print_err {
        return Err(e);
    }
    let report = result.map_err(|e| Error::msg(format!("demo: {e}")))?;
    if out.json {
        out.json(&report)?;
    } else {
        out.print(&report_text(&report, out))?;
    }
    Ok(if report.ok() { EXIT_OK } else { EXIT_PROBLEMS })
}

fn act_title(act: Act) -> &'static str {
    match act {
        Act::Tcp => "Act 1: one plain TCP connection",
        Act::Mptcp => "Act 2: one MPTCP connection over every path",
        Act::Failover => "Act 3: failover: path 0 is cut during an MPTCP transfer",
    }
}

fn event_text(event: &DemoEvent<'_>, out: &Output) -> String {
    match event {
        DemoEvent::NetworkReady { description } => {
            format!("{}\n", out.paint(DIM, &format!("network: {description}")))
        }
        DemoEvent::ActStarted { act } => format!("\n{}\n", out.paint(HEADER, act_title(*act))),
        DemoEvent::Interval { interval, .. } => interval_text(interval, out),
        DemoEvent::PathCut { path, at_s } => format!(
            "{}\n",
            out.paint(WARN, &format!("  path {path} was cut at {at_s:.1} s"))
        ),
        DemoEvent::ActDone { summary, .. } => format!(
            "  {} {:.1} Mbit/s over {:.1} s{}\n",
            out.paint(GOOD, "done:"),
            summary.mbit_per_s,
            summary.seconds,
            if summary.verified == Some(true) {
                ", every byte verified"
            } else {
                ""
            }
        ),
    }
}

/// One line per interval: total, then a bar per subflow.
fn interval_text(i: &Interval, out: &Output) -> String {
    let mut s = format!(
        "  {:>5.1} s  {}\n",
        i.end_s,
        out.paint(HEADER, &format!("{:>6.1} Mbit/s", i.mbit_per_s))
    );
    let widest = i.subflows.iter().map(|s| s.mbit_per_s).fold(1.0, f64::max);
    for sf in &i.subflows {
        let width = ((sf.mbit_per_s / widest) * 30.0).round() as usize;
        s.push_str(&format!(
            "           {:<21} {} {:>6.1} Mbit/s\n",
            sf.local.map_or("?".into(), |a| a.to_string()),
            out.paint(NAME, &format!("{:<30}", "#".repeat(width.min(30)))),
            sf.mbit_per_s,
        ));
    }
    s
}

fn report_text(r: &DemoReport, out: &Output) -> String {
    let mut t = Table::with_header(&["", "result"]);
    let row = |t: &mut Table, what: &str, value: String, good: Option<bool>| {
        let style = match good {
            Some(true) => GOOD,
            Some(false) => BAD,
            None => Default::default(),
        };
        t.row(vec![what.into(), Cell::styled(value, style)]);
    };
    row(
        &mut t,
        "links",
        format!(
            "{} x {} Mbit/s = {} Mbit/s",
            r.paths, r.rate_mbit, r.sum_of_links_mbit
        ),
        None,
    );
    row(
        &mut t,
        "TCP throughput",
        format!("{:.1} Mbit/s", r.tcp.mbit_per_s),
        None,
    );
    row(
        &mut t,
        "MPTCP throughput",
        format!(
            "{:.1} Mbit/s ({:.2}x TCP)",
            r.mptcp.mbit_per_s, r.mptcp_over_tcp
        ),
        Some(r.mptcp_over_tcp > 1.0 || r.paths == 1),
    );
    row(
        &mut t,
        "MPTCP / sum of link rates",
        format!("{:.0}%", r.mptcp_share_of_links * 100.0),
        None,
    );
    row(
        &mut t,
        "bytes per path",
        r.path_shares
            .iter()
            .enumerate()
            .map(|(i, s)| format!("path {i} {:.0}%", s * 100.0))
            .collect::<Vec<_>>()
            .join(", "),
        Some(r.all_paths_used),
    );
    row(
        &mut t,
        "failover stall",
        format!(
            "{:.0} ms (path {} cut at {:.1} s)",
            r.failover_stall_ms, r.path_cut, r.cut_at_s
        ),
        None,
    );
    row(
        &mut t,
        "data verified",
        if r.data_verified {
            "yes, byte-exact"
        } else {
            "NO"
        }
        .into(),
        Some(r.data_verified),
    );
    let mut text = format!("\n{}\n{}", out.paint(HEADER, "Result"), t.render(out));
    for p in &r.problems {
        text.push_str(&format!("{}\n", out.paint(BAD, &format!("problem: {p}"))));
    }
    text
}
