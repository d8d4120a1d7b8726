//! The sans-I/O codec of the `mptcp_pm` generic netlink family.
//!
//! Everything here turns typed values into attribute payloads and back, without a socket:
//! the [`PmMessage`] requests and replies (endpoints, limits, userspace path-manager
//! commands), the [`Event`] notifications of the `mptcp_pm_events` group, and the MPTCP
//! parts of `sock_diag` replies ([`diag`]). The layouts are those of the kernel's
//! `include/uapi/linux/mptcp_pm.h` and `Documentation/netlink/specs/mptcp_pm.yaml`.
//!
//! The parsers accept any byte string: malformed input is a [`DecodeError`], never a
//! panic. This is checked by unit tests on byte fixtures, by a fixed-seed pseudo-random
//! test over every parser and by the libFuzzer targets `netlink_codec` and `sock_diag`
//! (`fuzz/` at the repository root, entries in the `mptcp-fuzz` crate).
//!
//! Byte order: integers are native-endian (the kernel's and the caller's are the same
//! host), except IPv4 addresses and the event ports, which are network order. The
//! endpoint port (`MPTCP_PM_ADDR_ATTR_PORT`) is in host order: the kernel converts it
//! with `htons` after reading it.

use std::fmt;

mod endpoint;
mod event;
mod message;
pub(crate) mod nla;

pub mod diag;
pub(crate) mod framing;
pub mod netstat;

pub(crate) use endpoint::check_unicast;
pub use endpoint::{
    AddressAttrs, Endpoint, EndpointFlags, InterfaceRef, Limits, NewEndpoint, NewSubflow, MAX_LIMIT,
};
pub use event::{Event, EventFlags, EventKind, EventMessage, ResetReason};
pub use message::{PmAttr, PmMessage};

/// Name of the generic netlink family (`MPTCP_PM_NAME`).
pub const FAMILY_NAME: &str = "mptcp_pm";
/// Version of the family this crate speaks (`MPTCP_PM_VER`).
pub const FAMILY_VERSION: u8 = 1;
/// Multicast group of path-manager events (`MPTCP_PM_EV_GRP_NAME`).
pub const EVENTS_GROUP: &str = "mptcp_pm_events";
/// Multicast group of path-manager commands (`MPTCP_PM_CMD_GRP_NAME`).
pub const COMMANDS_GROUP: &str = "mptcp_pm_cmds";

/// Command numbers of the `mptcp_pm` family (`MPTCP_PM_CMD_*`).
pub mod cmd {
    /// Add an endpoint (in-kernel path manager).
    pub const ADD_ADDR: u8 = 1;
    /// Delete an endpoint.
    pub const DEL_ADDR: u8 = 2;
    /// Get one endpoint, or dump all of them.
    pub const GET_ADDR: u8 = 3;
    /// Delete all endpoints.
    pub const FLUSH_ADDRS: u8 = 4;
    /// Set the limits.
    pub const SET_LIMITS: u8 = 5;
    /// Get the limits.
    pub const GET_LIMITS: u8 = 6;
    /// Change the flags of an endpoint (or, with a token, a subflow's backup flag).
    pub const SET_FLAGS: u8 = 7;
    /// Userspace PM: announce an address on a connection (ADD_ADDR).
    pub const ANNOUNCE: u8 = 8;
    /// Userspace PM: withdraw an announced address (RM_ADDR).
    pub const REMOVE: u8 = 9;
    /// Userspace PM: create a subflow.
    pub const SUBFLOW_CREATE: u8 = 10;
    /// Userspace PM: destroy a subflow.
    pub const SUBFLOW_DESTROY: u8 = 11;
}

/// Attribute numbers of requests and replies (`MPTCP_PM_ATTR_*`).
pub mod attr {
    /// Address nest ([`addr`](super::addr)).
    pub const ADDR: u16 = 1;
    /// Limit on accepted ADD_ADDRs, u32.
    pub const RCV_ADD_ADDRS: u16 = 2;
    /// Limit on extra subflows, u32.
    pub const SUBFLOWS: u16 = 3;
    /// Connection token, u32.
    pub const TOKEN: u16 = 4;
    /// Local address id, u8.
    pub const LOC_ID: u16 = 5;
    /// Remote address nest.
    pub const ADDR_REMOTE: u16 = 6;
}

