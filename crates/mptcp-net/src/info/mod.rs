//! MPTCP connection introspection: what the kernel knows about one connection.
//!
//! This module holds the typed views ([`MptcpInfo`], [`SubflowInfo`], [`TcpStats`]) and, in
//! [`wire`], the sans-I/O parsers that turn the kernel's `getsockopt(SOL_MPTCP, ...)` replies
//! into them. Nothing here performs a system call: the socket types of this crate issue the
//! `getsockopt` calls and hand the bytes to [`wire`].
//!
//! # Parsing by length
//!
//! The kernel copies `min(optlen, sizeof(struct))` bytes and reports how many it copied, so an
//! old kernel returns a shorter struct. Every field a reply does not cover is `None`, never a
//! guessed or zero value. Sizes of `struct mptcp_info` by kernel: 48 bytes (5.16 to 6.4), 80
//! (6.5 to 6.7), 88 (6.8 and 6.9), 96 (6.10 and later). Its fields are read only from a reply
//! at least as long as the first layout that had them, because two of them sit in what was
//! tail padding before (`mptcpi_retransmits` at 44 in the 48-byte layout,
//! `mptcpi_last_data_sent` at 84 in the 88-byte one). `struct tcp_info` grows the same way
//! (104 bytes is the oldest layout accepted here, 232 on 6.1, 248 on 6.7 to 6.17, 280 on 6.18)
//! without reusing padding, so its fields are present when the reply covers them.
//!
//! Fields that a newer kernel put in former padding cannot be told apart from padding by
//! length: `endp_laminar_max` (6.18) and `endp_fullmesh_max` (6.19) live in bytes 81 and 82 of
//! `struct mptcp_info`, which 6.8 to 6.17 kernels return as zero. They are `Some` whenever the
//! reply has the 6.8 layout (88 bytes) or a later one, so `Some(0)` means "zero, or a kernel
//! that predates the field".
//!
//! # Units
//!
//! Times are [`Duration`]s (the kernel reports microseconds for RTT-like values and
//! milliseconds for the `last_*` ages), rates are bytes per second, sequence numbers and byte
//! counters are plain integers.
//!
//! The layouts are those of Linux on 64-bit targets (x86-64, aarch64, ...); integers are read
//! in native byte order, ports and addresses in network order, as the kernel writes them.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::Duration;

/// JSON carries times as integer microseconds (fields named `*_us`), which
/// every consumer can read, rather than serde's `{secs, nanos}` default.
#[cfg(feature = "serde")]
mod serde_units {
    use std::time::Duration;

