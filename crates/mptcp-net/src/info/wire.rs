//! Sans-I/O encoders and parsers for the `SOL_MPTCP` socket options.
//!
//! Every parser accepts any byte slice and never panics: a short or inconsistent buffer gives
//! a [`ParseError`]; bytes beyond the known layout are ignored. Sizes and counts read from a
//! buffer are bounded by the buffer's length before anything is allocated.
//!
//! Layouts are checked against the kernel's `include/uapi/linux/mptcp.h`,
//! `include/uapi/linux/tcp.h` and `net/mptcp/sockopt.c` (6.18), and against replies captured
//! from a 6.18 kernel (see the tests).

use super::{
    Duration, Ipv4Addr, Ipv6Addr, MptcpFlags, MptcpInfo, ParseError, SocketAddr, SocketAddrV4,
    SocketAddrV6, SubflowInfo, TcpCaState, TcpState, TcpStats,
};

/// Socket level of the MPTCP options (`SOL_MPTCP`).
pub const SOL_MPTCP: i32 = 284;
/// `MPTCP_INFO`: `struct mptcp_info` (5.16+).
pub const MPTCP_INFO: i32 = 1;
/// `MPTCP_TCPINFO`: `struct mptcp_subflow_data` then `struct tcp_info` per subflow (5.16+).
pub const MPTCP_TCPINFO: i32 = 2;
/// `MPTCP_SUBFLOW_ADDRS`: `struct mptcp_subflow_data` then `struct mptcp_subflow_addrs`
/// per subflow (5.16+).
pub const MPTCP_SUBFLOW_ADDRS: i32 = 3;
/// `MPTCP_FULL_INFO`: `struct mptcp_full_info` with two user arrays (6.5+).
pub const MPTCP_FULL_INFO: i32 = 4;

/// Smallest `struct mptcp_info` accepted (the 5.16 to 6.4 size).
pub const MPTCP_INFO_MIN_LEN: usize = 48;
/// Largest `struct mptcp_info` known (6.10+): the buffer size to ask for.
pub const MPTCP_INFO_LEN: usize = 96;
/// `struct mptcp_info` of 6.5 to 6.7.
const LEN_6_5: usize = 80;
/// `struct mptcp_info` of 6.8 and 6.9.
const LEN_6_8: usize = 88;
/// Smallest `struct tcp_info` accepted (through `tcpi_total_retrans`).
pub const TCP_INFO_MIN_LEN: usize = 104;
/// Largest `struct tcp_info` known (6.18). Asking for more is harmless: the kernel
/// clamps element sizes to its own and reports the size it used.
pub const TCP_INFO_LEN: usize = 280;
/// `struct __kernel_sockaddr_storage`.
pub const SOCKADDR_STORAGE_LEN: usize = 128;
/// `struct mptcp_subflow_data`.
pub const SUBFLOW_DATA_LEN: usize = 16;
/// `struct mptcp_subflow_addrs`: local then remote `sockaddr_storage`.
pub const SUBFLOW_ADDRS_LEN: usize = 256;
/// `struct mptcp_subflow_info` on 64-bit targets: `u32 id`, 4 bytes padding, addresses.
pub const SUBFLOW_INFO_LEN: usize = 264;
/// `struct mptcp_full_info` on 64-bit targets.
pub const FULL_INFO_LEN: usize = 136;
/// Offset of the embedded `struct mptcp_info` in `struct mptcp_full_info`, and the
/// smallest optlen the kernel accepts for `MPTCP_FULL_INFO`.
pub const FULL_INFO_HEADER_LEN: usize = 40;

/// `AF_UNSPEC`.
const AF_UNSPEC: u16 = 0;
/// `AF_INET`.
const AF_INET: u16 = 2;
/// `AF_INET6` on Linux.
const AF_INET6: u16 = 10;

/// Offsets in `struct mptcp_info`.
mod mi {
    pub const SUBFLOWS: usize = 0;
    pub const ADD_ADDR_SIGNAL: usize = 1;
    pub const ADD_ADDR_ACCEPTED: usize = 2;
    pub const SUBFLOWS_MAX: usize = 3;
    pub const ADD_ADDR_SIGNAL_MAX: usize = 4;
    pub const ADD_ADDR_ACCEPTED_MAX: usize = 5;
    pub const FLAGS: usize = 8;
    pub const TOKEN: usize = 12;
    pub const WRITE_SEQ: usize = 16;
    pub const SND_UNA: usize = 24;
    pub const RCV_NXT: usize = 32;
    pub const LOCAL_ADDR_USED: usize = 40;
    pub const LOCAL_ADDR_MAX: usize = 41;
    pub const CSUM_ENABLED: usize = 42;
    pub const RETRANSMITS: usize = 44;
    pub const BYTES_RETRANS: usize = 48;
    pub const BYTES_SENT: usize = 56;
    pub const BYTES_RECEIVED: usize = 64;
    pub const BYTES_ACKED: usize = 72;
    pub const SUBFLOWS_TOTAL: usize = 80;
    pub const ENDP_LAMINAR_MAX: usize = 81;
    pub const ENDP_FULLMESH_MAX: usize = 82;
    pub const LAST_DATA_SENT: usize = 84;
    pub const LAST_DATA_RECV: usize = 88;
    pub const LAST_ACK_RECV: usize = 92;
}

