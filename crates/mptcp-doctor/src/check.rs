//! One line of the checklist, and the verdict over all of them.

use serde::Serialize;

/// What a line found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, but not as multipath as it could.
    Warn,
    /// Broken.
    Fail,
    /// Could not be checked.
    Unknown,
}

/// One line of the checklist.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// A stable identifier: `mptcp_socket`, `enabled`, `path_manager`, `scheduler`,
    /// `checksum`, `blackhole`, `limits`, `endpoints`, `fallback`, `target_connect`,
    /// `target_subflows`, `target_announced`.
    pub id: &'static str,
    /// ok, warn, fail or unknown.
    pub status: Status,
    /// What was checked, for people.
    pub what: &'static str,
    /// What was found.
    pub detail: String,
    /// What to do, for warn and fail (sometimes for unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub(crate) fn new(
        id: &'static str,
        what: &'static str,
        status: Status,
        detail: String,
    ) -> Check {
        Check {
            id,
            status,
            what,
            detail,
            fix: None,
        }
    }

    pub(crate) fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }
}

/// A line that could not be checked, and why.
pub(crate) fn unknown(id: &'static str, what: &'static str, why: &str) -> Check {
    Check::new(id, what, Status::Unknown, format!("could not check: {why}"))
}

/// What the lines add up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every line is ok.
    Healthy,
    /// A line is warn or fail.
    Problems,
    /// Nothing is wrong, but a line could not be checked.
    Incomplete,
}

impl Verdict {
    /// Problems if a line is warn or fail; else incomplete if a line could not be
    /// checked; else healthy.
    pub fn of(lines: &[Check]) -> Verdict {
        if lines
            .iter()
            .any(|c| matches!(c.status, Status::Warn | Status::Fail))
        {
            Verdict::Problems
        } else if lines.iter().any(|c| c.status == Status::Unknown) {
            Verdict::Incomplete
        } else {
            Verdict::Healthy
        }
    }

    /// `healthy`, `problems` or `incomplete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Healthy => "healthy",
            Verdict::Problems => "problems",
            Verdict::Incomplete => "incomplete",
        }
    }

    /// The exit status `mptcp doctor` gives it: 0, 1 or 2 (2 is also the status of
    /// any error, so "could not check" reads as "did not run" to a script).
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Healthy => 0,
            Verdict::Problems => 1,
            Verdict::Incomplete => 2,
        }
    }
}