/// Attribute numbers inside an address nest (`MPTCP_PM_ADDR_ATTR_*`).
pub mod addr {
    /// Address family, u16.
    pub const FAMILY: u16 = 1;
    /// Endpoint id, u8.
    pub const ID: u16 = 2;
    /// IPv4 address, 4 bytes, network order.
    pub const ADDR4: u16 = 3;
    /// IPv6 address, 16 bytes.
    pub const ADDR6: u16 = 4;
    /// Port, u16 in host order.
    pub const PORT: u16 = 5;
    /// Endpoint flags, u32.
    pub const FLAGS: u16 = 6;
    /// Interface index, s32.
    pub const IF_IDX: u16 = 7;
}

/// Attribute numbers of events (`MPTCP_ATTR_*`).
pub mod event_attr {
    /// Connection token, u32.
    pub const TOKEN: u16 = 1;
    /// Address family, u16.
    pub const FAMILY: u16 = 2;
    /// Local address id, u8.
    pub const LOC_ID: u16 = 3;
    /// Remote address id, u8.
    pub const REM_ID: u16 = 4;
    /// Local IPv4 address, network order.
    pub const SADDR4: u16 = 5;
    /// Local IPv6 address.
    pub const SADDR6: u16 = 6;
    /// Remote IPv4 address, network order.
    pub const DADDR4: u16 = 7;
    /// Remote IPv6 address.
    pub const DADDR6: u16 = 8;
    /// Local port, network order.
    pub const SPORT: u16 = 9;
    /// Remote port, network order.
    pub const DPORT: u16 = 10;
    /// Subflow backup flag, u8.
    pub const BACKUP: u16 = 11;
    /// Subflow error (a copy of `sk_err`), u8.
    pub const ERROR: u16 = 12;
    /// Event flags, u16.
    pub const FLAGS: u16 = 13;
    /// ADD_ADDR timeout, u32.
    pub const TIMEOUT: u16 = 14;
    /// Interface index, u32.
    pub const IF_IDX: u16 = 15;
    /// MP_TCPRST reason, u32.
    pub const RESET_REASON: u16 = 16;
    /// MP_TCPRST flags, u32.
    pub const RESET_FLAGS: u16 = 17;
    /// Server side, u8.
    pub const SERVER_SIDE: u16 = 18;
}

/// Bytes that are not a valid message of this family.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(String);

impl DecodeError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        DecodeError(message.into())
    }

    /// What was wrong with the bytes.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl From<DecodeError> for netlink_packet_core::DecodeError {
    fn from(e: DecodeError) -> Self {
        netlink_packet_core::DecodeError::from(e.0)
    }
}

/// `AF_INET`.
pub(crate) const AF_INET: u16 = 2;
/// `AF_INET6`.
pub(crate) const AF_INET6: u16 = 10;

/// Writes `0x` followed by the hexadecimal digits, for unknown bits.
pub(crate) fn fmt_hex(f: &mut fmt::Formatter<'_>, v: u32) -> fmt::Result {
    write!(f, "{v:#x}")
}

/// Feeds `data` to every parser of this crate; for fuzzing. The first byte picks the
/// command or event number for the generic netlink parsers, the rest is their attribute
/// bytes and the `sock_diag` input; the whole goes through the framing.
///
/// Any panic here is a bug. Not part of the stable API.
#[doc(hidden)]
pub fn fuzz_all_parsers(data: &[u8]) {
    fuzz_genl(data);
    fuzz_sock_diag(data.get(1..).unwrap_or(&[]));
}

/// The generic netlink side, for the `netlink_codec` fuzz target: the first byte of
/// `data` is the command or event number, the rest the attribute bytes given to
/// [`PmMessage::parse`], [`Event::parse`] and [`AddressAttrs::parse`]; the whole goes
/// through the netlink framing, the status (`NLMSG_ERROR`, extended ack) and the reply
/// parsers. What parses must encode (`to_bytes`) into bytes that parse to the same value.
///
/// Panics only on a broken invariant. Not part of the stable API.
#[doc(hidden)]
pub fn fuzz_genl(data: &[u8]) {
    let (selector, rest) = match data.split_first() {
        Some((s, rest)) => (*s, rest),
        None => (0, data),
    };
    if let Ok(m) = PmMessage::parse(selector, rest) {
        let again = PmMessage::parse(selector, &m.to_bytes());
        assert_eq!(
            again.as_ref(),
            Ok(&m),
            "a PmMessage does not survive to_bytes"
        );
    }
    if let Ok(e) = Event::parse(selector, rest) {
        let again = Event::parse(selector, &e.to_bytes());
        assert_eq!(again.as_ref(), Ok(&e), "an Event does not survive to_bytes");
        let _ = e.to_string();
    }
    if let Ok(a) = AddressAttrs::parse(rest) {
        let again = AddressAttrs::parse(&a.to_bytes());
        assert_eq!(
            again.as_ref(),
            Ok(&a),
            "AddressAttrs do not survive to_bytes"
        );
    }
    framing::fuzz_framing(data);
}