/// Offsets in `struct tcp_info`.
mod ti {
    pub const STATE: usize = 0;
    pub const CA_STATE: usize = 1;
    pub const RETRANSMITS: usize = 2;
    pub const PROBES: usize = 3;
    pub const BACKOFF: usize = 4;
    pub const OPTIONS: usize = 5;
    pub const WSCALE: usize = 6;
    pub const APP_LIMITED: usize = 7;
    pub const RTO: usize = 8;
    pub const ATO: usize = 12;
    pub const SND_MSS: usize = 16;
    pub const RCV_MSS: usize = 20;
    pub const UNACKED: usize = 24;
    pub const SACKED: usize = 28;
    pub const LOST: usize = 32;
    pub const RETRANS: usize = 36;
    // 40 tcpi_fackets (always 0 since 4.x)
    pub const LAST_DATA_SENT: usize = 44;
    // 48 tcpi_last_ack_sent (never set)
    pub const LAST_DATA_RECV: usize = 52;
    pub const LAST_ACK_RECV: usize = 56;
    pub const PMTU: usize = 60;
    pub const RCV_SSTHRESH: usize = 64;
    pub const RTT: usize = 68;
    pub const RTTVAR: usize = 72;
    pub const SND_SSTHRESH: usize = 76;
    pub const SND_CWND: usize = 80;
    pub const ADVMSS: usize = 84;
    pub const REORDERING: usize = 88;
    pub const RCV_RTT: usize = 92;
    pub const RCV_SPACE: usize = 96;
    pub const TOTAL_RETRANS: usize = 100;
    pub const PACING_RATE: usize = 104;
    pub const MAX_PACING_RATE: usize = 112;
    pub const BYTES_ACKED: usize = 120;
    pub const BYTES_RECEIVED: usize = 128;
    pub const SEGS_OUT: usize = 136;
    pub const SEGS_IN: usize = 140;
    pub const NOTSENT_BYTES: usize = 144;
    pub const MIN_RTT: usize = 148;
    pub const DATA_SEGS_IN: usize = 152;
    pub const DATA_SEGS_OUT: usize = 156;
    pub const DELIVERY_RATE: usize = 160;
    pub const BUSY_TIME: usize = 168;
    pub const RWND_LIMITED: usize = 176;
    pub const SNDBUF_LIMITED: usize = 184;
    pub const DELIVERED: usize = 192;
    pub const DELIVERED_CE: usize = 196;
    pub const BYTES_SENT: usize = 200;
    pub const BYTES_RETRANS: usize = 208;
    pub const DSACK_DUPS: usize = 216;
    pub const REORD_SEEN: usize = 220;
    pub const RCV_OOOPACK: usize = 224;
    pub const SND_WND: usize = 228;
    pub const RCV_WND: usize = 232;
    pub const REHASH: usize = 236;
    pub const TOTAL_RTO: usize = 240;
    pub const TOTAL_RTO_RECOVERIES: usize = 242;
    pub const TOTAL_RTO_TIME: usize = 244;
    pub const RECEIVED_CE: usize = 248;
    pub const DELIVERED_E1_BYTES: usize = 252;
    pub const DELIVERED_E0_BYTES: usize = 256;
    pub const DELIVERED_CE_BYTES: usize = 260;
    pub const RECEIVED_E1_BYTES: usize = 264;
    pub const RECEIVED_E0_BYTES: usize = 268;
    pub const RECEIVED_CE_BYTES: usize = 272;
    // 276: AccECN mode/fail bits; their layout changed after 6.18, so they are not read.
}

/// Offsets in `struct mptcp_full_info`.
mod fi {
    pub const SIZE_TCPINFO_KERNEL: usize = 0;
    pub const SIZE_TCPINFO_USER: usize = 4;
    pub const SIZE_SFINFO_KERNEL: usize = 8;
    pub const SIZE_SFINFO_USER: usize = 12;
    pub const NUM_SUBFLOWS: usize = 16;
    pub const SIZE_ARRAYS_USER: usize = 20;
    pub const SUBFLOW_INFO: usize = 24;
    pub const TCP_INFO: usize = 32;
}