    pub(super) fn micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    pub(super) fn opt_micros<S: serde::Serializer>(
        d: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => micros(d, s),
            None => s.serialize_none(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

/// The `mptcpi_flags` word of `struct mptcp_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct MptcpFlags(pub u32);

impl MptcpFlags {
    /// `MPTCP_INFO_FLAG_FALLBACK`: the connection fell back to plain TCP.
    pub const FALLBACK: u32 = 1 << 0;
    /// `MPTCP_INFO_FLAG_REMOTE_KEY_RECEIVED`: the peer's key arrived (the MPTCP handshake
    /// completed).
    pub const REMOTE_KEY_RECEIVED: u32 = 1 << 1;

    /// The raw flag word, including bits this crate does not know.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// The connection fell back to plain TCP. The socket option fails after a fallback, so
    /// this is only ever seen set through `inet_diag`.
    pub const fn fallback(self) -> bool {
        self.0 & Self::FALLBACK != 0
    }

    /// The peer's key was received: the MPTCP handshake completed.
    pub const fn remote_key_received(self) -> bool {
        self.0 & Self::REMOTE_KEY_RECEIVED != 0
    }
}

/// Connection-level MPTCP state: the kernel's `struct mptcp_info`.
///
/// Fields wrapped in `Option` are `None` when the kernel's reply was too short to contain
/// them (an older kernel); the comment on each says from which kernel it is reported.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct MptcpInfo {
    /// How many bytes of `struct mptcp_info` the kernel returned (48, 80, 88, 96, ...).
    pub kernel_len: usize,
    /// Subflows in use beyond the initial one (`mptcpi_subflows`, a.k.a. extra subflows).
    pub subflows: u8,
    /// ADD_ADDR announcements this host sent (`mptcpi_add_addr_signal`).
    pub add_addr_signal: u8,
    /// ADD_ADDR announcements from the peer that were accepted (`mptcpi_add_addr_accepted`).
    pub add_addr_accepted: u8,
    /// Limit on extra subflows (`mptcpi_subflows_max`); in-kernel path manager only, else 0.
    pub subflows_max: u8,
    /// Number of `signal` endpoints (`mptcpi_add_addr_signal_max`); in-kernel PM only.
    pub add_addr_signal_max: u8,
    /// Limit on accepted ADD_ADDRs (`mptcpi_add_addr_accepted_max`); in-kernel PM only.
    pub add_addr_accepted_max: u8,
    /// `mptcpi_flags`, decoded by [`MptcpFlags`].
    pub flags: MptcpFlags,
    /// The connection token (`mptcpi_token`), as shown by `ss -M` and path-manager events.
    pub token: u32,
    /// Next data sequence number to be written (`mptcpi_write_seq`).
    pub write_seq: u64,
    /// Oldest unacknowledged data sequence number (`mptcpi_snd_una`).
    pub snd_una: u64,
    /// Next data sequence number expected from the peer (`mptcpi_rcv_nxt`).
    pub rcv_nxt: u64,
    /// Local addresses (endpoints) used by subflows (`mptcpi_local_addr_used`).
    pub local_addr_used: u8,
    /// Number of `subflow` endpoints (`mptcpi_local_addr_max`); in-kernel PM only.
    pub local_addr_max: u8,
    /// DSS checksums are in use on this connection (`mptcpi_csum_enabled`).
    pub csum_enabled: bool,
    /// Data-level retransmissions (`mptcpi_retransmits`). Linux 6.5+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub retransmits: Option<u32>,
    /// Bytes retransmitted at the data level (`mptcpi_bytes_retrans`). Linux 6.5+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub bytes_retrans: Option<u64>,
    /// Bytes sent at the data level, retransmissions included (`mptcpi_bytes_sent`). 6.5+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub bytes_sent: Option<u64>,
    /// Bytes received at the data level (`mptcpi_bytes_received`). Linux 6.5+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub bytes_received: Option<u64>,
    /// Bytes acknowledged by the peer at the data level (`mptcpi_bytes_acked`). Linux 6.5+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub bytes_acked: Option<u64>,
    /// All subflows, the initial one included (`mptcpi_subflows_total`). Linux 6.8+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub subflows_total: Option<u8>,
    /// Number of `laminar` endpoints (`mptcpi_endp_laminar_max`, Linux 6.18+). `Some` from the
    /// 88-byte layout on; a 6.8 to 6.17 kernel reports 0 there (see the module docs).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub endp_laminar_max: Option<u8>,
    /// Number of `fullmesh` endpoints (`mptcpi_endp_fullmesh_max`, Linux 6.19+). `Some` from
    /// the 88-byte layout on; older kernels report 0 there (see the module docs).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub endp_fullmesh_max: Option<u8>,
    /// Time since data was last sent on any subflow (`mptcpi_last_data_sent`). Linux 6.10+.
    #[cfg_attr(
        feature = "serde",
        serde(
            rename = "last_data_sent_us",
            serialize_with = "serde_units::opt_micros"
        )
    )]
    pub last_data_sent: Option<Duration>,
    /// Time since data was last received (`mptcpi_last_data_recv`). Linux 6.10+.
    #[cfg_attr(
        feature = "serde",
        serde(
            rename = "last_data_recv_us",
            serialize_with = "serde_units::opt_micros"
        )
    )]
    pub last_data_recv: Option<Duration>,
    /// Time since the last data-level ACK was received (`mptcpi_last_ack_recv`). 6.10+.
    #[cfg_attr(
        feature = "serde",
        serde(
            rename = "last_ack_recv_us",
            serialize_with = "serde_units::opt_micros"
        )
    )]
    pub last_ack_recv: Option<Duration>,
}

