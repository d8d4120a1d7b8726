//! Requests and replies of the `mptcp_pm` family: a command and its attributes.

use netlink_packet_core::{Emitable, ParseableParametrized};
use netlink_packet_generic::{GenlFamily, GenlHeader};

use super::endpoint::AddressAttrs;
use super::nla::{attrs, Writer};
use super::{attr, DecodeError, FAMILY_NAME, FAMILY_VERSION};

/// One attribute of a request or reply (`MPTCP_PM_ATTR_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PmAttr {
    /// `MPTCP_PM_ATTR_ADDR`: a local address or endpoint.
    Addr(AddressAttrs),
    /// `MPTCP_PM_ATTR_RCV_ADD_ADDRS`: the `add_addr_accepted` limit.
    RcvAddAddrs(u32),
    /// `MPTCP_PM_ATTR_SUBFLOWS`: the `subflows` limit.
    Subflows(u32),
    /// `MPTCP_PM_ATTR_TOKEN`: a connection token.
    Token(u32),
    /// `MPTCP_PM_ATTR_LOC_ID`: a local address id.
    LocId(u8),
    /// `MPTCP_PM_ATTR_ADDR_REMOTE`: a remote address.
    AddrRemote(AddressAttrs),
    /// An attribute this crate does not know: its type and value.
    Other(u16, Vec<u8>),
}

/// A message of the `mptcp_pm` family: the generic netlink command and its attributes.
///
/// This is the payload of a `netlink_packet_generic::GenlMessage`; building one is how a
/// request is made, parsing one is how a reply is read.
///
/// ```
/// use mptcp_netlink::codec::{cmd, PmAttr, PmMessage};
///
/// let request = PmMessage::new(cmd::SET_LIMITS, vec![PmAttr::Subflows(4), PmAttr::RcvAddAddrs(1)]);
/// let bytes = request.to_bytes();
/// assert_eq!(PmMessage::parse(cmd::SET_LIMITS, &bytes)?, request);
/// # Ok::<(), mptcp_netlink::codec::DecodeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PmMessage {
    /// The command (`MPTCP_PM_CMD_*`, see [`cmd`](super::cmd)).
    pub command: u8,
    /// The attributes.
    pub attrs: Vec<PmAttr>,
}

impl PmMessage {
    /// A message with `command` and `attrs`.
    pub fn new(command: u8, attrs: Vec<PmAttr>) -> Self {
        PmMessage { command, attrs }
    }

    /// Parses the attributes that follow the generic netlink header.
    pub fn parse(command: u8, bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut out = Vec::new();
        for a in attrs(bytes) {
            let a = a?;
            out.push(match a.kind {
                attr::ADDR => PmAttr::Addr(AddressAttrs::parse(a.value)?),
                attr::RCV_ADD_ADDRS => PmAttr::RcvAddAddrs(a.u32_ne("rcv_add_addrs")?),
                attr::SUBFLOWS => PmAttr::Subflows(a.u32_ne("subflows")?),
                attr::TOKEN => PmAttr::Token(a.u32_ne("token")?),
                attr::LOC_ID => PmAttr::LocId(a.u8("loc_id")?),
                attr::ADDR_REMOTE => PmAttr::AddrRemote(AddressAttrs::parse(a.value)?),
                kind => PmAttr::Other(kind, a.value.to_vec()),
            });
        }
        Ok(PmMessage {
            command,
            attrs: out,
        })
    }

    /// The attribute bytes (without the generic netlink header).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        for a in &self.attrs {
            match a {
                PmAttr::Addr(addr) => {
                    w.nested(attr::ADDR, |w| addr.write(w));
                }
                PmAttr::RcvAddAddrs(v) => {
                    w.u32_ne(attr::RCV_ADD_ADDRS, *v);
                }
                PmAttr::Subflows(v) => {
                    w.u32_ne(attr::SUBFLOWS, *v);
                }
                PmAttr::Token(v) => {
                    w.u32_ne(attr::TOKEN, *v);
                }
                PmAttr::LocId(v) => {
                    w.u8(attr::LOC_ID, *v);
                }
                PmAttr::AddrRemote(addr) => {
                    w.nested(attr::ADDR_REMOTE, |w| addr.write(w));
                }
                PmAttr::Other(kind, value) => {
                    w.bytes(*kind, value);
                }
            }
        }
        w.into_bytes()
    }

    /// The first `MPTCP_PM_ATTR_ADDR` nest.
    pub fn addr(&self) -> Option<&AddressAttrs> {
        self.attrs.iter().find_map(|a| match a {
            PmAttr::Addr(addr) => Some(addr),
            _ => None,
        })
    }

    /// The limits attributes, `(subflows, rcv_add_addrs)`.
    pub fn limits(&self) -> (Option<u32>, Option<u32>) {
        let mut out = (None, None);
        for a in &self.attrs {
            match a {
                PmAttr::Subflows(v) => out.0 = Some(*v),
                PmAttr::RcvAddAddrs(v) => out.1 = Some(*v),
                _ => {}
            }
        }
        out
    }
}

impl GenlFamily for PmMessage {
    fn family_name() -> &'static str {
        FAMILY_NAME
    }

    fn command(&self) -> u8 {
        self.command
    }

    fn version(&self) -> u8 {
        FAMILY_VERSION
    }
}

impl Emitable for PmMessage {
    fn buffer_len(&self) -> usize {
        self.to_bytes().len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        let bytes = self.to_bytes();
        let n = bytes.len().min(buffer.len());
        buffer[..n].copy_from_slice(&bytes[..n]);
    }
}

impl ParseableParametrized<[u8], GenlHeader> for PmMessage {
    fn parse_with_param(
        buf: &[u8],
        header: GenlHeader,
    ) -> Result<Self, netlink_packet_core::DecodeError> {
        Ok(PmMessage::parse(header.cmd, buf)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::cmd;

    #[test]
    fn limits_reply_fixture() {
        // GET_LIMITS reply attributes: rcv_add_addrs 1, subflows 4.
        let fixture = [8u8, 0, 2, 0, 1, 0, 0, 0, 8, 0, 3, 0, 4, 0, 0, 0];
        let m = PmMessage::parse(cmd::GET_LIMITS, &fixture).unwrap();
        assert_eq!(m.limits(), (Some(4), Some(1)));
        assert_eq!(m.to_bytes(), fixture);
    }

    #[test]
    fn nested_addr_and_unknown() {
        let fixture = [
            12u8, 0, 0x01, 0x80, // ADDR, nested flag
            5, 0, 2, 0, 7, 0, 0, 0, // id 7
            5, 0, 0x20, 0, 9, 0, 0, 0, // unknown attribute 32 = [9]
        ];
        let m = PmMessage::parse(cmd::DEL_ADDR, &fixture[..]).unwrap();
        assert_eq!(m.addr().unwrap().id, Some(7));
        assert_eq!(m.attrs[1], PmAttr::Other(32, vec![9]));
        assert_eq!(m.to_bytes(), fixture);
        // Truncated nest.
        assert!(PmMessage::parse(cmd::DEL_ADDR, &fixture[..10]).is_err());
        // Wrong size integer.
        assert!(PmMessage::parse(cmd::GET_LIMITS, &[6, 0, 3, 0, 1, 0, 0, 0]).is_err());
    }
}