/// Checked, native-endian reads at fixed offsets: `None` when the bytes are not there.
#[derive(Clone, Copy)]
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn array<const N: usize>(self, off: usize) -> Option<[u8; N]> {
        let end = off.checked_add(N)?;
        self.0.get(off..end)?.try_into().ok()
    }
    fn u8(self, off: usize) -> Option<u8> {
        self.0.get(off).copied()
    }
    fn u16(self, off: usize) -> Option<u16> {
        self.array(off).map(u16::from_ne_bytes)
    }
    fn u32(self, off: usize) -> Option<u32> {
        self.array(off).map(u32::from_ne_bytes)
    }
    fn u64(self, off: usize) -> Option<u64> {
        self.array(off).map(u64::from_ne_bytes)
    }
    // The `req_*` readers are used only after the length was checked; the default is
    // unreachable and there so that no read can panic.
    fn req_u8(self, off: usize) -> u8 {
        self.u8(off).unwrap_or_default()
    }
    fn req_u32(self, off: usize) -> u32 {
        self.u32(off).unwrap_or_default()
    }
    fn req_u64(self, off: usize) -> u64 {
        self.u64(off).unwrap_or_default()
    }
}

/// Up to `len` bytes of `bytes` from `start`; empty when `start` is past the end.
fn window(bytes: &[u8], start: usize, len: usize) -> &[u8] {
    let rest = bytes.get(start..).unwrap_or(&[]);
    rest.get(..len.min(rest.len())).unwrap_or(&[])
}

fn to_usize(v: u32) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

fn need(what: &'static str, bytes: &[u8], need: usize) -> Result<(), ParseError> {
    if bytes.len() < need {
        Err(ParseError::TooShort {
            what,
            len: bytes.len(),
            need,
        })
    } else {
        Ok(())
    }
}

fn micros(v: u32) -> Duration {
    Duration::from_micros(u64::from(v))
}

fn millis(v: u32) -> Duration {
    Duration::from_millis(u64::from(v))
}

/// Parses a `struct mptcp_info` as returned by `getsockopt(SOL_MPTCP, MPTCP_INFO)` (pass
/// the bytes the kernel reported, i.e. the buffer truncated to the returned optlen).
///
/// Needs at least [`MPTCP_INFO_MIN_LEN`] bytes. A later field is read only when the
/// slice is at least as long as the first layout that had it (80 bytes for the 6.5
/// fields, 88 for 6.8, 96 for 6.10), else it is `None`: `mptcpi_retransmits` and
/// `mptcpi_last_data_sent` sit in what was tail padding of the 48- and 88-byte layouts,
/// which must not be read as values.
pub fn parse_mptcp_info(bytes: &[u8]) -> Result<MptcpInfo, ParseError> {
    need("mptcp_info", bytes, MPTCP_INFO_MIN_LEN)?;
    let f = Fields(bytes);
    let since = |layout_len: usize| (bytes.len() >= layout_len).then_some(f);
    let (v6_5, v6_8, v6_10) = (since(LEN_6_5), since(LEN_6_8), since(MPTCP_INFO_LEN));
    Ok(MptcpInfo {
        kernel_len: bytes.len(),
        subflows: f.req_u8(mi::SUBFLOWS),
        add_addr_signal: f.req_u8(mi::ADD_ADDR_SIGNAL),
        add_addr_accepted: f.req_u8(mi::ADD_ADDR_ACCEPTED),
        subflows_max: f.req_u8(mi::SUBFLOWS_MAX),
        add_addr_signal_max: f.req_u8(mi::ADD_ADDR_SIGNAL_MAX),
        add_addr_accepted_max: f.req_u8(mi::ADD_ADDR_ACCEPTED_MAX),
        flags: MptcpFlags(f.req_u32(mi::FLAGS)),
        token: f.req_u32(mi::TOKEN),
        write_seq: f.req_u64(mi::WRITE_SEQ),
        snd_una: f.req_u64(mi::SND_UNA),
        rcv_nxt: f.req_u64(mi::RCV_NXT),
        local_addr_used: f.req_u8(mi::LOCAL_ADDR_USED),
        local_addr_max: f.req_u8(mi::LOCAL_ADDR_MAX),
        csum_enabled: f.req_u8(mi::CSUM_ENABLED) != 0,
        retransmits: v6_5.and_then(|f| f.u32(mi::RETRANSMITS)),
        bytes_retrans: v6_5.and_then(|f| f.u64(mi::BYTES_RETRANS)),
        bytes_sent: v6_5.and_then(|f| f.u64(mi::BYTES_SENT)),
        bytes_received: v6_5.and_then(|f| f.u64(mi::BYTES_RECEIVED)),
        bytes_acked: v6_5.and_then(|f| f.u64(mi::BYTES_ACKED)),
        subflows_total: v6_8.and_then(|f| f.u8(mi::SUBFLOWS_TOTAL)),
        endp_laminar_max: v6_8.and_then(|f| f.u8(mi::ENDP_LAMINAR_MAX)),
        endp_fullmesh_max: v6_8.and_then(|f| f.u8(mi::ENDP_FULLMESH_MAX)),
        last_data_sent: v6_10.and_then(|f| f.u32(mi::LAST_DATA_SENT)).map(millis),
        last_data_recv: v6_10.and_then(|f| f.u32(mi::LAST_DATA_RECV)).map(millis),
        last_ack_recv: v6_10.and_then(|f| f.u32(mi::LAST_ACK_RECV)).map(millis),
    })
}

