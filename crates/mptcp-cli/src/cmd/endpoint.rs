//! `mptcp endpoint list|add|del|flush|set`: the in-kernel path manager's endpoints,
//! through [`mptcp_netlink::PathManager`].
//!
//! JSON: an endpoint is `{"id", "address", "port", "flags", "ifindex", "interface"}`
//! ([`EndpointJson`]); `list` prints `{"endpoints": [...]}`, `add` and `set` the
//! endpoint as the kernel now has it, `del` and `flush` `{"deleted": [...]}`.

use std::net::IpAddr;

use clap::{Args, Subcommand};
use mptcp_netlink::{Endpoint, EndpointFlags, NewEndpoint, PathManager};
use serde::Serialize;

use crate::error::{Error, EXIT_OK};
use crate::output::{Cell, Output, Table, DIM, NAME};

pub const ENDPOINT_HELP: &str = "\
Endpoints tell the in-kernel path manager which local addresses to use: `subflow` on
clients (open extra subflows from it), `signal` on servers (announce it to peers).

Examples:
  mptcp endpoint list
  mptcp endpoint add 198.18.1.1 --dev eth1 --subflow
  mptcp endpoint add 198.18.1.2 --signal --port 5202
  mptcp endpoint set --id 2 --backup
  mptcp endpoint del 198.18.1.1
  mptcp endpoint flush

JSON: an endpoint is {\"id\", \"address\", \"port\", \"flags\": [\"signal\"|\"subflow\"|\"backup\"|
\"fullmesh\"|\"implicit\"|\"laminar\"], \"ifindex\", \"interface\"} (left out when unset).
list: {\"endpoints\": [...]}; add and set: the endpoint; del and flush: {\"deleted\": [...]}.";

/// `mptcp endpoint ...`.
#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// List the endpoints.
    #[command(visible_alias = "show")]
    List,
    /// Add an endpoint.
    #[command(after_help = "\
Examples:
  mptcp endpoint add 198.18.1.1 --dev eth1 --subflow          a client's second path
  mptcp endpoint add 198.18.1.1 --dev eth1 --subflow --backup only when the others fail
  mptcp endpoint add 198.18.1.2 --signal                      a server's second address
  mptcp endpoint add 198.18.1.2 --signal --port 5202 --id 9   announced with a port")]
    Add(EndpointAdd),
    /// Delete an endpoint, by id or by address.
    #[command(
        visible_alias = "delete",
        after_help = "Examples:\n  mptcp endpoint del --id 2\n  mptcp endpoint del 198.18.1.1"
    )]
    Del(EndpointRef),
    /// Delete every endpoint.
    Flush,
    /// Change an endpoint's backup and fullmesh flags.
    #[command(
        visible_alias = "change",
        after_help = "Examples:\n  mptcp endpoint set --id 2 --backup\n  \
                      mptcp endpoint set 198.18.1.1 --no-backup --fullmesh"
    )]
    Set(EndpointSet),
}

/// `mptcp endpoint add`.
#[derive(Debug, Args)]
pub struct EndpointAdd {
    /// The local address (IPv4 or IPv6).
    #[arg(value_name = "ADDR")]
    pub addr: IpAddr,
    /// The endpoint id, 1-255 (default: the kernel picks one).
    #[arg(long, value_parser = endpoint_id)]
    pub id: Option<u8>,
    /// A port for a signal endpoint: the kernel listens on it and announces it.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// Bind subflows from this address to this interface.
    #[arg(long, value_name = "IFNAME")]
    pub dev: Option<String>,
    /// Announce this address to peers (servers).
    #[arg(long)]
    pub signal: bool,
    /// Open extra subflows from this address (clients).
    #[arg(long)]
    pub subflow: bool,
    /// Use subflows from this address only when the others fail.
    #[arg(long)]
    pub backup: bool,
    /// Open a subflow from this address to every address of the peer (with --subflow).
    #[arg(long)]
    pub fullmesh: bool,
    /// Use this address for subflows towards addresses the peer announces (Linux 6.18).
    ///
    /// Beside --subflow, Linux 6.18 counts the address again in a connection's used
    /// addresses each time it follows an announcement from it, until the connection
    /// opens no subflow at all (`mptcp doctor` warns of it); --fullmesh follows
    /// announcements without that.
    #[arg(long)]
    pub laminar: bool,
}

/// An endpoint named by `--id N` or by its address.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct EndpointRef {
    /// The endpoint's id.
    #[arg(long, value_parser = endpoint_id)]
    pub id: Option<u8>,
    /// The endpoint's address.
    #[arg(value_name = "ADDR")]
    pub addr: Option<IpAddr>,
}

