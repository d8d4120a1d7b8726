//! The MPTCP parts of `sock_diag` (`inet_diag`) replies.
//!
//! An `inet_diag` dump with protocol `IPPROTO_MPTCP` lists MPTCP sockets: their
//! `INET_DIAG_INFO` attribute carries a `struct mptcp_info` (parsed by
//! [`mptcp_net::info::wire::parse_mptcp_info`]). Subflows are TCP sockets in a TCP dump:
//! their `INET_DIAG_ULP_INFO` nest names the ULP `"mptcp"` and carries the subflow
//! attributes (`MPTCP_SUBFLOW_ATTR_*`), among them the token of the connection they belong
//! to (`TOKEN_LOC`, equal to the connection's `mptcpi_token`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::nla::attrs;
use super::DecodeError;

/// `IPPROTO_MPTCP`.
pub const IPPROTO_MPTCP: u32 = 262;
/// `INET_DIAG_REQ_PROTOCOL`: request attribute giving a protocol number above 255.
pub const INET_DIAG_REQ_PROTOCOL: u16 = 3;
/// `INET_DIAG_INFO`: `tcp_info` for TCP, `mptcp_info` for MPTCP.
pub const INET_DIAG_INFO: u16 = 2;
/// `INET_DIAG_ULP_INFO`: the upper-layer protocol's nest.
pub const INET_DIAG_ULP_INFO: u16 = 19;
/// `INET_ULP_INFO_NAME` (string) in the ULP nest.
pub const INET_ULP_INFO_NAME: u16 = 1;
/// `INET_ULP_INFO_MPTCP` (nest of `MPTCP_SUBFLOW_ATTR_*`) in the ULP nest.
pub const INET_ULP_INFO_MPTCP: u16 = 3;
/// Length of `struct inet_diag_msg`.
pub const INET_DIAG_MSG_LEN: usize = 72;

/// Attribute numbers in `INET_ULP_INFO_MPTCP` (`MPTCP_SUBFLOW_ATTR_*`).
pub mod subflow_attr {
    /// Peer's token, u32.
    pub const TOKEN_REM: u16 = 1;
    /// Local token (the connection's `mptcpi_token`), u32.
    pub const TOKEN_LOC: u16 = 2;
    /// Relative write sequence, u32 (CAP_NET_ADMIN only).
    pub const RELWRITE_SEQ: u16 = 3;
    /// Mapping data sequence, u64 (CAP_NET_ADMIN only).
    pub const MAP_SEQ: u16 = 4;
    /// Mapping subflow sequence, u32 (CAP_NET_ADMIN only).
    pub const MAP_SFSEQ: u16 = 5;
    /// Subflow sequence offset, u32 (CAP_NET_ADMIN only).
    pub const SSN_OFFSET: u16 = 6;
    /// Mapping data length, u16 (CAP_NET_ADMIN only).
    pub const MAP_DATALEN: u16 = 7;
    /// `MPTCP_SUBFLOW_FLAG_*`, u32.
    pub const FLAGS: u16 = 8;
    /// Remote address id, u8.
    pub const ID_REM: u16 = 9;
    /// Local address id, u8.
    pub const ID_LOC: u16 = 10;
}

/// The `MPTCP_SUBFLOW_FLAG_*` bits of a subflow; unknown bits are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SubflowFlags(pub u32);

impl SubflowFlags {
    const NAMES: [&'static str; 9] = [
        "mcap_rem",
        "mcap_loc",
        "join_rem",
        "join_loc",
        "bkup_rem",
        "bkup_loc",
        "fully_established",
        "connected",
        "mapvalid",
    ];

    /// `MPTCP_SUBFLOW_FLAG_JOIN_REM` or `_JOIN_LOC`: an MP_JOIN subflow, not the first one.
    pub fn is_join(self) -> bool {
        self.0 & 0b1100 != 0
    }

    /// `MPTCP_SUBFLOW_FLAG_BKUP_REM` or `_BKUP_LOC`: a backup subflow.
    pub fn is_backup(self) -> bool {
        self.0 & 0b11_0000 != 0
    }

    /// `MPTCP_SUBFLOW_FLAG_FULLY_ESTABLISHED`.
    pub fn fully_established(self) -> bool {
        self.0 & (1 << 6) != 0
    }
}

