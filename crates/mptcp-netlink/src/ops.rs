//! Every path-manager request as an [`Op`]: the message to send and how to read the
//! answer. Shared by the blocking and the async path managers.

use std::net::{IpAddr, SocketAddr};

use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};

use crate::codec::check_unicast;
use crate::codec::framing::{genl_payload, genl_request, Op, NLMSG_HDR_LEN};
use crate::codec::{
    cmd, nla, AddressAttrs, DecodeError, Endpoint, EndpointFlags, Limits, NewEndpoint, PmAttr,
    PmMessage, EVENTS_GROUP, FAMILY_NAME,
};
use crate::Error;

/// What nlctrl says about the `mptcp_pm` family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FamilyInfo {
    pub id: u16,
    pub version: u32,
    pub events_group: Option<u32>,
}

const GENL_HDR_LEN: usize = 4;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_VERSION: u16 = 3;
const CTRL_ATTR_MCAST_GROUPS: u16 = 7;
const CTRL_ATTR_MCAST_GRP_NAME: u16 = 1;
const CTRL_ATTR_MCAST_GRP_ID: u16 = 2;

/// Resolves the family id and the events group through nlctrl.
pub(crate) fn resolve_family() -> Op<FamilyInfo> {
    let request = genl_request(
        0x10, // GENL_ID_CTRL
        GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(FAMILY_NAME.to_string())],
        },
        false,
    );
    Op {
        name: "resolve the mptcp_pm family",
        request,
        finish: Box::new(|replies| {
            let reply = replies
                .first()
                .ok_or_else(|| DecodeError::new("nlctrl sent no reply"))?;
            Ok(parse_family(reply)?)
        }),
    }
}