/// `mptcp endpoint set`.
#[derive(Debug, Args)]
pub struct EndpointSet {
    /// Which endpoint.
    #[command(flatten)]
    pub endpoint: EndpointRef,
    /// What to change.
    #[command(flatten)]
    pub change: FlagChanges,
}

/// The flag changes of `mptcp endpoint set`: at least one.
#[derive(Debug, Args)]
#[group(required = true, multiple = true)]
pub struct FlagChanges {
    /// Make it a backup.
    #[arg(long, conflicts_with = "no_backup")]
    pub backup: bool,
    /// Make it a regular (non-backup) endpoint.
    #[arg(long)]
    pub no_backup: bool,
    /// Turn fullmesh on.
    #[arg(long, conflicts_with = "no_fullmesh")]
    pub fullmesh: bool,
    /// Turn fullmesh off.
    #[arg(long)]
    pub no_fullmesh: bool,
}

/// An endpoint id, 1-255 (0 names a connection's initial address, not an endpoint).
fn endpoint_id(s: &str) -> Result<u8, String> {
    match s.parse::<u8>() {
        Ok(0) => Err("endpoint ids are 1-255 (0 is a connection's initial address)".into()),
        Ok(id) => Ok(id),
        Err(_) => Err("endpoint ids are 1-255".into()),
    }
}

/// An endpoint in JSON.
#[derive(Debug, Serialize)]
pub struct EndpointJson {
    /// 1-255.
    pub id: u8,
    /// The local address.
    pub address: IpAddr,
    /// A signal endpoint's port, else left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Flag names: signal, subflow, backup, fullmesh, implicit, laminar (unknown bits
    /// as hexadecimal).
    pub flags: Vec<String>,
    /// The interface index subflows are bound to, else left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ifindex: Option<u32>,
    /// That interface's name, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
}

impl From<&Endpoint> for EndpointJson {
    fn from(e: &Endpoint) -> Self {
        let mut flags: Vec<String> = e.flags.names().map(str::to_string).collect();
        if e.flags.unknown_bits() != 0 {
            flags.push(format!("{:#x}", e.flags.unknown_bits()));
        }
        EndpointJson {
            id: e.id,
            address: e.address,
            port: e.port,
            flags,
            ifindex: e.ifindex,
            interface: e.interface.clone(),
        }
    }
}

#[derive(Serialize)]
struct Listing {
    endpoints: Vec<EndpointJson>,
}

#[derive(Serialize)]
struct Deleted {
    deleted: Vec<EndpointJson>,
}

/// Runs one `endpoint` subcommand.
pub fn run(cmd: EndpointCommand, out: &Output) -> Result<u8, Error> {
    let pm = PathManager::open()?;
    match cmd {
        EndpointCommand::List => list(&pm, out)?,
        EndpointCommand::Add(args) => add(&pm, &args, out)?,
        EndpointCommand::Del(which) => del(&pm, &which, out)?,
        EndpointCommand::Flush => flush(&pm, out)?,
        EndpointCommand::Set(args) => set(&pm, &args, out)?,
    }
    Ok(EXIT_OK)
}

fn list(pm: &PathManager, out: &Output) -> Result<(), Error> {
    let endpoints = pm.endpoints()?;
    if out.json {
        return out.json(&Listing {
            endpoints: endpoints.iter().map(EndpointJson::from).collect(),
        });
    }
    if endpoints.is_empty() {
        return out.print("no endpoints\n");
    }
    out.print(&table(&endpoints).render(out))
}

/// The endpoints as a table: ID ADDRESS PORT FLAGS DEV.
pub fn table(endpoints: &[Endpoint]) -> Table {
    let mut t = Table::with_header(&["ID", "ADDRESS", "PORT", "FLAGS", "DEV"]);
    for e in endpoints {
        t.row(vec![
            Cell::styled(e.id.to_string(), NAME),
            e.address.to_string().into(),
            e.port
                .map_or_else(|| "-".to_string(), |p| p.to_string())
                .into(),
            e.flags.to_string().into(),
            match (&e.interface, e.ifindex) {
                (Some(name), _) => name.clone().into(),
                (None, Some(index)) => format!("#{index}").into(),
                (None, None) => Cell::styled("-", DIM),
            },
        ]);
    }
    t
}

