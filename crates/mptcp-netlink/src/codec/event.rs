//! Path-manager events (`mptcp_pm_events` multicast group).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use netlink_packet_core::{Emitable, ParseableParametrized};
use netlink_packet_generic::{GenlFamily, GenlHeader};

use super::nla::{attrs, Writer};
use super::{event_attr as ea, DecodeError, FAMILY_NAME, FAMILY_VERSION};

/// What happened (`MPTCP_EVENT_*`; the generic netlink command of the notification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A connection was created (the first subflow's SYN); `token`, addresses, ports.
    Created,
    /// A connection is established and may open more subflows.
    Established,
    /// A connection is closed; `token`.
    Closed,
    /// The peer announced an address (ADD_ADDR); `token`, `remote_id`, `remote`.
    Announced,
    /// The peer withdrew an address (RM_ADDR); `token`, `remote_id`.
    Removed,
    /// A subflow is established; `token`, ids, addresses, `backup`, `ifindex`.
    SubEstablished,
    /// A subflow was closed; as [`SubEstablished`](Self::SubEstablished) plus `error`,
    /// `reset_reason`, `reset_flags` when known.
    SubClosed,
    /// A subflow's backup flag changed.
    SubPriority,
    /// The path manager opened a listener (for a `signal` endpoint with a port).
    ListenerCreated,
    /// Such a listener was closed.
    ListenerClosed,
    /// An event number this crate does not know.
    Unknown(u8),
}

impl EventKind {
    /// The kind of event number `n`.
    pub fn from_number(n: u8) -> Self {
        match n {
            1 => EventKind::Created,
            2 => EventKind::Established,
            3 => EventKind::Closed,
            6 => EventKind::Announced,
            7 => EventKind::Removed,
            10 => EventKind::SubEstablished,
            11 => EventKind::SubClosed,
            13 => EventKind::SubPriority,
            15 => EventKind::ListenerCreated,
            16 => EventKind::ListenerClosed,
            n => EventKind::Unknown(n),
        }
    }

    /// The event number (`MPTCP_EVENT_*`).
    pub fn number(self) -> u8 {
        match self {
            EventKind::Created => 1,
            EventKind::Established => 2,
            EventKind::Closed => 3,
            EventKind::Announced => 6,
            EventKind::Removed => 7,
            EventKind::SubEstablished => 10,
            EventKind::SubClosed => 11,
            EventKind::SubPriority => 13,
            EventKind::ListenerCreated => 15,
            EventKind::ListenerClosed => 16,
            EventKind::Unknown(n) => n,
        }
    }

    /// A short name: `created`, `sub_established`, ... (`unknown_N` for others).
    pub fn name(self) -> std::borrow::Cow<'static, str> {
        let s = match self {
            EventKind::Created => "created",
            EventKind::Established => "established",
            EventKind::Closed => "closed",
            EventKind::Announced => "announced",
            EventKind::Removed => "removed",
            EventKind::SubEstablished => "sub_established",
            EventKind::SubClosed => "sub_closed",
            EventKind::SubPriority => "sub_priority",
            EventKind::ListenerCreated => "listener_created",
            EventKind::ListenerClosed => "listener_closed",
            EventKind::Unknown(n) => return format!("unknown_{n}").into(),
        };
        s.into()
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

/// Why a subflow was reset (`MPTCP_RST_E*`, from the MP_TCPRST option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResetReason {
    /// `MPTCP_RST_EUNSPEC` (0): unspecified.
    Unspecified,
    /// `MPTCP_RST_EMPTCP` (1): an MPTCP-specific error.
    Mptcp,
    /// `MPTCP_RST_ERESOURCE` (2): lack of resources.
    Resource,
    /// `MPTCP_RST_EPROHIBIT` (3): administratively prohibited.
    Prohibited,
    /// `MPTCP_RST_EWQ2BIG` (4): too much outstanding data.
    WqTooBig,
    /// `MPTCP_RST_EBADPERF` (5): unacceptable performance.
    BadPerformance,
    /// `MPTCP_RST_EMIDDLEBOX` (6): middlebox interference.
    Middlebox,
    /// A reason this crate does not know.
    Other(u32),
}

