//! MPTCP connections of a namespace, through `sock_diag` (what `ss -M` and `ss -tiO`
//! show).

use std::fmt;
use std::net::SocketAddr;

use mptcp_net::{MptcpInfo, TcpState};
use netlink_packet_core::{
    Emitable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable, NLM_F_ACK,
    NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_packet_sock_diag::{AF_INET, AF_INET6, IPPROTO_TCP, SOCK_DIAG_BY_FAMILY};

use crate::codec::diag::{
    parse_inet_diag_msg, parse_mptcp_info, InetDiagMsg, SubflowFlags, INET_DIAG_REQ_PROTOCOL,
    IPPROTO_MPTCP,
};
use crate::codec::framing::{Op, NLMSG_HDR_LEN};
use crate::codec::nla::Writer;
use crate::socket::NlSocket;
use crate::Error;

/// An `inet_diag_req_v2` from `netlink-packet-sock-diag`, followed by request attributes
/// (which that crate does not model): `INET_DIAG_REQ_PROTOCOL` names protocols above 255.
#[derive(Debug)]
struct DiagRequest {
    /// `SOCK_DIAG_BY_FAMILY` or [`SOCK_DESTROY`].
    ty: u16,
    request: InetRequest,
    attrs: Vec<u8>,
}

/// `SOCK_DESTROY` (`linux/sock_diag.h`): abort the one socket the request names.
const SOCK_DESTROY: u16 = 21;

impl DiagRequest {
    /// The whole netlink message, with header `flags`.
    fn into_message(self, flags: u16) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(self));
        msg.finalize();
        let mut request = vec![0; msg.buffer_len()];
        msg.serialize(&mut request);
        request
    }
}

impl NetlinkSerializable for DiagRequest {
    fn message_type(&self) -> u16 {
        self.ty
    }

    fn buffer_len(&self) -> usize {
        self.request.buffer_len() + self.attrs.len()
    }

    fn serialize(&self, buffer: &mut [u8]) {
        let n = self.request.buffer_len();
        self.request.emit(&mut buffer[..n]);
        buffer[n..n + self.attrs.len()].copy_from_slice(&self.attrs);
    }
}

/// A dump of the sockets of `family`: MPTCP ones when `mptcp`, else TCP ones; with
/// `INET_DIAG_INFO` (which also brings a TCP socket's ULP nest).
fn dump(family: u8, mptcp: bool) -> Op<Vec<InetDiagMsg>> {
    dump_states(family, mptcp, StateFlags::all())
}

/// A dump of the sockets of `family` in `states`, as [`dump`].
fn dump_states(family: u8, mptcp: bool, states: StateFlags) -> Op<Vec<InetDiagMsg>> {
    let socket_id = if family == AF_INET {
        SocketId::new_v4()
    } else {
        SocketId::new_v6()
    };
    let mut attrs = Writer::new();
    if mptcp {
        attrs.u32_ne(INET_DIAG_REQ_PROTOCOL, IPPROTO_MPTCP);
    }
    let payload = DiagRequest {
        ty: SOCK_DIAG_BY_FAMILY,
        request: InetRequest {
            family,
            // The real protocol is in INET_DIAG_REQ_PROTOCOL when there is one.
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::INFO,
            states,
            socket_id,
        },
        attrs: attrs.into_bytes(),
    };
    let request = payload.into_message(NLM_F_REQUEST | NLM_F_DUMP);
    Op {
        name: if mptcp {
            "list MPTCP sockets"
        } else {
            "list TCP subflows"
        },
        request,
        finish: Box::new(|replies| {
            replies
                .iter()
                .map(|r| {
                    parse_inet_diag_msg(r.get(NLMSG_HDR_LEN..).unwrap_or(&[]))
                        .map_err(Error::Decode)
                })
                .collect()
        }),
    }
}

/// A subflow of an MPTCP connection: one TCP socket.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Subflow {
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
    /// TCP state.
    pub state: TcpState,
    /// Local address id (0 for the initial subflow's address).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub local_id: Option<u8>,
    /// Remote address id.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub remote_id: Option<u8>,
    /// The subflow flags (`MPTCP_SUBFLOW_FLAG_*`): MP_CAPABLE or MP_JOIN, backup, ...
    pub flags: SubflowFlags,
    /// The peer's token.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub token_remote: Option<u32>,
    /// Bound interface index, 0 for none.
    pub ifindex: u32,
    /// The socket's inode.
    pub inode: u32,
    /// The socket's cookie (`idiag_cookie`): names this very socket to
    /// [`abort_subflow`], never a later one that reused its addresses.
    pub cookie: u64,
    /// The subflow's `struct tcp_info` (`INET_DIAG_INFO`): RTT, RTO, bytes acked,
    /// unacked segments, ... `None` when the kernel sent none or it did not parse.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub tcp: Option<mptcp_net::TcpStats>,
}