impl fmt::Display for SubflowFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Self::NAMES
            .iter()
            .enumerate()
            .filter(|(bit, _)| self.0 & (1 << bit) != 0)
            .map(|(_, n)| (*n).to_string())
            .collect();
        let unknown = self.0 & !0x1ff;
        if unknown != 0 {
            parts.push(format!("{unknown:#x}"));
        }
        f.write_str(&parts.join(","))
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for SubflowFlags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The MPTCP view of a subflow, from its `INET_ULP_INFO_MPTCP` nest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SubflowUlpInfo {
    /// The connection token on this host (`TOKEN_LOC`).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub token_local: Option<u32>,
    /// The peer's token (`TOKEN_REM`).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub token_remote: Option<u32>,
    /// Local address id (`ID_LOC`).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub local_id: Option<u8>,
    /// Remote address id (`ID_REM`).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub remote_id: Option<u8>,
    /// Subflow flags (`FLAGS`).
    pub flags: SubflowFlags,
    /// Relative write sequence (`RELWRITE_SEQ`; reported to CAP_NET_ADMIN only).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub relwrite_seq: Option<u32>,
    /// Current mapping's data sequence (`MAP_SEQ`; CAP_NET_ADMIN only).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub map_seq: Option<u64>,
    /// Current mapping's subflow sequence (`MAP_SFSEQ`; CAP_NET_ADMIN only).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub map_sfseq: Option<u32>,
    /// Subflow sequence offset (`SSN_OFFSET`; CAP_NET_ADMIN only).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub ssn_offset: Option<u32>,
    /// Current mapping's length (`MAP_DATALEN`; CAP_NET_ADMIN only).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub map_datalen: Option<u16>,
}

/// Parses an `INET_DIAG_ULP_INFO` nest's value: `Ok(None)` when the ULP is not `"mptcp"`.
pub fn parse_subflow_ulp_info(bytes: &[u8]) -> Result<Option<SubflowUlpInfo>, DecodeError> {
    let mut name = None;
    let mut mptcp = None;
    for a in attrs(bytes) {
        let a = a?;
        match a.kind {
            INET_ULP_INFO_NAME => name = Some(a.string()),
            INET_ULP_INFO_MPTCP => mptcp = Some(a.value),
            _ => {}
        }
    }
    if name.as_deref() != Some("mptcp") {
        return Ok(None);
    }
    let mut info = SubflowUlpInfo::default();
    for a in attrs(mptcp.unwrap_or(&[])) {
        let a = a?;
        match a.kind {
            subflow_attr::TOKEN_REM => info.token_remote = Some(a.u32_ne("token_rem")?),
            subflow_attr::TOKEN_LOC => info.token_local = Some(a.u32_ne("token_loc")?),
            subflow_attr::RELWRITE_SEQ => info.relwrite_seq = Some(a.u32_ne("relwrite_seq")?),
            subflow_attr::MAP_SEQ => info.map_seq = Some(a.u64_ne("map_seq")?),
            subflow_attr::MAP_SFSEQ => info.map_sfseq = Some(a.u32_ne("map_sfseq")?),
            subflow_attr::SSN_OFFSET => info.ssn_offset = Some(a.u32_ne("ssn_offset")?),
            subflow_attr::MAP_DATALEN => info.map_datalen = Some(a.u16_ne("map_datalen")?),
            subflow_attr::FLAGS => info.flags = SubflowFlags(a.u32_ne("subflow flags")?),
            subflow_attr::ID_REM => info.remote_id = Some(a.u8("id_rem")?),
            subflow_attr::ID_LOC => info.local_id = Some(a.u8("id_loc")?),
            _ => {}
        }
    }
    Ok(Some(info))
}

/// One socket of an `inet_diag` reply: `struct inet_diag_msg` and the attributes this
/// crate reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InetDiagMsg {
    /// `AF_INET` (2) or `AF_INET6` (10).
    pub family: u8,
    /// The TCP state number (`idiag_state`).
    pub state: u8,
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port (unspecified for a listener).
    pub remote: SocketAddr,
    /// Bound interface (`idiag_if`), 0 for none.
    pub ifindex: u32,
    /// The socket cookie.
    pub cookie: u64,
    /// Owner's uid.
    pub uid: u32,
    /// Inode of the socket.
    pub inode: u32,
    /// Receive and send queue lengths (`idiag_rqueue`, `idiag_wqueue`).
    pub queues: (u32, u32),
    /// `INET_DIAG_INFO`'s raw bytes.
    pub info: Option<Vec<u8>>,
    /// `INET_DIAG_ULP_INFO`, when the ULP is MPTCP.
    pub ulp_mptcp: Option<SubflowUlpInfo>,
}