impl ResetReason {
    /// The reason of code `n`.
    pub fn from_code(n: u32) -> Self {
        match n {
            0 => ResetReason::Unspecified,
            1 => ResetReason::Mptcp,
            2 => ResetReason::Resource,
            3 => ResetReason::Prohibited,
            4 => ResetReason::WqTooBig,
            5 => ResetReason::BadPerformance,
            6 => ResetReason::Middlebox,
            n => ResetReason::Other(n),
        }
    }

    /// The code on the wire.
    pub fn code(self) -> u32 {
        match self {
            ResetReason::Unspecified => 0,
            ResetReason::Mptcp => 1,
            ResetReason::Resource => 2,
            ResetReason::Prohibited => 3,
            ResetReason::WqTooBig => 4,
            ResetReason::BadPerformance => 5,
            ResetReason::Middlebox => 6,
            ResetReason::Other(n) => n,
        }
    }
}

impl fmt::Display for ResetReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResetReason::Unspecified => f.write_str("unspecified"),
            ResetReason::Mptcp => f.write_str("mptcp"),
            ResetReason::Resource => f.write_str("resource"),
            ResetReason::Prohibited => f.write_str("prohibited"),
            ResetReason::WqTooBig => f.write_str("wq_too_big"),
            ResetReason::BadPerformance => f.write_str("bad_performance"),
            ResetReason::Middlebox => f.write_str("middlebox"),
            ResetReason::Other(n) => write!(f, "reason_{n}"),
        }
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for ResetReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The event flags (`MPTCP_ATTR_FLAGS`, `MPTCP_PM_EV_FLAG_*`); unknown bits are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EventFlags(pub u16);

impl EventFlags {
    /// `MPTCP_PM_EV_FLAG_DENY_JOIN_ID0`: the peer refuses joins to its initial address.
    pub const DENY_JOIN_ID0: u16 = 1 << 0;
    /// `MPTCP_PM_EV_FLAG_SERVER_SIDE`: this host is the server of the connection.
    pub const SERVER_SIDE: u16 = 1 << 1;

    /// The peer refuses joins to its initial address.
    pub fn deny_join_id0(self) -> bool {
        self.0 & Self::DENY_JOIN_ID0 != 0
    }

    /// This host accepted the connection.
    pub fn server_side(self) -> bool {
        self.0 & Self::SERVER_SIDE != 0
    }
}

impl fmt::Display for EventFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.deny_join_id0() {
            parts.push("deny_join_id0".to_string());
        }
        if self.server_side() {
            parts.push("server_side".to_string());
        }
        let unknown = self.0 & !(Self::DENY_JOIN_ID0 | Self::SERVER_SIDE);
        if unknown != 0 {
            parts.push(format!("{unknown:#x}"));
        }
        f.write_str(&parts.join(","))
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for EventFlags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A path-manager event with every attribute the kernel sent.
///
/// Which attributes are present depends on [`kind`](Self::kind) (see [`EventKind`]);
/// absent ones are `None`. Addresses come with their ports: an address sent without a
/// port gets port 0.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The connection token (`MPTCP_ATTR_TOKEN`).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub token: Option<u32>,
    /// The local address and port (`SADDR4`/`SADDR6`, `SPORT`).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub local: Option<SocketAddr>,
    /// The remote address and port (`DADDR4`/`DADDR6`, `DPORT`).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub remote: Option<SocketAddr>,
    /// The local address id (`LOC_ID`).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub local_id: Option<u8>,
    /// The remote address id (`REM_ID`).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub remote_id: Option<u8>,
    /// The address family (`FAMILY`), 2 or 10.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub family: Option<u16>,
    /// The subflow is a backup (`BACKUP`).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub backup: Option<bool>,
    /// The subflow's socket error, an errno (`ERROR`).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub error: Option<u8>,
    /// Event flags (`FLAGS`).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub flags: Option<EventFlags>,
    /// ADD_ADDR timeout (`TIMEOUT`).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub timeout: Option<u32>,
    /// Interface index of the subflow (`IF_IDX`).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub ifindex: Option<u32>,
    /// Why the subflow was reset (`RESET_REASON`).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub reset_reason: Option<ResetReason>,
    /// MP_TCPRST flags (`RESET_FLAGS`).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub reset_flags: Option<u32>,
    /// This host is the server (`SERVER_SIDE`, or the `server_side` event flag).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub server_side: Option<bool>,
}

