//! `mptcp doctor [--target HOST:PORT]`: a checklist that says why connections use one
//! path, and what to do about it.
//!
//! The facts, the checks and the target dial are the [`mptcp_doctor`] library; this
//! module turns the arguments into a [`Target`] and prints the [`Report`]: as JSON
//! with `--json`, else one line per check with its fix indented below it. Exit
//! status: 1 if a line is warn or fail; else 2 if a line could not be checked; else 0.

use mptcp_doctor::{Report, Status, Target, Verdict};

use crate::cli::DoctorArgs;
use crate::error::Error;
use crate::output::{Output, BAD, DIM, GOOD, WARN};

/// Runs the doctor.
pub fn run(args: &DoctorArgs, out: &Output) -> Result<u8, Error> {
    let target = args.target.as_ref().map(|t| Target {
        target: t.clone(),
        connect_timeout: args.connect_timeout,
        wait: args.wait,
    });
    let report = Report::examine(target.as_ref());
    if out.json {
        out.json(&report)?;
    } else {
        out.print(&render(&report, out))?;
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