/// Parses a `struct tcp_info` (one element of an `MPTCP_TCPINFO` or `MPTCP_FULL_INFO`
/// array, or a plain `TCP_INFO` reply), given the bytes the kernel copied.
///
/// Needs at least [`TCP_INFO_MIN_LEN`] bytes; later fields beyond the slice are `None`.
pub fn parse_tcp_info(bytes: &[u8]) -> Result<TcpStats, ParseError> {
    need("tcp_info", bytes, TCP_INFO_MIN_LEN)?;
    let f = Fields(bytes);
    // C bitfields: the first member takes the low bits on little-endian targets and the
    // high bits on big-endian ones.
    let wscale = f.req_u8(ti::WSCALE);
    let app_limited = f.req_u8(ti::APP_LIMITED);
    let (snd_wscale, rcv_wscale, delivery_rate_app_limited) = if cfg!(target_endian = "big") {
        (wscale >> 4, wscale & 0x0f, app_limited & 0x80 != 0)
    } else {
        (wscale & 0x0f, wscale >> 4, app_limited & 0x01 != 0)
    };
    Ok(TcpStats {
        kernel_len: bytes.len(),
        state: TcpState::from_raw(f.req_u8(ti::STATE)),
        ca_state: TcpCaState::from_raw(f.req_u8(ti::CA_STATE)),
        retransmits: f.req_u8(ti::RETRANSMITS),
        probes: f.req_u8(ti::PROBES),
        backoff: f.req_u8(ti::BACKOFF),
        options: f.req_u8(ti::OPTIONS),
        snd_wscale,
        rcv_wscale,
        delivery_rate_app_limited,
        rto: micros(f.req_u32(ti::RTO)),
        ato: micros(f.req_u32(ti::ATO)),
        snd_mss: f.req_u32(ti::SND_MSS),
        rcv_mss: f.req_u32(ti::RCV_MSS),
        unacked: f.req_u32(ti::UNACKED),
        sacked: f.req_u32(ti::SACKED),
        lost: f.req_u32(ti::LOST),
        retrans: f.req_u32(ti::RETRANS),
        last_data_sent: millis(f.req_u32(ti::LAST_DATA_SENT)),
        last_data_recv: millis(f.req_u32(ti::LAST_DATA_RECV)),
        last_ack_recv: millis(f.req_u32(ti::LAST_ACK_RECV)),
        pmtu: f.req_u32(ti::PMTU),
        rcv_ssthresh: f.req_u32(ti::RCV_SSTHRESH),
        rtt: micros(f.req_u32(ti::RTT)),
        rttvar: micros(f.req_u32(ti::RTTVAR)),
        snd_ssthresh: f.req_u32(ti::SND_SSTHRESH),
        snd_cwnd: f.req_u32(ti::SND_CWND),
        advmss: f.req_u32(ti::ADVMSS),
        reordering: f.req_u32(ti::REORDERING),
        rcv_rtt: micros(f.req_u32(ti::RCV_RTT)),
        rcv_space: f.req_u32(ti::RCV_SPACE),
        total_retrans: f.req_u32(ti::TOTAL_RETRANS),
        pacing_rate: f.u64(ti::PACING_RATE),
        max_pacing_rate: f.u64(ti::MAX_PACING_RATE),
        bytes_acked: f.u64(ti::BYTES_ACKED),
        bytes_received: f.u64(ti::BYTES_RECEIVED),
        segs_out: f.u32(ti::SEGS_OUT),
        segs_in: f.u32(ti::SEGS_IN),
        notsent_bytes: f.u32(ti::NOTSENT_BYTES),
        min_rtt: f.u32(ti::MIN_RTT).map(micros),
        data_segs_in: f.u32(ti::DATA_SEGS_IN),
        data_segs_out: f.u32(ti::DATA_SEGS_OUT),
        delivery_rate: f.u64(ti::DELIVERY_RATE),
        busy_time: f.u64(ti::BUSY_TIME).map(Duration::from_micros),
        rwnd_limited: f.u64(ti::RWND_LIMITED).map(Duration::from_micros),
        sndbuf_limited: f.u64(ti::SNDBUF_LIMITED).map(Duration::from_micros),
        delivered: f.u32(ti::DELIVERED),
        delivered_ce: f.u32(ti::DELIVERED_CE),
        bytes_sent: f.u64(ti::BYTES_SENT),
        bytes_retrans: f.u64(ti::BYTES_RETRANS),
        dsack_dups: f.u32(ti::DSACK_DUPS),
        reord_seen: f.u32(ti::REORD_SEEN),
        rcv_ooopack: f.u32(ti::RCV_OOOPACK),
        snd_wnd: f.u32(ti::SND_WND),
        rcv_wnd: f.u32(ti::RCV_WND),
        rehash: f.u32(ti::REHASH),
        total_rto: f.u16(ti::TOTAL_RTO),
        total_rto_recoveries: f.u16(ti::TOTAL_RTO_RECOVERIES),
        total_rto_time: f.u32(ti::TOTAL_RTO_TIME).map(millis),
        received_ce: f.u32(ti::RECEIVED_CE),
        delivered_e1_bytes: f.u32(ti::DELIVERED_E1_BYTES),
        delivered_e0_bytes: f.u32(ti::DELIVERED_E0_BYTES),
        delivered_ce_bytes: f.u32(ti::DELIVERED_CE_BYTES),
        received_e1_bytes: f.u32(ti::RECEIVED_E1_BYTES),
        received_e0_bytes: f.u32(ti::RECEIVED_E0_BYTES),
        received_ce_bytes: f.u32(ti::RECEIVED_CE_BYTES),
    })
}