/// An MPTCP socket of the namespace (a connection or a listener) with its subflows.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Connection {
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port (unspecified for a listener).
    pub remote: SocketAddr,
    /// The MPTCP socket's state (`TCP_*` numbering).
    pub state: TcpState,
    /// The connection token (`mptcpi_token`), as in path-manager events.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub token: Option<u32>,
    /// The connection's `struct mptcp_info` (`INET_DIAG_INFO`), when the kernel sent it.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub info: Option<MptcpInfo>,
    /// The subflows, matched to the connection by token; empty for a listener and for
    /// a connection that fell back to TCP before its subflows were tagged.
    pub subflows: Vec<Subflow>,
    /// The socket's owner.
    pub uid: u32,
    /// The socket's inode.
    pub inode: u32,
}

impl Connection {
    /// The connection fell back to plain TCP (`MPTCP_INFO_FLAG_FALLBACK`).
    pub fn fallback(&self) -> bool {
        self.info.as_ref().is_some_and(|i| i.flags.fallback())
    }

    /// A listening socket.
    pub fn is_listener(&self) -> bool {
        self.state == TcpState::Listen
    }

    /// The connection token; none for a listener (whose token means nothing).
    pub fn connection_token(&self) -> Option<u32> {
        self.token.filter(|_| !self.is_listener())
    }
}

/// Like `ss -M`, then one indented line per subflow:
/// `ESTAB 198.18.0.1:41112 198.18.0.2:5201 token 0xdde0e690 subflows 2`.
impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.state.ss_name(), self.local, self.remote)?;
        if let Some(token) = self.token {
            write!(f, " token {token:#010x}")?;
        }
        if self.fallback() {
            f.write_str(" fallback")?;
        }
        if !self.is_listener() {
            write!(f, " subflows {}", self.subflows.len())?;
        }
        for s in &self.subflows {
            write!(f, "\n  {s}")?;
        }
        Ok(())
    }
}

/// `ESTAB 198.18.1.1:34871 198.18.0.2:5201 id 1/0 join_loc,fully_established`.
impl fmt::Display for Subflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.state.ss_name(), self.local, self.remote)?;
        if let (Some(l), Some(r)) = (self.local_id, self.remote_id) {
            write!(f, " id {l}/{r}")?;
        }
        if self.flags.0 != 0 {
            write!(f, " {}", self.flags)?;
        }
        Ok(())
    }
}

/// Lists the MPTCP sockets of the calling thread's network namespace, IPv4 and IPv6,
/// with their `mptcp_info` and subflows.
///
/// `sock_diag` dumps: the MPTCP sockets of each address family (protocol
/// `IPPROTO_MPTCP` through `INET_DIAG_REQ_PROTOCOL`), then the TCP sockets whose ULP is
/// `mptcp` (the subflows), matched to their connection by token. The TCP dumps are
/// only made where subflows can be: IPv4 when there is any connection (an IPv6
/// connection can have IPv4 subflows), IPv6 only when there is an IPv6 connection (an
/// IPv4 one never has IPv6 subflows). Each TCP dump walks the kernel's whole
/// established-socket table, so skipping one saves a few milliseconds. Needs no
/// privilege.
///
/// ```no_run
/// for conn in mptcp_netlink::connections()? {
///     println!("{conn}");
/// }
/// # Ok::<(), mptcp_netlink::Error>(())
/// ```
///
/// # Errors
/// [`Error::Io`] if the `NETLINK_SOCK_DIAG` socket cannot be used; the kernel's error
/// otherwise (a kernel without MPTCP diag support answers `ENOENT`).
pub fn connections() -> Result<Vec<Connection>, Error> {
    let mut sock = NlSocket::open(netlink_sys::protocols::NETLINK_SOCK_DIAG)?;
    let mut conns = Vec::new();
    let mut subflows = Vec::new();
    let mut connected = [false; 2];
    for (i, family) in [AF_INET, AF_INET6].into_iter().enumerate() {
        let found = sock.run(dump(family, true))?;
        connected[i] = found
            .iter()
            .any(|m| TcpState::from_raw(m.state) != TcpState::Listen);
        conns.extend(found);
    }
    let [v4, v6] = connected;
    for (family, wanted) in [(AF_INET, v4 || v6), (AF_INET6, v6)] {
        if wanted {
            subflows.extend(
                sock.run(dump(family, false))?
                    .into_iter()
                    .filter(|m| m.ulp_mptcp.is_some()),
            );
        }
    }
    Ok(assemble(conns, subflows))
}

/// The local addresses of the namespace's listening MPTCP sockets, IPv4 and IPv6 (an
/// unspecified address is a wildcard listener). One `sock_diag` dump per family of the
/// listening sockets alone: no connection and no subflow is walked, so it is cheap
/// enough to poll. Needs no privilege.
///
/// ```no_run
/// for addr in mptcp_netlink::listeners()? {
///     println!("MPTCP listener on {addr}");
/// }
/// # Ok::<(), mptcp_netlink::Error>(())
/// ```
///
/// # Errors
/// As [`connections`].
pub fn listeners() -> Result<Vec<SocketAddr>, Error> {
    let mut sock = NlSocket::open(netlink_sys::protocols::NETLINK_SOCK_DIAG)?;
    let mut out = Vec::new();
    for family in [AF_INET, AF_INET6] {
        out.extend(
            sock.run(dump_states(family, true, StateFlags::LISTEN))?
                .into_iter()
                // The kernel filters by state; a reply in another one is not a listener.
                .filter(|m| TcpState::from_raw(m.state) == TcpState::Listen)
                .map(|m| m.local),
        );
    }
    Ok(out)
}