impl Event {
    /// An event of `kind` with no attribute.
    pub fn new(kind: EventKind) -> Self {
        Event {
            kind,
            token: None,
            local: None,
            remote: None,
            local_id: None,
            remote_id: None,
            family: None,
            backup: None,
            error: None,
            flags: None,
            timeout: None,
            ifindex: None,
            reset_reason: None,
            reset_flags: None,
            server_side: None,
        }
    }

    /// Parses the attributes of event number `command`. Unknown attributes are skipped.
    pub fn parse(command: u8, bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut e = Event::new(EventKind::from_number(command));
        let (mut saddr, mut daddr): (Option<IpAddr>, Option<IpAddr>) = (None, None);
        let (mut sport, mut dport) = (None, None);
        let mut server_side_attr = None;
        for a in attrs(bytes) {
            let a = a?;
            match a.kind {
                ea::TOKEN => e.token = Some(a.u32_ne("token")?),
                ea::FAMILY => e.family = Some(a.u16_ne("family")?),
                ea::LOC_ID => e.local_id = Some(a.u8("loc_id")?),
                ea::REM_ID => e.remote_id = Some(a.u8("rem_id")?),
                ea::SADDR4 => saddr = Some(a.ipv4("saddr4")?.into()),
                ea::SADDR6 => saddr = Some(a.ipv6("saddr6")?.into()),
                ea::DADDR4 => daddr = Some(a.ipv4("daddr4")?.into()),
                ea::DADDR6 => daddr = Some(a.ipv6("daddr6")?.into()),
                ea::SPORT => sport = Some(a.u16_be("sport")?),
                ea::DPORT => dport = Some(a.u16_be("dport")?),
                ea::BACKUP => e.backup = Some(a.u8("backup")? != 0),
                ea::ERROR => e.error = Some(a.u8("error")?),
                ea::FLAGS => e.flags = Some(EventFlags(a.u16_ne("flags")?)),
                ea::TIMEOUT => e.timeout = Some(a.u32_ne("timeout")?),
                ea::IF_IDX => e.ifindex = Some(a.u32_ne("if_idx")?),
                ea::RESET_REASON => {
                    e.reset_reason = Some(ResetReason::from_code(a.u32_ne("reset_reason")?))
                }
                ea::RESET_FLAGS => e.reset_flags = Some(a.u32_ne("reset_flags")?),
                ea::SERVER_SIDE => server_side_attr = Some(a.u8("server_side")? != 0),
                _ => {}
            }
        }
        e.local = saddr.map(|ip| SocketAddr::new(ip, sport.unwrap_or(0)));
        e.remote = daddr.map(|ip| SocketAddr::new(ip, dport.unwrap_or(0)));
        let flag_side = e.flags.map(|f| f.server_side());
        e.server_side = match (server_side_attr, flag_side) {
            (Some(a), Some(f)) => Some(a || f),
            (a, f) => a.or(f),
        };
        Ok(e)
    }