/// Parses a socket address from a `sockaddr_storage`-like union (as in
/// `struct mptcp_subflow_addrs`): `AF_UNSPEC` gives `Ok(None)`, `AF_INET` needs 8 bytes,
/// `AF_INET6` needs 28 (`sockaddr_in6`), any other family is an error.
///
/// The IPv6 flow info and scope id are taken as the raw fields, as `std` does.
pub fn parse_sockaddr(bytes: &[u8]) -> Result<Option<SocketAddr>, ParseError> {
    let f = Fields(bytes);
    let family = f.u16(0).ok_or(ParseError::TooShort {
        what: "sockaddr",
        len: bytes.len(),
        need: 2,
    })?;
    match family {
        AF_UNSPEC => Ok(None),
        AF_INET => {
            need("sockaddr_in", bytes, 8)?;
            let port = u16::from_be_bytes(f.array(2).unwrap_or_default());
            let ip = Ipv4Addr::from(f.array::<4>(4).unwrap_or_default());
            Ok(Some(SocketAddr::V4(SocketAddrV4::new(ip, port))))
        }
        AF_INET6 => {
            need("sockaddr_in6", bytes, 28)?;
            let port = u16::from_be_bytes(f.array(2).unwrap_or_default());
            let flowinfo = f.req_u32(4);
            let ip = Ipv6Addr::from(f.array::<16>(8).unwrap_or_default());
            let scope_id = f.req_u32(24);
            Ok(Some(SocketAddr::V6(SocketAddrV6::new(
                ip, port, flowinfo, scope_id,
            ))))
        }
        family => Err(ParseError::UnknownFamily { family }),
    }
}

/// A subflow's `(local, remote)` addresses from `struct mptcp_subflow_addrs`; `None` where
/// the kernel reported none (or the element did not reach that far).
pub type SubflowAddrs = (Option<SocketAddr>, Option<SocketAddr>);

/// Parses a `struct mptcp_subflow_addrs` element of which the kernel copied `bytes`:
/// local address in the first 128 bytes, remote in the next 128. An address the copy
/// does not reach at all is `None`.
fn parse_addrs_pair(bytes: &[u8]) -> Result<SubflowAddrs, ParseError> {
    let local = window(bytes, 0, SOCKADDR_STORAGE_LEN);
    let remote = window(bytes, SOCKADDR_STORAGE_LEN, SOCKADDR_STORAGE_LEN);
    let local = if local.is_empty() {
        None
    } else {
        parse_sockaddr(local)?
    };
    let remote = if remote.is_empty() {
        None
    } else {
        parse_sockaddr(remote)?
    };
    Ok((local, remote))
}

