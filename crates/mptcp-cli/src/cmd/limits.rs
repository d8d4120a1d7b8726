//! `mptcp limits show|set`: the in-kernel path manager's limits.
//!
//! JSON: `{"subflows", "add_addr_accepted"}`, after the change for `set`.

use mptcp_netlink::{Limits, PathManager};
use serde::Serialize;

use crate::cli::LimitsCommand;
use crate::error::{Error, EXIT_OK};
use crate::output::{Cell, Output, Table, NAME};

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
