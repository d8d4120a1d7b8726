//! The proxy's front end on the session pipeline: a route's fixed upstream,
//! dialed as it is, with an optional PROXY protocol header first; and its
//! [`ConnRecord`].

use std::io;
use std::net::SocketAddr;

use mptcp_net::{MptcpExt, MptcpStatus};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::config::{ProxyProtocol, Route};
use crate::proxy_protocol;
use crate::relay::{RelayError, Side};
use crate::session::{record_core, Dial, Front, Record, RecordCore, RelayEnd, Shared};
use crate::sys;

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EndReason {
    /// Both directions reached end of stream and were closed cleanly.
    Closed,
    /// The client reset its connection; the upstream was reset in turn.
    ClientReset,
    /// The upstream reset its connection; the client was reset in turn.
    UpstreamReset,
    /// Another error on the client's socket; the upstream was reset.
    ClientError,
    /// Another error on the upstream's socket; the client was reset.
    UpstreamError,
    /// No byte moved either way for the idle timeout; both closed cleanly.
    IdleTimeout,
    /// The upstream did not answer within the connect timeout; the client was reset.
    ConnectTimeout,
    /// The upstream refused the connection; the client was reset.
    ConnectRefused,
    /// The upstream could not be dialed (name resolution, no route, no
    /// descriptors, ...); the client was reset.
    ConnectFailed,
    /// The proxy stopped and the drain deadline passed; both were reset.
    Shutdown,
}

impl EndReason {
    /// A short stable name (`closed`, `client_reset`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            EndReason::Closed => "closed",
            EndReason::ClientReset => "client_reset",
            EndReason::UpstreamReset => "upstream_reset",
            EndReason::ClientError => "client_error",
            EndReason::UpstreamError => "upstream_error",
            EndReason::IdleTimeout => "idle_timeout",
            EndReason::ConnectTimeout => "connect_timeout",
            EndReason::ConnectRefused => "connect_refused",
            EndReason::ConnectFailed => "connect_failed",
            EndReason::Shutdown => "shutdown",
        }
    }

    /// The `kind` label of `mptcp_proxy_errors_total` for this ending, or `None`
    /// for a clean close. (Accept errors are counted as `accept_fd_limit` and
    /// `accept_error`.)
    pub fn error_kind(&self) -> Option<&'static str> {
        match self {
            EndReason::Closed => None,
            other => Some(other.as_str()),
        }
    }
}

/// What the proxy records about each finished connection: the
/// [`RecordCore`] every front end fills (reached through `Deref`:
/// `record.bytes_to_client`), the route, and how it ended.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct ConnRecord {
    /// The route's name.
    pub route: String,
    /// The sides, bytes, time and relay mode.
    #[serde(flatten)]
    pub core: RecordCore,
    /// How it ended.
    pub end: EndReason,
}

record_core!(ConnRecord);

impl Record for ConnRecord {
    fn core(&mut self) -> &mut RecordCore {
        &mut self.core
    }

    fn relay_ended(&mut self, end: RelayEnd) {
        self.end = match end {
            RelayEnd::Done => EndReason::Closed,
            RelayEnd::Idle => EndReason::IdleTimeout,
            RelayEnd::Forced => EndReason::Shutdown,
            RelayEnd::Failed(RelayError { side, error }) => {
                let reset = matches!(
                    error.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                );
                self.core.error = Some(format!("{}: {error}", side.as_str()));
                match (side, reset) {
                    (Side::Client, true) => EndReason::ClientReset,
                    (Side::Client, false) => EndReason::ClientError,
                    (Side::Upstream, true) => EndReason::UpstreamReset,
                    (Side::Upstream, false) => EndReason::UpstreamError,
                }
            }
        };
    }

    fn error_kind(&self) -> Option<&'static str> {
        self.end.error_kind()
    }
}

/// A route on the session pipeline.
pub(crate) struct RouteCtx {
    pub(crate) route: Route,
    pub(crate) shared: Shared,
    /// The upstream when the route names it by address (no name to resolve):
    /// the record takes it from here instead of asking the socket
    /// (`getpeername`, one system call per connection).
    pub(crate) upstream_addr: Option<SocketAddr>,
}

fn connect_end(e: &io::Error) -> EndReason {
    match e.kind() {
        io::ErrorKind::TimedOut => EndReason::ConnectTimeout,
        io::ErrorKind::ConnectionRefused => EndReason::ConnectRefused,
        _ => EndReason::ConnectFailed,
    }
}

impl Front for RouteCtx {
    type Record = ConnRecord;
    type Pending = ();

    fn shared(&self) -> &Shared {
        &self.shared
    }

    fn record(&self, core: RecordCore) -> ConnRecord {
        ConnRecord {
            route: self.route.name.clone(),
            core,
            end: EndReason::Closed,
        }
    }

    // A side forced to plain TCP is plain TCP: no system call to ask.
    fn client_status(&self, client: &TcpStream) -> Option<MptcpStatus> {
        if self.route.listen_tcp {
            Some(MptcpStatus::PlainTcp)
        } else {
            client.mptcp_status().ok()
        }
    }

    fn upstream_status(&self, upstream: &TcpStream) -> Option<MptcpStatus> {
        if self.route.to_tcp {
            Some(MptcpStatus::PlainTcp)
        } else {
            upstream.mptcp_status().ok()
        }
    }

    async fn reach<'a>(
        &'a self,
        client: &'a mut TcpStream,
        dial: &'a Dial<'a>,
        record: &'a mut ConnRecord,
    ) -> Option<(TcpStream, ())> {
        // A client that reset while it waited in the backlog (a connect-and-reset
        // storm does nothing else) is not worth a dial: one getsockopt
        // (SO_ERROR) instead of a connection to the upstream.
        if let Ok(Some(e)) = client.take_error() {
            record.end = EndReason::ClientReset;
            record.core.error = Some(format!("client: {e}"));
            return None;
        }
        let dialed = match self.upstream_addr {
            Some(addr) => dial.dial(addr).await,
            None => dial.dial(self.route.upstream.as_str()).await,
        };
        match dialed {
            Ok(s) => {
                record.core.upstream = self.upstream_addr;
                Some((s, ()))
            }
            Err(e) => {
                record.end = connect_end(&e);
                record.core.error = Some(format!("{}: {e}", self.route.upstream));
                // A reset, not an empty clean close: the client must not take "no
                // upstream" for "the upstream said nothing".
                sys::set_reset_on_close(client);
                None
            }
        }
    }

    async fn greet<'a>(
        &'a self,
        client: &'a mut TcpStream,
        upstream: &'a mut TcpStream,
        (): (),
        record: &'a mut ConnRecord,
    ) -> bool {
        let peer = record.core.client;
        let header = match self.route.proxy_protocol {
            ProxyProtocol::None => return true,
            ProxyProtocol::V1 => client
                .local_addr()
                .ok()
                .map(|local| proxy_protocol::encode_v1(peer, local)),
            ProxyProtocol::V2 => client.local_addr().ok().map(|local| {
                proxy_protocol::encode_v2(
                    peer,
                    local,
                    Some(record.core.client_mptcp.unwrap_or(MptcpStatus::PlainTcp)),
                )
            }),
        };
        let Some(header) = header else {
            return true;
        };
        if let Err(e) = upstream.write_all(&header).await {
            record.end = EndReason::UpstreamError;
            record.core.error = Some(format!("sending the PROXY header: {e}"));
            sys::set_reset_on_close(client);
            return false;
        }
        true
    }
}