/// The `struct mptcp_subflow_data` header of `MPTCP_TCPINFO` and `MPTCP_SUBFLOW_ADDRS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SubflowData {
    /// Size of this header as the caller declared it; the array starts at this offset.
    pub size_subflow_data: u32,
    /// Real number of subflows (set by the kernel), even when fewer elements fit.
    pub num_subflows: u32,
    /// Size of one element in the kernel (set by the kernel).
    pub size_kernel: u32,
    /// Size of one element in the reply: the caller's size, clamped by the kernel to
    /// `size_kernel`. Elements are laid out at this stride.
    pub size_user: u32,
}

/// Encodes the request header for `MPTCP_TCPINFO` / `MPTCP_SUBFLOW_ADDRS`: declares a
/// 16-byte header and elements of `size_user` bytes. Put it at the start of a buffer of
/// `16 + n * size_user` bytes (the rest zeroed) to receive up to `n` elements.
pub fn subflow_data_request(size_user: u32) -> [u8; 16] {
    let mut out = [0u8; 16];
    // SUBFLOW_DATA_LEN (16) always fits in u32.
    out[0..4].copy_from_slice(&16u32.to_ne_bytes());
    out[12..16].copy_from_slice(&size_user.to_ne_bytes());
    out
}

/// Parses the 16-byte `struct mptcp_subflow_data` header at the start of a reply.
pub fn parse_subflow_data(bytes: &[u8]) -> Result<SubflowData, ParseError> {
    need("mptcp_subflow_data", bytes, SUBFLOW_DATA_LEN)?;
    let f = Fields(bytes);
    Ok(SubflowData {
        size_subflow_data: f.req_u32(0),
        num_subflows: f.req_u32(4),
        size_kernel: f.req_u32(8),
        size_user: f.req_u32(12),
    })
}

/// A parsed `MPTCP_TCPINFO` or `MPTCP_SUBFLOW_ADDRS` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubflowReply<T> {
    /// The reply's header.
    pub header: SubflowData,
    /// The elements the buffer held, in the kernel's subflow order (at most
    /// `header.num_subflows`).
    pub items: Vec<T>,
}

impl<T> SubflowReply<T> {
    /// Every subflow fitted; when `false`, retry with room for `header.num_subflows`.
    pub fn is_complete(&self) -> bool {
        u64::try_from(self.items.len()).unwrap_or(u64::MAX) >= u64::from(self.header.num_subflows)
    }
}

/// Walks the array after a `struct mptcp_subflow_data` header, the way
/// `mptcp_getsockopt_tcpinfo`/`_subflow_addrs` write it: elements start at
/// `size_subflow_data`, follow each other at stride `size_user`, and hold
/// `min(size_kernel, size_user)` meaningful bytes; only whole elements were written.
fn parse_subflow_reply<T>(
    bytes: &[u8],
    parse: impl Fn(&[u8]) -> Result<T, ParseError>,
) -> Result<SubflowReply<T>, ParseError> {
    let header = parse_subflow_data(bytes)?;
    if to_usize(header.size_subflow_data) < SUBFLOW_DATA_LEN {
        return Err(ParseError::Invalid {
            what: "mptcp_subflow_data.size_subflow_data",
            value: u64::from(header.size_subflow_data),
            reason: "smaller than the 16-byte header",
        });
    }
    let data = bytes
        .get(to_usize(header.size_subflow_data)..)
        .unwrap_or(&[]);
    let stride = to_usize(header.size_user);
    let copied = to_usize(header.size_user.min(header.size_kernel));
    let mut items = Vec::new();
    // A zero stride means nothing was copied.
    if let Some(fit) = data.len().checked_div(stride) {
        let count = fit.min(to_usize(header.num_subflows));
        for i in 0..count {
            // i < data.len() / stride, so i * stride <= data.len(): no overflow.
            let start = i.saturating_mul(stride);
            items.push(parse(window(data, start, copied))?);
        }
    }
    Ok(SubflowReply { header, items })
}

/// Parses an `MPTCP_TCPINFO` reply (header plus `struct tcp_info` array), given the
/// bytes the kernel reported (the buffer truncated to the returned optlen).
pub fn parse_tcpinfo_reply(bytes: &[u8]) -> Result<SubflowReply<TcpStats>, ParseError> {
    parse_subflow_reply(bytes, parse_tcp_info)
}

/// Parses an `MPTCP_SUBFLOW_ADDRS` reply (header plus `struct mptcp_subflow_addrs`
/// array): `(local, remote)` per subflow.
pub fn parse_subflow_addrs_reply(bytes: &[u8]) -> Result<SubflowReply<SubflowAddrs>, ParseError> {
    parse_subflow_reply(bytes, parse_addrs_pair)
}

