//! Why do my connections use one path? `mptcp-doctor` answers with a checklist, and
//! says what to do about each problem. It is the library behind `mptcp doctor`; the
//! command only parses its arguments and prints the [`Report`].
//!
//! The work is split in three:
//! - [`gather`] asks the kernel (through `mptcp_net` and `mptcp_netlink`) and the
//!   host's interfaces, once each, into [`Facts`];
//! - [`checks`] turns the facts into [`Check`] lines and is pure, so its judgement is
//!   unit-tested on recorded facts, without a kernel. A new check is one function of
//!   type [`LocalCheck`] and one line in [`LOCAL_CHECKS`];
//! - [`dial`] connects to a `--target` peer and watches the connection;
//!   [`target_checks`] judges what it saw (pure too).
//!
//! A fact that could not be read makes its lines `unknown`, and the [`Verdict`]
//! `incomplete` when nothing else is wrong.
//!
//! ```no_run
//! let report = mptcp_doctor::Report::examine(None);
//! for line in report.checks.iter().filter(|c| c.status != mptcp_doctor::Status::Ok) {
//!     println!("{}: {}", line.what, line.detail);
//! }
//! ```
//!
//! Decisions the kernel leaves open:
//! - "Several usable addresses" counts *interfaces* that are up and carry a
//!   non-loopback, non-link-local address: two addresses on one interface, or the
//!   IPv4 and IPv6 address of one NIC, are one path, not two.
//! - `path_manager = userspace` is a warning: a daemon may well be doing the work,
//!   but nothing here can see it, and without one there is only one subflow.
//! - `add_addr_accepted = 0` alone is fine (it is the kernel's default and right for
//!   clients with subflow endpoints); it becomes a warning when a target peer
//!   announced addresses that were therefore ignored.
//! - Fallback counters are per namespace and count since boot: any non-zero one is a
//!   warning, with what each counter means.
//! - The target dial sends two bytes (CRLF): extra subflows only come after the first
//!   data exchange. The subflows are watched for the `wait` given, less if their
//!   count has been at least 2 and unchanged for half a second.
//!
//! JSON ([`Report`] with serde): `{"verdict", "exit_code", "checks": [{"id", "status",
//! "what", "detail", "fix"}], "target": {...}}`, see [`TargetJson`]. A field without a
//! value is left out, never `null`.

#![warn(missing_docs)]

mod check;
mod checks;
mod facts;
mod report;
mod target;
#[cfg(test)]
mod tests;

pub use check::{Check, Status, Verdict};
pub use checks::{checks, LocalCheck, LOCAL_CHECKS};
pub use facts::{gather, Facts, HostAddr};
pub use report::{AnnouncedJson, Report, Target, TargetJson};
pub use target::{dial, target_checks, Dialed, TargetOutcome};