/// Reads a CTRL_CMD_NEWFAMILY reply with the checked attribute reader (newer kernels add
/// attributes; unknown ones are skipped).
pub(crate) fn parse_family(whole: &[u8]) -> Result<FamilyInfo, DecodeError> {
    let attrs_bytes = whole
        .get(NLMSG_HDR_LEN + GENL_HDR_LEN..)
        .ok_or_else(|| DecodeError::new("nlctrl reply too short"))?;
    let mut id = None;
    let mut version = 0;
    let mut events_group = None;
    for a in nla::attrs(attrs_bytes) {
        let a = a?;
        match a.kind {
            CTRL_ATTR_FAMILY_ID => id = Some(a.u16_ne("family id")?),
            CTRL_ATTR_VERSION => version = a.u32_ne("family version")?,
            CTRL_ATTR_MCAST_GROUPS => {
                for group in nla::attrs(a.value) {
                    let (mut name, mut gid) = (None, None);
                    for g in nla::attrs(group?.value) {
                        let g = g?;
                        match g.kind {
                            CTRL_ATTR_MCAST_GRP_NAME => name = Some(g.string()),
                            CTRL_ATTR_MCAST_GRP_ID => gid = Some(g.u32_ne("group id")?),
                            _ => {}
                        }
                    }
                    if name.as_deref() == Some(EVENTS_GROUP) {
                        events_group = gid;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(FamilyInfo {
        id: id.ok_or_else(|| DecodeError::new("nlctrl reply without a family id"))?,
        version,
        events_group,
    })
}

fn pm_op<R>(
    family: u16,
    name: &'static str,
    message: PmMessage,
    dump: bool,
    finish: impl FnOnce(Vec<PmMessage>) -> Result<R, Error> + Send + 'static,
) -> Op<R> {
    Op {
        name,
        request: genl_request(family, message, dump),
        finish: Box::new(move |replies| {
            let messages = replies
                .iter()
                .map(|r| genl_payload::<PmMessage>(r))
                .collect::<Result<Vec<_>, _>>()?;
            finish(messages)
        }),
    }
}

fn endpoints_of(messages: &[PmMessage]) -> Result<Vec<Endpoint>, Error> {
    messages
        .iter()
        .filter_map(|m| m.addr())
        .map(|a| Endpoint::try_from(a).map_err(Error::Decode))
        .collect()
}

pub(crate) fn add_endpoint(
    family: u16,
    ep: &NewEndpoint,
    ifindex: Option<u32>,
) -> Result<Op<()>, Error> {
    ep.validate()?;
    let message = PmMessage::new(cmd::ADD_ADDR, vec![PmAttr::Addr(ep.to_attrs(ifindex))]);
    Ok(pm_op(family, "add endpoint", message, false, |_| Ok(())))
}

pub(crate) fn list_endpoints(family: u16) -> Op<Vec<Endpoint>> {
    let message = PmMessage::new(cmd::GET_ADDR, vec![]);
    pm_op(family, "list endpoints", message, true, |m| {
        endpoints_of(&m)
    })
}

fn check_id(id: u8) -> Result<(), Error> {
    if id == 0 {
        return Err(Error::Invalid(
            "endpoint id 0 is not an endpoint (it names a connection's initial address): \
             use 1-255"
                .into(),
        ));
    }
    Ok(())
}

fn id_attrs(id: u8) -> AddressAttrs {
    AddressAttrs {
        id: Some(id),
        ..AddressAttrs::default()
    }
}

pub(crate) fn get_endpoint(family: u16, id: u8) -> Result<Op<Endpoint>, Error> {
    check_id(id)?;
    let message = PmMessage::new(cmd::GET_ADDR, vec![PmAttr::Addr(id_attrs(id))]);
    Ok(pm_op(family, "get endpoint", message, false, move |m| {
        endpoints_of(&m)?.into_iter().next().ok_or(Error::NotFound {
            op: "get endpoint",
            message: Some(format!("no endpoint with id {id}")),
        })
    }))
}

pub(crate) fn delete_endpoint(family: u16, id: u8) -> Result<Op<()>, Error> {
    check_id(id)?;
    let message = PmMessage::new(cmd::DEL_ADDR, vec![PmAttr::Addr(id_attrs(id))]);
    Ok(pm_op(family, "delete endpoint", message, false, |_| Ok(())))
}

pub(crate) fn flush_endpoints(family: u16) -> Op<()> {
    let message = PmMessage::new(cmd::FLUSH_ADDRS, vec![]);
    pm_op(family, "flush endpoints", message, false, |_| Ok(()))
}

pub(crate) fn set_endpoint_flags(
    family: u16,
    id: u8,
    flags: EndpointFlags,
) -> Result<Op<()>, Error> {
    check_id(id)?;
    let changeable = EndpointFlags::BACKUP | EndpointFlags::FULLMESH;
    let other = EndpointFlags::from_bits_retain(flags.bits() & !changeable.bits());
    if !other.is_empty() {
        return Err(Error::Invalid(format!(
            "only backup and fullmesh can be changed on an existing endpoint, not \"{other}\": \
             delete and add it again to change the others"
        )));
    }
    let attrs = AddressAttrs {
        id: Some(id),
        flags: Some(flags.bits()),
        ..AddressAttrs::default()
    };
    let message = PmMessage::new(cmd::SET_FLAGS, vec![PmAttr::Addr(attrs)]);
    Ok(pm_op(family, "set endpoint flags", message, false, |_| {
        Ok(())
    }))
}

pub(crate) fn get_limits(family: u16) -> Op<Limits> {
    let message = PmMessage::new(cmd::GET_LIMITS, vec![]);
    pm_op(family, "get limits", message, false, |m| {
        let reply = m
            .first()
            .ok_or_else(|| DecodeError::new("no reply to GET_LIMITS"))?;
        match reply.limits() {
            (Some(subflows), Some(add_addr_accepted)) => Ok(Limits {
                subflows,
                add_addr_accepted,
            }),
            _ => Err(DecodeError::new("GET_LIMITS reply without both limits").into()),
        }
    })
}

pub(crate) fn set_limits(family: u16, limits: Limits) -> Result<Op<()>, Error> {
    limits.validate()?;
    let message = PmMessage::new(
        cmd::SET_LIMITS,
        vec![
            PmAttr::RcvAddAddrs(limits.add_addr_accepted),
            PmAttr::Subflows(limits.subflows),
        ],
    );
    Ok(pm_op(family, "set limits", message, false, |_| Ok(())))
}

pub(crate) fn announce(
    family: u16,
    token: u32,
    id: u8,
    addr: IpAddr,
    port: Option<u16>,
) -> Result<Op<()>, Error> {
    if id == 0 {
        return Err(Error::Invalid(
            "cannot announce id 0: it is the connection's initial address; use 1-255".into(),
        ));
    }
    if port == Some(0) {
        return Err(Error::Invalid(
            "port 0 is not a port: leave the port unset".into(),
        ));
    }
    check_unicast("announced address", addr)?;
    let mut attrs = AddressAttrs::from_ip(addr);
    attrs.id = Some(id);
    attrs.port = port;
    attrs.flags = Some(EndpointFlags::SIGNAL.bits());
    let message = PmMessage::new(
        cmd::ANNOUNCE,
        vec![PmAttr::Token(token), PmAttr::Addr(attrs)],
    );
    Ok(pm_op(
        family,
        "announce address",
        message,
        false,
        |_| Ok(()),
    ))
}

pub(crate) fn remove(family: u16, token: u32, id: u8) -> Op<()> {
    let message = PmMessage::new(cmd::REMOVE, vec![PmAttr::Token(token), PmAttr::LocId(id)]);
    pm_op(family, "remove address", message, false, |_| Ok(()))
}

fn check_pair(local: SocketAddr, remote: SocketAddr) -> Result<(), Error> {
    check_unicast("local address", local.ip())?;
    check_unicast("remote address", remote.ip())?;
    if local.is_ipv4() != remote.is_ipv4() {
        return Err(Error::Invalid(format!(
            "local {local} and remote {remote} are of different address families"
        )));
    }
    if remote.port() == 0 {
        return Err(Error::Invalid(format!("remote {remote} needs a port")));
    }
    Ok(())
}

fn socket_attrs(addr: SocketAddr) -> AddressAttrs {
    let mut attrs = AddressAttrs::from_ip(addr.ip());
    attrs.port = Some(addr.port()).filter(|&p| p != 0);
    attrs
}

pub(crate) fn create_subflow(
    family: u16,
    token: u32,
    sub: &crate::NewSubflow,
) -> Result<Op<()>, Error> {
    if sub.local_id == 0 {
        return Err(Error::Invalid(
            "local id 0 is the connection's initial address: give the new subflow's local \
             address an id of 1-255"
                .into(),
        ));
    }
    check_pair(sub.local, sub.remote)?;
    let mut l = socket_attrs(sub.local);
    l.id = Some(sub.local_id);
    if sub.backup {
        l.flags = Some(crate::EndpointFlags::BACKUP.bits());
    }
    l.ifindex = sub.interface.and_then(|i| i32::try_from(i).ok());
    let message = PmMessage::new(
        cmd::SUBFLOW_CREATE,
        vec![
            PmAttr::Token(token),
            PmAttr::Addr(l),
            PmAttr::AddrRemote(socket_attrs(sub.remote)),
        ],
    );
    Ok(pm_op(family, "create subflow", message, false, |_| Ok(())))
}

pub(crate) fn destroy_subflow(
    family: u16,
    token: u32,
    local: SocketAddr,
    remote: SocketAddr,
) -> Result<Op<()>, Error> {
    check_pair(local, remote)?;
    if local.port() == 0 {
        return Err(Error::Invalid(format!(
            "local {local} needs the subflow's port to name it"
        )));
    }
    let message = PmMessage::new(
        cmd::SUBFLOW_DESTROY,
        vec![
            PmAttr::Token(token),
            PmAttr::Addr(socket_attrs(local)),
            PmAttr::AddrRemote(socket_attrs(remote)),
        ],
    );
    Ok(pm_op(family, "destroy subflow", message, false, |_| Ok(())))
}

pub(crate) fn set_subflow_backup(
    family: u16,
    token: u32,
    local: SocketAddr,
    remote: SocketAddr,
    backup: bool,
) -> Result<Op<()>, Error> {
    check_pair(local, remote)?;
    let mut l = socket_attrs(local);
    l.flags = Some(if backup {
        EndpointFlags::BACKUP.bits()
    } else {
        0
    });
    let message = PmMessage::new(
        cmd::SET_FLAGS,
        vec![
            PmAttr::Token(token),
            PmAttr::Addr(l),
            PmAttr::AddrRemote(socket_attrs(remote)),
        ],
    );
    Ok(pm_op(family, "set subflow backup", message, false, |_| {
        Ok(())
    }))
}