/// Pairs the results of `MPTCP_TCPINFO` and `MPTCP_SUBFLOW_ADDRS` (the 5.16 to 6.4 path)
/// by position. Subflows can come and go between the two calls: when the two headers'
/// `num_subflows` differ, query again. Missing addresses are `None`; ids are `None`.
pub fn subflows_from_legacy(tcp: Vec<TcpStats>, addrs: Vec<SubflowAddrs>) -> Vec<SubflowInfo> {
    let mut addrs = addrs.into_iter();
    tcp.into_iter()
        .map(|tcp| {
            let (local, remote) = addrs.next().unwrap_or((None, None));
            SubflowInfo {
                id: None,
                local,
                remote,
                tcp,
            }
        })
        .collect()
}

/// A parsed `MPTCP_FULL_INFO` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct FullInfo {
    /// The connection-level info embedded in the reply.
    pub mptcp: MptcpInfo,
    /// The real number of subflows, even when the arrays were too small for all.
    pub num_subflows: u32,
    /// `min(num_subflows, size_arrays_user)` subflows, in the kernel's order.
    pub subflows: Vec<SubflowInfo>,
    /// All subflows fitted (`num_subflows <= size_arrays_user`); when `false`, grow the
    /// arrays to `num_subflows` and ask again.
    pub complete: bool,
    /// `sizeof(struct tcp_info)` in the kernel that answered.
    pub size_tcpinfo_kernel: u32,
    /// `sizeof(struct mptcp_subflow_info)` in the kernel that answered.
    pub size_sfinfo_kernel: u32,
}

