//! The whole report as data: what `mptcp doctor --json` prints.

use serde::Serialize;

use std::time::Duration;

use crate::check::{Check, Verdict};
use crate::target::{announced_addr, dial, target_checks, TargetOutcome};
use crate::{checks, gather};

/// The `target` object of the JSON report.
#[derive(Debug, Serialize)]
pub struct TargetJson {
    /// As given on the command line.
    pub target: String,
    /// The address connected to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// `active`, `fell_back`, `plain_tcp`; left out when not connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    /// The connection token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<u32>,
    /// The most subflows seen at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subflows: Option<usize>,
    /// Peer addresses the connection took up (`mptcp_info`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add_addr_accepted: Option<u8>,
    /// What the peer announced (left out without CAP_NET_ADMIN for the event stream).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub announced: Option<Vec<AnnouncedJson>>,
    /// Whether the path-manager events could be read.
    pub events: bool,
    /// Why the target could not be checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An address the peer announced.
#[derive(Debug, Serialize)]
pub struct AnnouncedJson {
    /// The peer's address id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u8>,
    /// The address (and port, 0 when none was announced).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// The whole report, as printed with `--json`.
#[derive(Debug, Serialize)]
pub struct Report {
    /// `healthy` (exit 0), `problems` (exit 1) or `incomplete` (exit 2).
    pub verdict: Verdict,
    /// The exit status.
    pub exit_code: u8,
    /// The lines, in order.
    pub checks: Vec<Check>,
    /// The target, with --target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetJson>,
}

impl Report {
    /// The report over `checks`, with the target's object if one was dialed.
    pub fn new(checks: Vec<Check>, target: Option<TargetJson>) -> Report {
        let verdict = Verdict::of(&checks);
        Report {
            verdict,
            exit_code: verdict.exit_code(),
            checks,
            target,
        }
    }

    /// Gathers the facts, runs the local checks and, with a target, dials it: the
    /// whole of `mptcp doctor`.
    pub fn examine(target: Option<&Target>) -> Report {
        let facts = gather();
        let mut lines = checks(&facts);
        let target = target.map(|t| {
            let outcome = dial(&t.target, t.connect_timeout, t.wait);
            lines.extend(target_checks(&facts, &t.target, &outcome));
            TargetJson::new(&t.target, &outcome)
        });
        Report::new(lines, target)
    }
}

/// A peer to dial, and how long to give it.
#[derive(Debug, Clone)]
pub struct Target {
    /// `HOST:PORT`.
    pub target: String,
    /// Give up connecting after this long.
    pub connect_timeout: Duration,
    /// Watch the connection's subflows for this long.
    pub wait: Duration,
}

impl TargetJson {
    /// What `outcome` says about `target`, as JSON.
    pub fn new(target: &str, outcome: &TargetOutcome) -> TargetJson {
        let mut json = TargetJson {
            target: target.to_string(),
            address: None,
            status: None,
            token: None,
            subflows: None,
            add_addr_accepted: None,
            announced: None,
            events: false,
            error: None,
        };
        match outcome {
            TargetOutcome::Unresolved(e) | TargetOutcome::Failed(e) => json.error = Some(e.clone()),
            TargetOutcome::NoMptcp(why) => json.error = Some(why.to_string()),
            TargetOutcome::Connected(d) => {
                json.address = d.address.map(|a| a.to_string());
                json.status = d.status.map(|s| s.as_str());
                json.token = d.token;
                json.subflows = Some(d.subflows);
                json.add_addr_accepted = d.add_addr_accepted;
                json.events = d.announced.is_some();
                json.announced = d.announced.as_ref().map(|list| {
                    list.iter()
                        .map(|e| AnnouncedJson {
                            id: e.remote_id,
                            address: e.remote.map(announced_addr),
                        })
                        .collect()
                });
            }
        }
        json
    }
}