    /// The attribute bytes of this event, as the kernel would send them (for tests and
    /// replay tools).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        if let Some(v) = self.token {
            w.u32_ne(ea::TOKEN, v);
        }
        if let Some(v) = self.family {
            w.u16_ne(ea::FAMILY, v);
        }
        if let Some(v) = self.local_id {
            w.u8(ea::LOC_ID, v);
        }
        if let Some(v) = self.remote_id {
            w.u8(ea::REM_ID, v);
        }
        // The kernel's order: both addresses, then both ports.
        for (sa, k4, k6) in [
            (self.local, ea::SADDR4, ea::SADDR6),
            (self.remote, ea::DADDR4, ea::DADDR6),
        ] {
            match sa.map(|sa| sa.ip()) {
                Some(IpAddr::V4(ip)) => {
                    w.bytes(k4, &ip.octets());
                }
                Some(IpAddr::V6(ip)) => {
                    w.bytes(k6, &ip.octets());
                }
                None => {}
            }
        }
        for (sa, kp) in [(self.local, ea::SPORT), (self.remote, ea::DPORT)] {
            if let Some(sa) = sa {
                w.bytes(kp, &sa.port().to_be_bytes());
            }
        }
        if let Some(v) = self.backup {
            w.u8(ea::BACKUP, v.into());
        }
        if let Some(v) = self.error {
            w.u8(ea::ERROR, v);
        }
        if let Some(v) = self.flags {
            w.u16_ne(ea::FLAGS, v.0);
        }
        if let Some(v) = self.timeout {
            w.u32_ne(ea::TIMEOUT, v);
        }
        if let Some(v) = self.ifindex {
            w.u32_ne(ea::IF_IDX, v);
        }
        if let Some(v) = self.reset_reason {
            w.u32_ne(ea::RESET_REASON, v.code());
        }
        if let Some(v) = self.reset_flags {
            w.u32_ne(ea::RESET_FLAGS, v);
        }
        if let Some(v) = self.server_side {
            w.u8(ea::SERVER_SIDE, v.into());
        }
        w.into_bytes()
    }
}

/// `kind key=value ...` with the attributes that are present, e.g.
/// `sub_established token=0x1c2d3e4f local=198.18.1.1:40123 remote=198.18.0.2:5201
/// local_id=1 remote_id=0 backup=false ifindex=3`.
impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(v) = self.token {
            write!(f, " token={v:#010x}")?;
        }
        if let Some(v) = self.local {
            write!(f, " local={v}")?;
        }
        if let Some(v) = self.remote {
            write!(f, " remote={v}")?;
        }
        if let Some(v) = self.local_id {
            write!(f, " local_id={v}")?;
        }
        if let Some(v) = self.remote_id {
            write!(f, " remote_id={v}")?;
        }
        if let Some(v) = self.backup {
            write!(f, " backup={v}")?;
        }
        if let Some(v) = self.error {
            write!(f, " error={v}")?;
        }
        if let Some(v) = self.flags {
            if v.0 != 0 {
                write!(f, " flags={v}")?;
            }
        }
        if let Some(v) = self.timeout {
            write!(f, " timeout={v}")?;
        }
        if let Some(v) = self.ifindex {
            write!(f, " ifindex={v}")?;
        }
        if let Some(v) = self.reset_reason {
            write!(f, " reset_reason={v}")?;
        }
        if let Some(v) = self.reset_flags {
            write!(f, " reset_flags={v:#x}")?;
        }
        if let Some(v) = self.server_side {
            write!(f, " server_side={v}")?;
        }
        Ok(())
    }
}

/// An event as the payload of a `netlink_packet_generic::GenlMessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMessage(pub Event);

impl GenlFamily for EventMessage {
    fn family_name() -> &'static str {
        FAMILY_NAME
    }

    fn command(&self) -> u8 {
        self.0.kind.number()
    }

    fn version(&self) -> u8 {
        FAMILY_VERSION
    }
}

impl Emitable for EventMessage {
    fn buffer_len(&self) -> usize {
        self.0.to_bytes().len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        let bytes = self.0.to_bytes();
        let n = bytes.len().min(buffer.len());
        buffer[..n].copy_from_slice(&bytes[..n]);
    }
}