/// Encodes a `struct mptcp_full_info` request for `getsockopt(SOL_MPTCP,
/// MPTCP_FULL_INFO)`, optlen 136.
///
/// `subflow_info_ptr` and `tcp_info_ptr` are the addresses of caller-owned buffers of at
/// least `size_arrays_user * size_sfinfo_user` and `size_arrays_user * size_tcpinfo_user`
/// bytes, which must stay alive and unaliased during the call. Sizes larger than the
/// kernel's are fine: the kernel clamps them and reports the stride it used.
pub fn full_info_request(
    size_tcpinfo_user: u32,
    size_sfinfo_user: u32,
    size_arrays_user: u32,
    subflow_info_ptr: u64,
    tcp_info_ptr: u64,
) -> [u8; FULL_INFO_LEN] {
    let mut out = [0u8; FULL_INFO_LEN];
    let mut put = |off: usize, bytes: &[u8]| {
        if let Some(dst) = out.get_mut(off..off + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    };
    put(fi::SIZE_TCPINFO_USER, &size_tcpinfo_user.to_ne_bytes());
    put(fi::SIZE_SFINFO_USER, &size_sfinfo_user.to_ne_bytes());
    put(fi::SIZE_ARRAYS_USER, &size_arrays_user.to_ne_bytes());
    put(fi::SUBFLOW_INFO, &subflow_info_ptr.to_ne_bytes());
    put(fi::TCP_INFO, &tcp_info_ptr.to_ne_bytes());
    out
}

/// Parses an `MPTCP_FULL_INFO` reply: `header` is the `struct mptcp_full_info` buffer
/// truncated to the returned optlen, `subflow_info_array` and `tcp_info_array` the two
/// user buffers whose addresses the request carried.
///
/// As `mptcp_getsockopt_full_info` writes it: the reply's `size_*_user` are the caller's
/// sizes clamped to the kernel's and are the strides of the arrays; the arrays hold
/// `min(num_subflows, size_arrays_user)` elements. The embedded `mptcp_info` is parsed by
/// the length present, so the header needs at least 40 + 48 bytes.
pub fn parse_full_info(
    header: &[u8],
    subflow_info_array: &[u8],
    tcp_info_array: &[u8],
) -> Result<FullInfo, ParseError> {
    need(
        "mptcp_full_info",
        header,
        FULL_INFO_HEADER_LEN + MPTCP_INFO_MIN_LEN,
    )?;
    let f = Fields(header);
    let size_tcpinfo_kernel = f.req_u32(fi::SIZE_TCPINFO_KERNEL);
    let size_tcpinfo_user = f.req_u32(fi::SIZE_TCPINFO_USER);
    let size_sfinfo_kernel = f.req_u32(fi::SIZE_SFINFO_KERNEL);
    let size_sfinfo_user = f.req_u32(fi::SIZE_SFINFO_USER);
    let num_subflows = f.req_u32(fi::NUM_SUBFLOWS);
    let size_arrays_user = f.req_u32(fi::SIZE_ARRAYS_USER);

    let mptcp = parse_mptcp_info(header.get(FULL_INFO_HEADER_LEN..).unwrap_or(&[]))?;

    let count = num_subflows.min(size_arrays_user);
    let tcp_stride = size_tcpinfo_user;
    let tcp_copied = to_usize(size_tcpinfo_user.min(size_tcpinfo_kernel));
    let sf_stride = size_sfinfo_user;
    let sf_copied = to_usize(size_sfinfo_user.min(size_sfinfo_kernel));
    // `struct mptcp_subflow_info` aligns its addresses like `sockaddr_storage` (to the
    // pointer size): at 8 on 64-bit kernels (264 bytes), at 4 on 32-bit ones (260).
    let addrs_off = if size_sfinfo_kernel == 260 { 4 } else { 8 };

    if count > 0 && tcp_copied < TCP_INFO_MIN_LEN {
        return Err(ParseError::TooShort {
            what: "tcp_info",
            len: tcp_copied,
            need: TCP_INFO_MIN_LEN,
        });
    }
    // u32 * u32 always fits in u64.
    let array_need = |stride: u32| u64::from(count) * u64::from(stride);
    for (what, array, stride) in [
        ("tcp_info array", tcp_info_array, tcp_stride),
        ("subflow_info array", subflow_info_array, sf_stride),
    ] {
        let need = array_need(stride);
        if u64::try_from(array.len()).unwrap_or(u64::MAX) < need {
            return Err(ParseError::TooShort {
                what,
                len: array.len(),
                need: usize::try_from(need).unwrap_or(usize::MAX),
            });
        }
    }

    // count * tcp_stride <= tcp_info_array.len() and tcp_stride >= TCP_INFO_MIN_LEN, so
    // the loop below is bounded by the input's length; offsets cannot overflow.
    let mut subflows = Vec::new();
    for i in 0..to_usize(count) {
        let tcp_el = window(
            tcp_info_array,
            i.saturating_mul(to_usize(tcp_stride)),
            tcp_copied,
        );
        let sf_el = window(
            subflow_info_array,
            i.saturating_mul(to_usize(sf_stride)),
            sf_copied,
        );
        let tcp = parse_tcp_info(tcp_el)?;
        let id = Fields(sf_el).u32(0);
        let (local, remote) = parse_addrs_pair(sf_el.get(addrs_off..).unwrap_or(&[]))?;
        subflows.push(SubflowInfo {
            id,
            local,
            remote,
            tcp,
        });
    }

    Ok(FullInfo {
        mptcp,
        num_subflows,
        subflows,
        complete: num_subflows <= size_arrays_user,
        size_tcpinfo_kernel,
        size_sfinfo_kernel,
    })
}

/// Feeds `data` to every parser and checks their invariants; panics only on a broken
/// invariant. Shared by the libFuzzer target `mptcp_info` (`fuzz/` at the repository
/// root, through the `mptcp-fuzz` crate) and the stable unit test.
#[doc(hidden)]
pub fn fuzz_parsers(data: &[u8]) {
    if let Ok(info) = parse_mptcp_info(data) {
        assert_eq!(info.kernel_len, data.len());
        assert_eq!(info.last_ack_recv.is_some(), data.len() >= 96);
    }
    if let Ok(tcp) = parse_tcp_info(data) {
        assert_eq!(tcp.kernel_len, data.len());
    }
    let _ = parse_sockaddr(data);
    let _ = parse_subflow_data(data);
    if let Ok(reply) = parse_tcpinfo_reply(data) {
        assert!(reply.items.len() as u64 <= u64::from(reply.header.num_subflows));
    }
    if let Ok(reply) = parse_subflow_addrs_reply(data) {
        assert!(reply.items.len() as u64 <= u64::from(reply.header.num_subflows));
    }
    // MPTCP_FULL_INFO takes three buffers: the first four bytes give two split points.
    if let (Some(a), Some(b)) = (Fields(data).u16(0), Fields(data).u16(2)) {
        let rest = data.get(4..).unwrap_or(&[]);
        let (header, rest) = rest.split_at(usize::from(a).min(rest.len()));
        let (sf, tcp) = rest.split_at(usize::from(b).min(rest.len()));
        if let Ok(full) = parse_full_info(header, sf, tcp) {
            let expected = u64::from(full.num_subflows)
                .min(u64::from(Fields(header).req_u32(fi::SIZE_ARRAYS_USER)));
            assert_eq!(full.subflows.len() as u64, expected);
            assert_eq!(
                full.complete,
                full.subflows.len() as u64 == u64::from(full.num_subflows)
            );
        }
    }
}
