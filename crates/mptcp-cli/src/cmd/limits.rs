//! `mptcp limits show|set`: the in-kernel path manager's limits.
//!
//! JSON: `{"subflows", "add_addr_accepted"}`, after the change for `set`.

use clap::{Args, Subcommand};
use mptcp_netlink::{Limits, PathManager};
use serde::Serialize;

use crate::error::{Error, EXIT_OK};
use crate::output::{Cell, Output, Table, NAME};

pub const LIMITS_HELP: &str = "\
subflows: most extra subflows per connection (kernel default 2); add_addr_accepted: most
addresses announced by a peer that a connection will use (kernel default 0). Both 0-8.
With subflows 0, no connection ever gets a second subflow.

Examples:
  mptcp limits show
  mptcp limits set --subflows 4 --add-addr-accepted 4

JSON: {\"subflows\", \"add_addr_accepted\"} (show and set).";

/// `mptcp limits ...`.
#[derive(Debug, Subcommand)]
pub enum LimitsCommand {
    /// Show the limits.
    #[command(visible_alias = "list")]
    Show,
    /// Set one or both limits (the other keeps its value).
    Set(LimitsSet),
}

/// `mptcp limits set`.
#[derive(Debug, Args)]
#[group(required = true, multiple = true)]
pub struct LimitsSet {
    /// Most extra subflows per connection, 0-8.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=8))]
    pub subflows: Option<u32>,
    /// Most peer-announced addresses used per connection, 0-8.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=8))]
    pub add_addr_accepted: Option<u32>,
}

#[derive(Serialize)]
struct LimitsJson {
    subflows: u32,
    add_addr_accepted: u32,
}

/// Runs one `limits` subcommand.
pub fn run(cmd: LimitsCommand, out: &Output) -> Result<u8, Error> {
    let pm = PathManager::open()?;
    if let LimitsCommand::Set(args) = cmd {
        let current = pm.limits()?;
        pm.set_limits(Limits {
            subflows: args.subflows.unwrap_or(current.subflows),
            add_addr_accepted: args.add_addr_accepted.unwrap_or(current.add_addr_accepted),
        })?;
    }
    let limits = pm.limits()?;
    if out.json {
        out.json(&LimitsJson {
            subflows: limits.subflows,
            add_addr_accepted: limits.add_addr_accepted,
        })?;
    } else {
        let mut t = Table::default();
        t.row(vec![
            Cell::styled("subflows", NAME),
            limits.subflows.to_string().into(),
        ]);
        t.row(vec![
            Cell::styled("add_addr_accepted", NAME),
            limits.add_addr_accepted.to_string().into(),
        ]);
        out.print(&t.render(out))?;
    }
    Ok(EXIT_OK)
}
