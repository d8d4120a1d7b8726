//! `mptcp doctor [--target HOST:PORT]`: a checklist that says why connections use one
//! path, and what to do about it.
//!
//! The facts, the checks and the target dial are the [`mptcp_doctor`] library; this
//! module turns the arguments into a [`Target`] and prints the [`Report`]: as JSON
//! with `--json`, else one line per check with its fix indented below it. Exit
//! status: 1 if a line is warn or fail; else 2 if a line could not be checked; else 0.

use std::time::Duration;

use clap::Args;
use mptcp_doctor::{Report, Status, Target, Verdict};

use crate::args::seconds;
use crate::error::Error;
use crate::output::{Output, BAD, DIM, GOOD, WARN};

pub const DOCTOR_HELP: &str = "\
Each line is a check: ok, warn or fail, what was checked, what was found, and for
a problem the fix. Checks: MPTCP sockets, net.mptcp.enabled, path manager, scheduler,
checksums, blackhole detection, limits, endpoints against this host's addresses,
fallback counters; with --target: the connection's MPTCP status, its subflows and what
the peer announced.

Exit status: 0 every check passed, 1 a line is warn or fail, 2 could not check.

Examples:
  mptcp doctor
  mptcp doctor --target 198.18.0.2:5201
  mptcp --netns blue doctor --json | jq '.checks[] | select(.status != \"ok\")'

The first line names the binary (version, git commit, compiler, target, features), for
bug reports; the second the preload library `mptcp run` would load, and from where.

JSON: {\"version\", \"preload\": {\"origin\": \"variable\"|\"beside\"|\"system\"|\"embedded\",
       \"path\", \"error\"}, \"verdict\": \"healthy\"|\"problems\"|\"incomplete\", \"exit_code\": 0|1|2,
       \"checks\": [{\"id\", \"status\": \"ok\"|\"warn\"|\"fail\"|\"unknown\", \"what\", \"detail\", \"fix\"}],
       \"target\": {\"target\", \"address\", \"status\": \"active\"|\"fell_back\"|\"plain_tcp\",
                   \"token\", \"subflows\", \"add_addr_accepted\", \"announced\": [{\"id\", \"address\"}],
                   \"events\": true|false, \"error\"}}
A field without a value (a fix on an ok line, the target without --target) is left out.
Check ids: mptcp_socket, enabled, path_manager, scheduler, checksum, blackhole, limits,
endpoints, fallback, balancer_joins, target_connect, target_subflows, target_announced.";

/// `mptcp doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Also dial HOST:PORT with MPTCP and tell whether the peer speaks it, how many
    /// subflows appear and what the peer announces. Sends two bytes (CRLF).
    #[arg(long, value_name = "HOST:PORT", value_parser = host_port)]
    pub target: Option<String>,

    /// Give up on connecting to the target after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = seconds)]
    pub connect_timeout: Duration,

    /// Watch the target connection's subflows for this many seconds.
    #[arg(long, value_name = "SECONDS", default_value = "2", value_parser = seconds)]
    pub wait: Duration,
}

/// `HOST:PORT` or `[IPV6]:PORT`, checked for shape only: names are resolved later,
/// inside the namespace.
fn host_port(s: &str) -> Result<String, String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or("expected HOST:PORT, e.g. 198.18.0.2:443 or [2001:db8::2]:443")?;
    if host.is_empty() {
        return Err("the host is missing".into());
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err("write an IPv6 address in brackets: [2001:db8::2]:443".into());
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("{port:?} is not a port (1-65535)")),
        Ok(_) => Ok(s.to_string()),
    }
}

/// Runs the doctor.
pub fn run(args: &DoctorArgs, out: &Output) -> Result<u8, Error> {
    let target = args.target.as_ref().map(|t| Target {
        target: t.clone(),
        connect_timeout: args.connect_timeout,
        wait: args.wait,
    });
    let report = Report::examine(target.as_ref());
    if out.json {
        #[derive(serde::Serialize)]
        struct WithVersion<'a> {
            version: String,
            preload: crate::preload::Which,
            #[serde(flatten)]
            report: &'a Report,
        }
        out.json(&WithVersion {
            version: format!("mptcp {}", crate::VERSION_LINE),
            preload: crate::preload::Which::find(),
            report: &report,
        })?;
    } else {
        out.print(&format!(
            "mptcp {}\npreload library: {}\n\n{}",
            crate::VERSION_LINE,
            crate::preload::Which::find().line(),
            render(&report, out)
        ))?;
    }
    Ok(report.exit_code)
}

/// The report as text: one line per check, its fix indented below it.
fn render(report: &Report, out: &Output) -> String {
    let width = report
        .checks
        .iter()
        .map(|c| c.what.len())
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    for c in &report.checks {
        let (tag, style) = match c.status {
            Status::Ok => ("ok", GOOD),
            Status::Warn => ("warn", WARN),
            Status::Fail => ("fail", BAD),
            Status::Unknown => ("?", WARN),
        };
        let tag = format!("{tag:<4}");
        text.push_str(&format!(
            "{}  {:<width$}  {}\n",
            out.paint(style, &tag),
            c.what,
            c.detail
        ));
        if let Some(fix) = &c.fix {
            let pad = " ".repeat(4 + 2 + width + 2);
            text.push_str(&format!(
                "{pad}{}\n",
                out.paint(DIM, &format!("fix: {fix}"))
            ));
        }
    }
    let count = |s: Status| report.checks.iter().filter(|c| c.status == s).count();
    let (warn, fail, unknown) = (
        count(Status::Warn),
        count(Status::Fail),
        count(Status::Unknown),
    );
    let summary = match report.verdict {
        Verdict::Healthy => out.paint(GOOD, "healthy"),
        Verdict::Problems => out.paint(
            BAD,
            &format!("{} problem(s): {fail} fail, {warn} warn", fail + warn),
        ),
        Verdict::Incomplete => out.paint(
            WARN,
            &format!("incomplete: {unknown} line(s) could not be checked"),
        ),
    };
    text.push_str(&format!("\nverdict: {summary}\n"));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_values() {
        for good in ["198.18.0.2:5201", "example.com:443", "[2001:db8::2]:80"] {
            assert!(host_port(good).is_ok(), "{good}");
        }
        for bad in [
            "198.18.0.2",
            ":80",
            "h:0",
            "h:x",
            "2001:db8::2:80",
            "h:70000",
        ] {
            assert!(host_port(bad).is_err(), "{bad}");
        }
    }
}