fn add(pm: &PathManager, args: &EndpointAdd, out: &Output) -> Result<(), Error> {
    let mut flags = EndpointFlags::empty();
    for (on, flag) in [
        (args.signal, EndpointFlags::SIGNAL),
        (args.subflow, EndpointFlags::SUBFLOW),
        (args.backup, EndpointFlags::BACKUP),
        (args.fullmesh, EndpointFlags::FULLMESH),
        (args.laminar, EndpointFlags::LAMINAR),
    ] {
        if on {
            flags.insert(flag);
        }
    }
    let mut new = NewEndpoint::new(args.addr).flags(flags);
    if let Some(id) = args.id {
        new = new.id(id);
    }
    if let Some(port) = args.port {
        new = new.port(port);
    }
    if let Some(dev) = &args.dev {
        new = new.interface(dev.as_str());
    }
    let endpoint = pm.add_endpoint(&new)?;
    if !endpoint
        .flags
        .intersects(EndpointFlags::SIGNAL | EndpointFlags::SUBFLOW | EndpointFlags::LAMINAR)
    {
        tracing::warn!(
            "endpoint {} has neither --signal, --subflow nor --laminar: the path manager \
             will not use it by itself",
            endpoint.address
        );
    }
    if out.json {
        return out.json(&EndpointJson::from(&endpoint));
    }
    out.print(&format!("added {endpoint}\n"))
}

/// The endpoint(s) `which` names; [`Error`] naming the id or address when none does.
fn resolve(pm: &PathManager, which: &EndpointRef) -> Result<Vec<Endpoint>, Error> {
    match (which.id, which.addr) {
        (Some(id), _) => Ok(vec![pm.endpoint(id).map_err(|e| match e {
            mptcp_netlink::Error::NotFound { .. } => {
                Error::msg(format!("no endpoint with id {id}"))
            }
            e => e.into(),
        })?]),
        (None, Some(addr)) => {
            let matching: Vec<Endpoint> = pm
                .endpoints()?
                .into_iter()
                .filter(|e| e.address == addr)
                .collect();
            if matching.is_empty() {
                return Err(Error::msg(format!("no endpoint with address {addr}")));
            }
            Ok(matching)
        }
        // clap requires one of them.
        (None, None) => Err(Error::msg("name the endpoint with --id N or its address")),
    }
}

fn del(pm: &PathManager, which: &EndpointRef, out: &Output) -> Result<(), Error> {
    let endpoints = match which.addr {
        Some(addr) if which.id.is_none() => pm.delete_endpoint_by_address(addr)?,
        _ => {
            let endpoints = resolve(pm, which)?;
            for e in &endpoints {
                pm.delete_endpoint(e.id)?;
            }
            endpoints
        }
    };
    print_deleted(&endpoints, out)
}

fn flush(pm: &PathManager, out: &Output) -> Result<(), Error> {
    let endpoints = pm.endpoints()?;
    pm.flush_endpoints()?;
    print_deleted(&endpoints, out)
}

fn print_deleted(endpoints: &[Endpoint], out: &Output) -> Result<(), Error> {
    if out.json {
        return out.json(&Deleted {
            deleted: endpoints.iter().map(EndpointJson::from).collect(),
        });
    }
    if endpoints.is_empty() {
        return out.print("no endpoints to delete\n");
    }
    let text: String = endpoints.iter().map(|e| format!("deleted {e}\n")).collect();
    out.print(&text)
}

fn set(pm: &PathManager, args: &EndpointSet, out: &Output) -> Result<(), Error> {
    let mut endpoints = resolve(pm, &args.endpoint)?;
    if endpoints.len() > 1 {
        let ids: Vec<String> = endpoints.iter().map(|e| e.id.to_string()).collect();
        return Err(Error::msg(format!(
            "several endpoints have address {} (ids {}): name one with --id",
            endpoints[0].address,
            ids.join(", ")
        )));
    }
    let endpoint = endpoints.remove(0);
    // The kernel sets backup and fullmesh together: start from the current pair.
    let mut flags = EndpointFlags::from_bits_retain(
        endpoint.flags.bits() & (EndpointFlags::BACKUP | EndpointFlags::FULLMESH).bits(),
    );
    let c = &args.change;
    for (set, clear, flag) in [
        (c.backup, c.no_backup, EndpointFlags::BACKUP),
        (c.fullmesh, c.no_fullmesh, EndpointFlags::FULLMESH),
    ] {
        if set {
            flags.insert(flag);
        }
        if clear {
            flags.remove(flag);
        }
    }
    pm.set_endpoint_flags(endpoint.id, flags)?;
    let now = pm.endpoint(endpoint.id)?;
    if out.json {
        return out.json(&EndpointJson::from(&now));
    }
    out.print(&format!("changed {now}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_ids() {
        assert_eq!(endpoint_id("7").unwrap(), 7);
        assert!(endpoint_id("0").is_err());
        assert!(endpoint_id("256").is_err());
    }
}
