//! What every relayed connection records, whatever front end accepted it.

use std::net::SocketAddr;
use std::time::Duration;

use mptcp_net::MptcpStatus;
use serde::Serialize;

use crate::relay::RelayMode;

/// The part of a connection's record that every front end fills the same way:
/// the two sides, their MPTCP status and subflows, the bytes, the time, the relay
/// mode, the error. [`ConnRecord`](crate::ConnRecord) and
/// [`GatewayRecord`](crate::gateway::GatewayRecord) add what is theirs and reach
/// these fields through `Deref` (`record.bytes_to_client`); in JSON they are
/// flattened into the record.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct RecordCore {
    /// The client's address.
    pub client: SocketAddr,
    /// The address dialed (the upstream, the converter or the destination), when
    /// the dial succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<SocketAddr>,
    /// The client connection's MPTCP status (`None` if it could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_mptcp: Option<MptcpStatus>,
    /// The upstream connection's MPTCP status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_mptcp: Option<MptcpStatus>,
    /// The first dial fell back to plain TCP because its SYNs were lost, and a
    /// second was made: what it gave (see the crate docs, "Dials that lost their
    /// SYNs"). `None`: one dial.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_redial: Option<Redial>,
    /// The upstream connection was MPTCP when dialled and had fallen back to plain
    /// TCP, one path, by the time the relay ended in an error (see the crate docs,
    /// "Connections that fall back after the handshake"). Only looked at when the
    /// relay failed (one `getsockopt`); `false` is left out of the JSON.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub upstream_fell_back_later: bool,
    /// Most subflows seen at once on the client connection (1 for plain TCP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_subflows: Option<u32>,
    /// Most subflows seen at once on the upstream connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_subflows: Option<u32>,
    /// Application bytes from the client to the upstream (not a PROXY header or
    /// a handshake).
    pub bytes_to_upstream: u64,
    /// Application bytes from the upstream to the client.
    pub bytes_to_client: u64,
    /// From accept to close.
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    /// How the bytes moved; `None` if none did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay: Option<RelayMode>,
    /// What went wrong, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the second dial after a SYN-loss fallback gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Redial {
    /// An MPTCP connection, which replaced the first.
    Mptcp,
    /// Plain TCP again: the first was kept.
    FellBack,
    /// An error: the first was kept.
    Failed,
    /// No answer in time: the first was kept.
    TimedOut,
}

impl Redial {
    /// The name in records and in the `outcome` label of
    /// `mptcp_proxy_redials_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Redial::Mptcp => "mptcp",
            Redial::FellBack => "fell_back",
            Redial::Failed => "failed",
            Redial::TimedOut => "timed_out",
        }
    }
}

impl RecordCore {
    pub(crate) fn new(client: SocketAddr, client_mptcp: Option<MptcpStatus>) -> RecordCore {
        RecordCore {
            client,
            upstream: None,
            client_mptcp,
            upstream_mptcp: None,
            upstream_redial: None,
            upstream_fell_back_later: false,
            client_subflows: None,
            upstream_subflows: None,
            bytes_to_upstream: 0,
            bytes_to_client: 0,
            duration: Duration::ZERO,
            relay: None,
            error: None,
        }
    }
}

/// Seconds with microsecond precision, as a JSON number.
fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e6)
}

/// Implements `Deref`/`DerefMut` to the record's `core` field.
macro_rules! record_core {
    ($record:ty) => {
        impl std::ops::Deref for $record {
            type Target = $crate::session::RecordCore;
            fn deref(&self) -> &Self::Target {
                &self.core
            }
        }
        impl std::ops::DerefMut for $record {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.core
            }
        }
    };
}
pub(crate) use record_core;
