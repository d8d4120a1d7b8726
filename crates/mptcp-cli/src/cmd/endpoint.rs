//! `mptcp endpoint list|add|del|flush|set`: the in-kernel path manager's endpoints,
//! through [`mptcp_netlink::PathManager`].
//!
//! JSON: an endpoint is `{"id", "address", "port", "flags", "ifindex", "interface"}`
//! ([`EndpointJson`]); `list` prints `{"endpoints": [...]}`, `add` and `set` the
//! endpoint as the kernel now has it, `del` and `flush` `{"deleted": [...]}`.

use std::net::IpAddr;

use mptcp_netlink::{Endpoint, EndpointFlags, NewEndpoint, PathManager};
use serde::Serialize;

use crate::cli::{EndpointAdd, EndpointCommand, EndpointRef, EndpointSet};
use crate::error::{Error, EXIT_OK};
use crate::output::{Cell, Output, Table, DIM, NAME};

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