impl ParseableParametrized<[u8], GenlHeader> for EventMessage {
    fn parse_with_param(
        buf: &[u8],
        header: GenlHeader,
    ) -> Result<Self, netlink_packet_core::DecodeError> {
        Ok(EventMessage(Event::parse(header.cmd, buf)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::AF_INET6;

    /// A SUB_ESTABLISHED event as 6.18 sends it for an IPv4 subflow.
    pub(crate) const SUB_ESTABLISHED: [u8; 72] = [
        8, 0, 1, 0, 0x4f, 0x3e, 0x2d, 0x1c, // token 0x1c2d3e4f
        6, 0, 2, 0, 2, 0, 0, 0, // family AF_INET
        5, 0, 3, 0, 1, 0, 0, 0, // loc_id 1
        5, 0, 4, 0, 0, 0, 0, 0, // rem_id 0
        8, 0, 5, 0, 198, 18, 1, 1, // saddr4
        8, 0, 7, 0, 198, 18, 0, 2, // daddr4
        6, 0, 9, 0, 0x9c, 0xbb, 0, 0, // sport 40123 (network order)
        6, 0, 10, 0, 0x14, 0x51, 0, 0, // dport 5201
        5, 0, 11, 0, 0, 0, 0, 0, // backup 0
    ];

    #[test]
    fn sub_established_fixture() {
        let e = Event::parse(10, &SUB_ESTABLISHED).unwrap();
        assert_eq!(e.kind, EventKind::SubEstablished);
        assert_eq!(e.token, Some(0x1c2d_3e4f));
        assert_eq!(e.local, Some("198.18.1.1:40123".parse().unwrap()));
        assert_eq!(e.remote, Some("198.18.0.2:5201".parse().unwrap()));
        assert_eq!(
            (e.local_id, e.remote_id, e.backup),
            (Some(1), Some(0), Some(false))
        );
        assert_eq!(
            e.to_string(),
            "sub_established token=0x1c2d3e4f local=198.18.1.1:40123 remote=198.18.0.2:5201 \
             local_id=1 remote_id=0 backup=false"
        );
        assert_eq!(e.to_bytes(), SUB_ESTABLISHED);
    }

    #[test]
    fn ipv6_reset_and_server_side() {
        let mut e = Event::new(EventKind::SubClosed);
        e.token = Some(7);
        e.family = Some(AF_INET6);
        e.local = Some("[2001:db8::1]:1".parse().unwrap());
        e.remote = Some("[2001:db8::2]:2".parse().unwrap());
        e.error = Some(104);
        e.reset_reason = Some(ResetReason::Middlebox);
        e.reset_flags = Some(1);
        e.flags = Some(EventFlags(EventFlags::SERVER_SIDE));
        e.server_side = Some(true);
        e.ifindex = Some(4);
        let parsed = Event::parse(11, &e.to_bytes()).unwrap();
        assert_eq!(parsed, e);
        assert!(parsed.to_string().contains("reset_reason=middlebox"));
        // The flag alone says server side.
        let mut only_flag = e.clone();
        only_flag.server_side = None;
        assert_eq!(
            Event::parse(11, &only_flag.to_bytes()).unwrap().server_side,
            Some(true)
        );
        assert_eq!(ResetReason::from_code(9), ResetReason::Other(9));
        assert_eq!(EventKind::from_number(99).to_string(), "unknown_99");
    }

    #[test]
    fn malformed_events_are_errors() {
        for n in 0..SUB_ESTABLISHED.len() {
            // Every truncation either parses (at an attribute boundary) or is an error.
            let _ = Event::parse(10, &SUB_ESTABLISHED[..n]);
        }
        // A 3-byte IPv4 address.
        assert!(Event::parse(1, &[7, 0, 5, 0, 1, 2, 3, 0]).is_err());
    }
}