impl MptcpInfo {
    /// Bytes written and not yet acknowledged by the peer at the data level
    /// (`write_seq - snd_una`): 0 once everything written has been delivered.
    /// (A half-close waits for it where an answer matters: see the crate docs,
    /// "Half-closing".)
    pub fn bytes_unacked(&self) -> u64 {
        self.write_seq.wrapping_sub(self.snd_una)
    }
}

/// TCP state of a subflow (`tcpi_state`, the kernel's `TCP_*` states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum TcpState {
    /// `TCP_ESTABLISHED` (1).
    Established,
    /// `TCP_SYN_SENT` (2).
    SynSent,
    /// `TCP_SYN_RECV` (3).
    SynRecv,
    /// `TCP_FIN_WAIT1` (4).
    FinWait1,
    /// `TCP_FIN_WAIT2` (5).
    FinWait2,
    /// `TCP_TIME_WAIT` (6).
    TimeWait,
    /// `TCP_CLOSE` (7).
    Close,
    /// `TCP_CLOSE_WAIT` (8).
    CloseWait,
    /// `TCP_LAST_ACK` (9).
    LastAck,
    /// `TCP_LISTEN` (10).
    Listen,
    /// `TCP_CLOSING` (11).
    Closing,
    /// `TCP_NEW_SYN_RECV` (12).
    NewSynRecv,
    /// `TCP_BOUND_INACTIVE` (13).
    BoundInactive,
    /// A value this crate does not know.
    Unknown(u8),
}

impl TcpState {
    /// Decodes the kernel's numeric state.
    pub const fn from_raw(raw: u8) -> Self {
        match raw {
            1 => Self::Established,
            2 => Self::SynSent,
            3 => Self::SynRecv,
            4 => Self::FinWait1,
            5 => Self::FinWait2,
            6 => Self::TimeWait,
            7 => Self::Close,
            8 => Self::CloseWait,
            9 => Self::LastAck,
            10 => Self::Listen,
            11 => Self::Closing,
            12 => Self::NewSynRecv,
            13 => Self::BoundInactive,
            other => Self::Unknown(other),
        }
    }

    /// The kernel's numeric state.
    pub const fn as_raw(self) -> u8 {
        match self {
            Self::Established => 1,
            Self::SynSent => 2,
            Self::SynRecv => 3,
            Self::FinWait1 => 4,
            Self::FinWait2 => 5,
            Self::TimeWait => 6,
            Self::Close => 7,
            Self::CloseWait => 8,
            Self::LastAck => 9,
            Self::Listen => 10,
            Self::Closing => 11,
            Self::NewSynRecv => 12,
            Self::BoundInactive => 13,
            Self::Unknown(raw) => raw,
        }
    }

    /// The known states with their names, in the kernel's order.
    const NAMED: [(TcpState, &'static str); 13] = [
        (Self::Established, "established"),
        (Self::SynSent, "syn_sent"),
        (Self::SynRecv, "syn_recv"),
        (Self::FinWait1, "fin_wait1"),
        (Self::FinWait2, "fin_wait2"),
        (Self::TimeWait, "time_wait"),
        (Self::Close, "close"),
        (Self::CloseWait, "close_wait"),
        (Self::LastAck, "last_ack"),
        (Self::Listen, "listen"),
        (Self::Closing, "closing"),
        (Self::NewSynRecv, "new_syn_recv"),
        (Self::BoundInactive, "bound_inactive"),
    ];

    /// The stable snake_case name, as JSON and metric labels write it: `established`,
    /// `syn_sent`, `fin_wait1`, ..., `new_syn_recv`, `bound_inactive`; a state this
    /// crate does not know is `state_N`.
    pub fn name(self) -> std::borrow::Cow<'static, str> {
        match Self::NAMED.iter().find(|(s, _)| *s == self) {
            Some((_, name)) => (*name).into(),
            None => format!("state_{}", self.as_raw()).into(),
        }
    }