/// The `sock_diag` side, for the `sock_diag` fuzz target: `data` goes whole to
/// [`diag::parse_inet_diag_msg`], [`diag::parse_subflow_ulp_info`] and
/// [`diag::parse_mptcp_info`]. A parsed message keeps no more bytes than it was given.
///
/// Panics only on a broken invariant. Not part of the stable API.
#[doc(hidden)]
pub fn fuzz_sock_diag(data: &[u8]) {
    if let Ok(msg) = diag::parse_inet_diag_msg(data) {
        let kept = msg.info.as_ref().map_or(0, Vec::len);
        assert!(kept <= data.len(), "INET_DIAG_INFO of {kept} bytes");
        assert_eq!(msg.local.is_ipv4(), u16::from(msg.family) == AF_INET);
        assert_eq!(msg.remote.is_ipv4(), u16::from(msg.family) == AF_INET);
    }
    let _ = diag::parse_subflow_ulp_info(data);
    if let Ok(info) = diag::parse_mptcp_info(data) {
        assert_eq!(info.kernel_len, data.len());
    }
}

#[cfg(test)]
mod tests {
    use super::framing::genl_request;
    use super::*;

    /// A fixed-seed xorshift64 generator: the same bytes on every run.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn bytes(&mut self, max_len: usize) -> Vec<u8> {
            let len = (self.next() % (max_len as u64 + 1)) as usize;
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    /// Real-shaped inputs: attribute payloads, whole netlink messages, a diag reply.
    fn fixtures() -> Vec<Vec<u8>> {
        let mut event = Event::new(EventKind::SubClosed);
        event.token = Some(0x1234_5678);
        event.family = Some(AF_INET6);
        event.local = Some("[2001:db8::1]:40000".parse().unwrap());
        event.remote = Some("[2001:db8::2]:5201".parse().unwrap());
        event.local_id = Some(1);
        event.remote_id = Some(0);
        event.backup = Some(true);
        event.error = Some(104);
        event.reset_reason = Some(ResetReason::Middlebox);
        event.ifindex = Some(3);
        let ep = NewEndpoint::new("198.18.0.1".parse().unwrap())
            .id(3)
            .port(5202)
            .flags(EndpointFlags::SIGNAL);
        let request = PmMessage::new(
            cmd::SUBFLOW_CREATE,
            vec![
                PmAttr::Token(7),
                PmAttr::Addr(ep.to_attrs(Some(2))),
                PmAttr::AddrRemote(AddressAttrs::from_ip("198.18.0.2".parse().unwrap())),
                PmAttr::Subflows(2),
                PmAttr::RcvAddAddrs(1),
                PmAttr::LocId(4),
            ],
        );
        let mut framed_event = genl_request(0x1c, EventMessage(event.clone()), false);
        framed_event.extend(genl_request(0x1c, request.clone(), true));
        vec![
            event.to_bytes(),
            request.to_bytes(),
            ep.to_attrs(None).to_bytes(),
            genl_request(0x1c, request, false),
            framed_event,
        ]
    }

    fn feed(data: &[u8]) {
        fuzz_all_parsers(data);
        // Every event number and command, with the same bytes.
        for selector in [1u8, 3, 6, 7, 10, 11, 16, 200] {
            let _ = Event::parse(selector, data);
            let _ = PmMessage::parse(selector, data);
        }
    }

    #[test]
    fn parsers_never_panic() {
        let fixtures = fixtures();
        for f in &fixtures {
            for end in 0..=f.len() {
                feed(&f[..end]);
                feed(&f[end..]);
            }
        }
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        // Random bytes, and fixtures with random bytes flipped (which keeps most of the
        // structure, so deeper code is reached).
        for _ in 0..4000 {
            feed(&rng.bytes(300));
            let f = &fixtures[(rng.next() % fixtures.len() as u64) as usize];
            let mut mutated = f.clone();
            for _ in 0..1 + rng.next() % 4 {
                if !mutated.is_empty() {
                    let i = (rng.next() % mutated.len() as u64) as usize;
                    mutated[i] = rng.next() as u8;
                }
            }
            feed(&mutated);
        }
    }

    #[test]
    fn fixtures_round_trip() {
        let f = fixtures();
        let e = Event::parse(11, &f[0]).unwrap();
        assert_eq!(e.to_bytes(), f[0]);
        let m = PmMessage::parse(cmd::SUBFLOW_CREATE, &f[1]).unwrap();
        assert_eq!(m.to_bytes(), f[1]);
        assert_eq!(m.addr().unwrap().port, Some(5202));
    }
}