/// Aborts one subflow as `ss -K` does (`SOCK_DESTROY`): the kernel resets it (a RST
/// to the peer), and its MPTCP connection closes it, freeing its place among the
/// connection's subflows (the in-kernel path manager accepts at most its `subflows`
/// limit of joins). Works whatever path manager the connection has; the socket is
/// named by its addresses, bound interface and cookie, so a later socket that reused
/// the addresses is never touched.
///
/// ```no_run
/// // Reset every subflow of the namespace that has received nothing for a minute.
/// for conn in mptcp_netlink::connections()? {
///     for sf in &conn.subflows {
///         let silent = sf.tcp.as_ref().map(|t| t.last_data_recv.min(t.last_ack_recv));
///         if silent.is_some_and(|d| d.as_secs() >= 60) {
///             mptcp_netlink::abort_subflow(sf)?;
///         }
///     }
/// }
/// # Ok::<(), mptcp_netlink::Error>(())
/// ```
///
/// # Errors
/// [`Error::Kernel`] with `ENOENT` when the socket is gone, `EPERM` without
/// CAP_NET_ADMIN, `EOPNOTSUPP` when the kernel lacks `CONFIG_INET_DIAG_DESTROY`; as
/// [`connections`] when the netlink socket cannot be opened.
pub fn abort_subflow(subflow: &Subflow) -> Result<(), Error> {
    let mut sock = NlSocket::open(netlink_sys::protocols::NETLINK_SOCK_DIAG)?;
    sock.run(destroy_request(subflow))
}

/// The `SOCK_DESTROY` request for `subflow`'s TCP socket.
fn destroy_request(subflow: &Subflow) -> Op<()> {
    let family = if subflow.local.is_ipv4() {
        AF_INET
    } else {
        AF_INET6
    };
    let low = (subflow.cookie as u32).to_ne_bytes();
    let high = ((subflow.cookie >> 32) as u32).to_ne_bytes();
    let mut cookie = [0u8; 8];
    cookie[..4].copy_from_slice(&low);
    cookie[4..].copy_from_slice(&high);
    let payload = DiagRequest {
        ty: SOCK_DESTROY,
        request: InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states: StateFlags::all(),
            socket_id: SocketId {
                source_port: subflow.local.port(),
                destination_port: subflow.remote.port(),
                source_address: subflow.local.ip(),
                destination_address: subflow.remote.ip(),
                interface_id: subflow.ifindex,
                cookie,
            },
        },
        attrs: Vec::new(),
    };
    let request = payload.into_message(NLM_F_REQUEST | NLM_F_ACK);
    Op {
        name: "abort a subflow",
        request,
        finish: Box::new(|_| Ok(())),
    }
}

/// Builds the connections from the MPTCP and the subflow sockets.
fn assemble(conns: Vec<InetDiagMsg>, subflows: Vec<InetDiagMsg>) -> Vec<Connection> {
    // Subflows by token, in dump order: one pass instead of one scan per connection
    // (1,000 connections and 2,000 subflows were 2 million comparisons).
    let mut by_token: std::collections::HashMap<u32, Vec<&InetDiagMsg>> =
        std::collections::HashMap::new();
    for s in &subflows {
        if let Some(token) = s.ulp_mptcp.as_ref().and_then(|u| u.token_local) {
            by_token.entry(token).or_default().push(s);
        }
    }
    conns
        .into_iter()
        .map(|m| {
            let info = m.info.as_deref().and_then(|b| match parse_mptcp_info(b) {
                Ok(info) => Some(info),
                Err(e) => {
                    tracing::warn!("ignoring the mptcp_info of {}: {e}", m.local);
                    None
                }
            });
            let token = info.as_ref().map(|i| i.token);
            let state = TcpState::from_raw(m.state);
            let subflows = match token {
                Some(token) if state != TcpState::Listen => by_token
                    .get(&token)
                    .into_iter()
                    .flatten()
                    .map(|s| {
                        let ulp = s.ulp_mptcp.clone().unwrap_or_default();
                        Subflow {
                            local: s.local,
                            remote: s.remote,
                            state: TcpState::from_raw(s.state),
                            local_id: ulp.local_id,
                            remote_id: ulp.remote_id,
                            flags: ulp.flags,
                            token_remote: ulp.token_remote,
                            ifindex: s.ifindex,
                            inode: s.inode,
                            cookie: s.cookie,
                            tcp: s
                                .info
                                .as_deref()
                                .and_then(|b| mptcp_net::info::wire::parse_tcp_info(b).ok()),
                        }
                    })
                    .collect(),
                _ => Vec::new(),
            };
            Connection {
                local: m.local,
                remote: m.remote,
                state,
                token,
                info,
                subflows,
                uid: m.uid,
                inode: m.inode,
            }
        })
        .collect()
}