    /// The name as `ss` writes it, for tables: `ESTAB`, `SYN-SENT`, `FIN-WAIT-1`,
    /// `UNCONN` (closed), `LISTEN`, ...; `STATE-N` for a state this crate does not know.
    pub fn ss_name(self) -> std::borrow::Cow<'static, str> {
        match self {
            Self::Established => "ESTAB".into(),
            Self::Close => "UNCONN".into(),
            Self::FinWait1 => "FIN-WAIT-1".into(),
            Self::FinWait2 => "FIN-WAIT-2".into(),
            other => other.name().to_ascii_uppercase().replace('_', "-").into(),
        }
    }

    /// The state named `name`, in [`name`](Self::name)'s or
    /// [`ss_name`](Self::ss_name)'s spelling, any case, `-` or `_`
    /// (`ESTAB`, `syn-sent`, `FIN-WAIT-1`, `fin_wait1`, `UNCONN`).
    pub fn from_name(name: &str) -> Option<TcpState> {
        let name = name.to_ascii_lowercase().replace('-', "_");
        let name = match name.as_str() {
            "estab" => "established",
            "unconn" => "close",
            "fin_wait_1" => "fin_wait1",
            "fin_wait_2" => "fin_wait2",
            other => other,
        };
        Self::NAMED
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(state, _)| *state)
    }

    /// Every name [`from_name`](Self::from_name) knows, in the kernel's order.
    pub fn names() -> impl Iterator<Item = &'static str> {
        Self::NAMED.iter().map(|(_, name)| *name)
    }
}

/// Congestion-avoidance state of a subflow (`tcpi_ca_state`, the kernel's `TCP_CA_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum TcpCaState {
    /// `TCP_CA_Open` (0): nothing wrong.
    Open,
    /// `TCP_CA_Disorder` (1): SACKs or duplicate ACKs seen.
    Disorder,
    /// `TCP_CA_CWR` (2): the window was reduced on an ECN or local congestion signal.
    Cwr,
    /// `TCP_CA_Recovery` (3): fast retransmit in progress.
    Recovery,
    /// `TCP_CA_Loss` (4): recovering from a retransmission timeout.
    Loss,
    /// A value this crate does not know.
    Unknown(u8),
}

impl TcpCaState {
    /// Decodes the kernel's numeric state.
    pub const fn from_raw(raw: u8) -> Self {
        match raw {
            0 => Self::Open,
            1 => Self::Disorder,
            2 => Self::Cwr,
            3 => Self::Recovery,
            4 => Self::Loss,
            other => Self::Unknown(other),
        }
    }

    /// The kernel's numeric state.
    pub const fn as_raw(self) -> u8 {
        match self {
            Self::Open => 0,
            Self::Disorder => 1,
            Self::Cwr => 2,
            Self::Recovery => 3,
            Self::Loss => 4,
            Self::Unknown(raw) => raw,
        }
    }
}