/// Parses one `SOCK_DIAG_BY_FAMILY` reply message's payload (after `struct nlmsghdr`).
pub fn parse_inet_diag_msg(bytes: &[u8]) -> Result<InetDiagMsg, DecodeError> {
    let head = bytes.get(..INET_DIAG_MSG_LEN).ok_or_else(|| {
        DecodeError::new(format!(
            "inet_diag_msg has {} bytes, expected at least {INET_DIAG_MSG_LEN}",
            bytes.len()
        ))
    })?;
    let u32_at = |off: usize| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&head[off..off + 4]);
        u32::from_ne_bytes(b)
    };
    let family = head[0];
    let addr = |off: usize| -> Result<IpAddr, DecodeError> {
        let mut b = [0u8; 16];
        b.copy_from_slice(&head[off..off + 16]);
        match u16::from(family) {
            super::AF_INET => Ok(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
            super::AF_INET6 => Ok(IpAddr::V6(Ipv6Addr::from(b))),
            other => Err(DecodeError::new(format!(
                "inet_diag_msg of unknown family {other}"
            ))),
        }
    };
    let sport = u16::from_be_bytes([head[4], head[5]]);
    let dport = u16::from_be_bytes([head[6], head[7]]);
    let mut msg = InetDiagMsg {
        family,
        state: head[1],
        local: SocketAddr::new(addr(8)?, sport),
        remote: SocketAddr::new(addr(24)?, dport),
        ifindex: u32_at(40),
        cookie: u64::from(u32_at(44)) | (u64::from(u32_at(48)) << 32),
        uid: u32_at(64),
        inode: u32_at(68),
        queues: (u32_at(56), u32_at(60)),
        info: None,
        ulp_mptcp: None,
    };
    for a in attrs(&bytes[INET_DIAG_MSG_LEN..]) {
        let a = a?;
        match a.kind {
            INET_DIAG_INFO => msg.info = Some(a.value.to_vec()),
            INET_DIAG_ULP_INFO => msg.ulp_mptcp = parse_subflow_ulp_info(a.value)?,
            _ => {}
        }
    }
    Ok(msg)
}

/// Parses `struct mptcp_info` (the `INET_DIAG_INFO` of an MPTCP socket), by length as the
/// kernel returned it.
pub fn parse_mptcp_info(bytes: &[u8]) -> Result<mptcp_net::MptcpInfo, DecodeError> {
    mptcp_net::info::wire::parse_mptcp_info(bytes)
        .map_err(|e| DecodeError::new(format!("mptcp_info: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag_fixture() -> Vec<u8> {
        let mut b = vec![0u8; INET_DIAG_MSG_LEN];
        b[0] = 2; // AF_INET
        b[1] = 1; // ESTABLISHED
        b[4..6].copy_from_slice(&40000u16.to_be_bytes());
        b[6..8].copy_from_slice(&5201u16.to_be_bytes());
        b[8..12].copy_from_slice(&[198, 18, 1, 1]);
        b[24..28].copy_from_slice(&[198, 18, 0, 2]);
        b[44..48].copy_from_slice(&7u32.to_ne_bytes());
        b[68..72].copy_from_slice(&1234u32.to_ne_bytes());
        // INET_DIAG_ULP_INFO { NAME "mptcp", MPTCP { TOKEN_LOC 0xabcd, ID_LOC 1, FLAGS 0x4c } }
        let mut mp = super::super::nla::Writer::new();
        mp.u32_ne(subflow_attr::TOKEN_LOC, 0xabcd)
            .u8(subflow_attr::ID_LOC, 1)
            .u32_ne(subflow_attr::FLAGS, 0x4c);
        let mut ulp = super::super::nla::Writer::new();
        ulp.bytes(INET_ULP_INFO_NAME, b"mptcp\0");
        ulp.bytes(
            INET_ULP_INFO_MPTCP | super::super::nla::F_NESTED,
            &mp.into_bytes(),
        );
        let mut w = super::super::nla::Writer::new();
        w.bytes(
            INET_DIAG_ULP_INFO | super::super::nla::F_NESTED,
            &ulp.into_bytes(),
        );
        b.extend_from_slice(&w.into_bytes());
        b
    }

    #[test]
    fn subflow_fixture() {
        let bytes = diag_fixture();
        let m = parse_inet_diag_msg(&bytes).unwrap();
        assert_eq!(m.local, "198.18.1.1:40000".parse().unwrap());
        assert_eq!(m.remote, "198.18.0.2:5201".parse().unwrap());
        assert_eq!((m.state, m.inode, m.cookie), (1, 1234, 7));
        let ulp = m.ulp_mptcp.unwrap();
        assert_eq!(ulp.token_local, Some(0xabcd));
        assert_eq!(ulp.local_id, Some(1));
        assert!(ulp.flags.is_join() && ulp.flags.fully_established());
        assert_eq!(ulp.flags.to_string(), "join_rem,join_loc,fully_established");
        for n in 0..bytes.len() {
            let _ = parse_inet_diag_msg(&bytes[..n]);
        }
        assert!(parse_inet_diag_msg(&bytes[..71]).is_err());
    }

    #[test]
    fn other_ulp_is_none() {
        let mut w = super::super::nla::Writer::new();
        w.bytes(INET_ULP_INFO_NAME, b"tls\0");
        assert_eq!(parse_subflow_ulp_info(&w.into_bytes()).unwrap(), None);
    }
}