/// The useful part of a subflow's `struct tcp_info`.
///
/// Fields up to `total_retrans` (the first 104 bytes) are always present; every later field
/// is `None` when the kernel's reply is too short to contain it. The comment on each says from
/// which kernel it is reported.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct TcpStats {
    /// How many bytes of `struct tcp_info` the kernel returned (232 on 6.1, 280 on 6.18, ...).
    pub kernel_len: usize,
    /// TCP state (`tcpi_state`).
    pub state: TcpState,
    /// Congestion-avoidance state (`tcpi_ca_state`).
    pub ca_state: TcpCaState,
    /// Consecutive retransmission timeouts of the current segment (`tcpi_retransmits`).
    pub retransmits: u8,
    /// Unanswered zero-window probes (`tcpi_probes`).
    pub probes: u8,
    /// Exponential backoff of the retransmission timer (`tcpi_backoff`).
    pub backoff: u8,
    /// Negotiated options (`tcpi_options`): `TCPI_OPT_TIMESTAMPS` 1, `SACK` 2, `WSCALE` 4,
    /// `ECN` 8, `ECN_SEEN` 16, `SYN_DATA` 32, `USEC_TS` 64, `TFO_CHILD` 128.
    pub options: u8,
    /// Send window scale (`tcpi_snd_wscale`).
    pub snd_wscale: u8,
    /// Receive window scale (`tcpi_rcv_wscale`).
    pub rcv_wscale: u8,
    /// The last delivery-rate sample was application-limited
    /// (`tcpi_delivery_rate_app_limited`).
    pub delivery_rate_app_limited: bool,
    /// Retransmission timeout (`tcpi_rto`).
    #[cfg_attr(
        feature = "serde",
        serde(rename = "rto_us", serialize_with = "serde_units::micros")
    )]
    pub rto: Duration,
    /// Delayed-ACK timeout (`tcpi_ato`).
    #[cfg_attr(
        feature = "serde",
        serde(rename = "ato_us", serialize_with = "serde_units::micros")
    )]
    pub ato: Duration,
    /// Send maximum segment size, bytes (`tcpi_snd_mss`).
    pub snd_mss: u32,
    /// Estimated receive maximum segment size, bytes (`tcpi_rcv_mss`).
    pub rcv_mss: u32,
    /// Segments in flight, not yet acknowledged (`tcpi_unacked`).
    pub unacked: u32,
    /// Segments selectively acknowledged (`tcpi_sacked`).
    pub sacked: u32,
    /// Segments currently considered lost (`tcpi_lost`).
    pub lost: u32,
    /// Retransmitted segments still in flight (`tcpi_retrans`).
    pub retrans: u32,
    /// Time since data was last sent (`tcpi_last_data_sent`).
    #[cfg_attr(
        feature = "serde",
        serde(rename = "last_data_sent_us", serialize_with = "serde_units::micros")
    )]
    pub last_data_sent: Duration,
    /// Time since data was last received (`tcpi_last_data_recv`).
    #[cfg_attr(
        feature = "serde",
        serde(rename = "last_data_recv_us", serialize_with = "serde_units::micros")
    )]
    pub last_data_recv: Duration,
    /// Time since an ACK was last received (`tcpi_last_ack_recv`).
    #[cfg_attr(
        feature = "serde",
        serde(rename = "last_ack_recv_us", serialize_with = "serde_units::micros")
    )]
    pub last_ack_recv: Duration,
    /// Path MTU, bytes (`tcpi_pmtu`).
    pub pmtu: u32,
    /// Receive slow-start threshold, bytes (`tcpi_rcv_ssthresh`).
    pub rcv_ssthresh: u32,
    /// Smoothed round-trip time (`tcpi_rtt`).
    #[cfg_attr(
        feature = "serde",
        serde(rename = "rtt_us", serialize_with = "serde_units::micros")
    )]
    pub rtt: Duration,
    /// Round-trip time variation (`tcpi_rttvar`).
    #[cfg_attr(
        feature = "serde",
        serde(rename = "rttvar_us", serialize_with = "serde_units::micros")
    )]
    pub rttvar: Duration,
    /// Slow-start threshold, segments (`tcpi_snd_ssthresh`; `0x7fffffff` until first loss).
    pub snd_ssthresh: u32,
    /// Congestion window, segments (`tcpi_snd_cwnd`).
    pub snd_cwnd: u32,
    /// Advertised MSS, bytes (`tcpi_advmss`).
    pub advmss: u32,
    /// Reordering metric, segments (`tcpi_reordering`).
    pub reordering: u32,
    /// Receiver-side RTT estimate (`tcpi_rcv_rtt`; zero until measured).
    #[cfg_attr(
        feature = "serde",
        serde(rename = "rcv_rtt_us", serialize_with = "serde_units::micros")
    )]
    pub rcv_rtt: Duration,
    /// Receive buffer space the receiver aims for, bytes (`tcpi_rcv_space`).
    pub rcv_space: u32,
    /// Segments retransmitted over the subflow's life (`tcpi_total_retrans`).
    pub total_retrans: u32,
    /// Pacing rate, bytes/s (`tcpi_pacing_rate`; `u64::MAX` when unlimited).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub pacing_rate: Option<u64>,
    /// Pacing-rate cap set with `SO_MAX_PACING_RATE`, bytes/s (`u64::MAX` when unset).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub max_pacing_rate: Option<u64>,
    /// Bytes acknowledged by the peer (`tcpi_bytes_acked`). Linux 4.1+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub bytes_acked: Option<u64>,
    /// Bytes received (`tcpi_bytes_received`). Linux 4.1+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub bytes_received: Option<u64>,
    /// Segments sent, retransmissions included (`tcpi_segs_out`). Linux 4.2+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub segs_out: Option<u32>,
    /// Segments received (`tcpi_segs_in`). Linux 4.2+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub segs_in: Option<u32>,
    /// Bytes written but not yet sent (`tcpi_notsent_bytes`). Linux 4.6+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub notsent_bytes: Option<u32>,
    /// Minimum RTT seen (`tcpi_min_rtt`; `u32::MAX` µs before the first sample). 4.6+.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "min_rtt_us", serialize_with = "serde_units::opt_micros")
    )]
    pub min_rtt: Option<Duration>,
    /// Segments received carrying data (`tcpi_data_segs_in`). Linux 4.6+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub data_segs_in: Option<u32>,
    /// Segments sent carrying data (`tcpi_data_segs_out`). Linux 4.6+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub data_segs_out: Option<u32>,
    /// Most recent delivery-rate estimate, bytes/s (`tcpi_delivery_rate`). Linux 4.9+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub delivery_rate: Option<u64>,
    /// Time spent busy sending data (`tcpi_busy_time`). Linux 4.10+.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "busy_time_us", serialize_with = "serde_units::opt_micros")
    )]
    pub busy_time: Option<Duration>,
    /// Time limited by the peer's receive window (`tcpi_rwnd_limited`). Linux 4.10+.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "rwnd_limited_us", serialize_with = "serde_units::opt_micros")
    )]
    pub rwnd_limited: Option<Duration>,
    /// Time limited by the send buffer (`tcpi_sndbuf_limited`). Linux 4.10+.
    #[cfg_attr(
        feature = "serde",
        serde(
            rename = "sndbuf_limited_us",
            serialize_with = "serde_units::opt_micros"
        )
    )]
    pub sndbuf_limited: Option<Duration>,
    /// Segments delivered, retransmissions included (`tcpi_delivered`). Linux 4.18+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub delivered: Option<u32>,
    /// Delivered segments that were ECN CE-marked (`tcpi_delivered_ce`). Linux 4.18+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub delivered_ce: Option<u32>,
    /// Bytes sent, retransmissions included (`tcpi_bytes_sent`). Linux 4.19+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub bytes_sent: Option<u64>,
    /// Bytes retransmitted (`tcpi_bytes_retrans`). Linux 4.19+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub bytes_retrans: Option<u64>,
    /// Duplicate segments reported by DSACK (`tcpi_dsack_dups`). Linux 4.19+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub dsack_dups: Option<u32>,
    /// Reordering events seen (`tcpi_reord_seen`). Linux 4.19+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub reord_seen: Option<u32>,
    /// Out-of-order packets received (`tcpi_rcv_ooopack`). Linux 5.4+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub rcv_ooopack: Option<u32>,
    /// Peer's advertised receive window after scaling, bytes (`tcpi_snd_wnd`). Linux 5.4+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub snd_wnd: Option<u32>,
    /// Local advertised receive window after scaling, bytes (`tcpi_rcv_wnd`). Linux 6.2+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub rcv_wnd: Option<u32>,
    /// PLB or timeout-triggered rehash attempts (`tcpi_rehash`). Linux 6.2+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub rehash: Option<u32>,
    /// Retransmission timeouts, SYN and recurring ones included (`tcpi_total_rto`). 6.7+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub total_rto: Option<u16>,
    /// RTO recoveries, an unfinished one included (`tcpi_total_rto_recoveries`). 6.7+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub total_rto_recoveries: Option<u16>,
    /// Time spent in RTO recoveries (`tcpi_total_rto_time`). Linux 6.7+.
    #[cfg_attr(
        feature = "serde",
        serde(
            rename = "total_rto_time_us",
            serialize_with = "serde_units::opt_micros"
        )
    )]
    pub total_rto_time: Option<Duration>,
    /// CE-marked segments received (`tcpi_received_ce`). Linux 6.18+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub received_ce: Option<u32>,
    /// Accurate ECN: ECT(1)-marked payload bytes delivered (`tcpi_delivered_e1_bytes`). 6.18+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub delivered_e1_bytes: Option<u32>,
    /// Accurate ECN: ECT(0)-marked payload bytes delivered (`tcpi_delivered_e0_bytes`). 6.18+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub delivered_e0_bytes: Option<u32>,
    /// Accurate ECN: CE-marked payload bytes delivered (`tcpi_delivered_ce_bytes`). 6.18+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub delivered_ce_bytes: Option<u32>,
    /// Accurate ECN: ECT(1)-marked payload bytes received (`tcpi_received_e1_bytes`). 6.18+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub received_e1_bytes: Option<u32>,
    /// Accurate ECN: ECT(0)-marked payload bytes received (`tcpi_received_e0_bytes`). 6.18+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub received_e0_bytes: Option<u32>,
    /// Accurate ECN: CE-marked payload bytes received (`tcpi_received_ce_bytes`). 6.18+.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub received_ce_bytes: Option<u32>,
}

/// One subflow of an MPTCP connection: its addresses and TCP statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SubflowInfo {
    /// The kernel's subflow id (`mptcp_subflow_info.id`, 1 for the initial subflow). `None`
    /// on kernels before 6.5, where `MPTCP_FULL_INFO` and so ids are not available.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub id: Option<u32>,
    /// Local address and port; `None` when the kernel reported none.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub local: Option<SocketAddr>,
    /// Remote address and port; `None` when the kernel reported none.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub remote: Option<SocketAddr>,
    /// The subflow's TCP statistics.
    pub tcp: TcpStats,
}

/// A byte buffer from the kernel that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The buffer is shorter than the smallest layout the parser accepts.
    TooShort {
        /// What was being parsed (`"mptcp_info"`, `"tcp_info"`, `"sockaddr_in6"`, ...).
        what: &'static str,
        /// Bytes available.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// A socket address of a family other than `AF_UNSPEC`, `AF_INET` and `AF_INET6`.
    UnknownFamily {
        /// The `sa_family` value found.
        family: u16,
    },
    /// A size or count field with a value no kernel writes.
    Invalid {
        /// The field.
        what: &'static str,
        /// The value found.
        value: u64,
        /// Why it is rejected.
        reason: &'static str,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { what, len, need } => {
                write!(f, "{what}: {len} bytes, need at least {need}")
            }
            Self::UnknownFamily { family } => {
                write!(f, "sockaddr: unknown address family {family}")
            }
            Self::Invalid {
                what,
                value,
                reason,
            } => {
                write!(f, "{what}: invalid value {value} ({reason})")
            }
        }
    }
}

impl std::error::Error for ParseError {}

impl From<ParseError> for std::io::Error {
    fn from(err: ParseError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidData, err)
    }
}

pub mod wire;

#[cfg(test)]
mod tests;
