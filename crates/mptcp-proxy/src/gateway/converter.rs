//! The Transport Converter's side of one connection (RFC 8803 §5 role, with the
//! messages of §4): read the Convert message, check, dial, answer, relay.

use std::io;

use mptcp_net::MptcpStatus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{pass_on, Ctx, GatewayEnd, GatewayRecord};
use crate::convert::{self, ErrorCode, Message, Parsed, Tlv};
use crate::relay::Side;
use crate::session::Dial;

/// The converter's answer (its own Convert message) and the client's bytes that
/// came with the Convert message, sent once the upstream is counted.
pub(crate) struct Pending {
    reply: Vec<Tlv>,
    early: Vec<u8>,
}

/// TCP option kind of Multipath TCP (IANA TCP Option Kind Numbers): what the
/// converter supports on the client side.
const KIND_MPTCP: u8 = 30;

/// Reads one Convert message, bounded by [`convert::MAX_MESSAGE`]; returns it,
/// its bytes, and the bytes that came after it (application data for the
/// server).
async fn read_message(s: &mut TcpStream) -> Result<(Message, Vec<u8>, Vec<u8>), ReadError> {
    let mut buf = Vec::with_capacity(64);
    let mut chunk = [0u8; convert::MAX_MESSAGE];
    loop {
        match convert::parse(&buf) {
            Ok(Parsed::Done(msg, n)) => {
                let after = buf.split_off(n);
                return Ok((msg, buf, after));
            }
            Ok(Parsed::Incomplete(need)) => {
                // Read no further than the message needs (its length is known
                // after 4 bytes), so the data after it stays in the socket
                // unless it came in the same segment.
                let want = (need - buf.len()).min(chunk.len());
                let n = s.read(&mut chunk[..want]).await.map_err(ReadError::Io)?;
                if n == 0 {
                    return Err(ReadError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the client closed before a whole Convert message",
                    )));
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(e) => return Err(ReadError::Parse(e)),
        }
    }
}

/// Drops an exact copy of the Convert message `raw` from the start of what
/// follows it (`early`, then the socket's queue, looked at without waiting):
/// Linux can deliver the first bytes of a connection that fell back to TCP
/// twice (see the [module docs](super), "Convert messages delivered twice").
/// `true` if a copy was dropped; anything else is left as it was.
fn drop_duplicate(client: &TcpStream, raw: &[u8], early: &mut Vec<u8>) -> bool {
    if early.len() >= raw.len() {
        if early.starts_with(raw) {
            early.drain(..raw.len());
            return true;
        }
        return false;
    }
    if !raw.starts_with(early) {
        return false;
    }
    let missing = &raw[early.len()..];
    let mut buf = [0u8; convert::MAX_MESSAGE];
    let buf = &mut buf[..missing.len()];
    if !matches!(crate::sys::peek(client, buf), Ok(n) if n == missing.len()) || buf != missing {
        return false;
    }
    // The bytes are queued: this read takes exactly them.
    match client.try_read(buf) {
        Ok(n) if n == missing.len() => {
            early.clear();
            true
        }
        // Cannot happen (the peek saw them); keep whatever was read.
        Ok(n) => {
            early.extend_from_slice(&buf[..n]);
            false
        }
        Err(_) => false,
    }
}

enum ReadError {
    Io(io::Error),
    Parse(convert::ParseError),
}

/// Sends an Error TLV and closes (a FIN after it, so the client reads it).
async fn refuse(client: &mut TcpStream, record: &mut GatewayRecord, tlv: Tlv) {
    if let Tlv::Error { code, .. } = &tlv {
        record.convert_error = Some(code.0);
    }
    if let Ok(bytes) = convert::encode(&Message { tlvs: vec![tlv] }) {
        let _ = client.write_all(&bytes).await;
    }
    let _ = client.shutdown().await;
}

fn error_tlv(code: ErrorCode, value: u8) -> Tlv {
    Tlv::Error {
        code,
        value: vec![value],
    }
}

/// The Error TLV code for a failed dial (§4.2.8: 96 the server reset/refused,
/// 97 unreachable, 64 out of resources, 65 other network failures).
fn dial_error_code(e: &io::Error) -> ErrorCode {
    if crate::sys::resource_exhausted(e) {
        return ErrorCode::RESOURCE_EXCEEDED;
    }
    match e.kind() {
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset => {
            ErrorCode::CONNECTION_RESET
        }
        io::ErrorKind::TimedOut
        | io::ErrorKind::HostUnreachable
        | io::ErrorKind::NetworkUnreachable => ErrorCode::DESTINATION_UNREACHABLE,
        _ => match e.raw_os_error() {
            Some(libc::EHOSTUNREACH | libc::ENETUNREACH | libc::ETIMEDOUT) => {
                ErrorCode::DESTINATION_UNREACHABLE
            }
            _ => ErrorCode::NETWORK_FAILURE,
        },
    }
}

/// Reads the Convert message, checks it against the policy, dials the
/// destination; refusals are answered with an Error TLV.
pub(crate) async fn reach(
    ctx: &Ctx,
    client: &mut TcpStream,
    dial: &Dial<'_>,
    record: &mut GatewayRecord,
) -> Option<(TcpStream, Pending)> {
    let peer = record.core.client;
    let Some(policy) = &ctx.policy else {
        record.fail(GatewayEnd::Refused, "no policy");
        return None;
    };
    if !policy.client_allowed(peer.ip()) {
        tracing::info!(client = %peer, "refused: client outside --allow");
        record.fail(GatewayEnd::Refused, "client outside --allow");
        refuse(client, record, error_tlv(ErrorCode::NOT_AUTHORIZED, 0)).await;
        return None;
    }
    let read = tokio::time::timeout(ctx.config.handshake_timeout, read_message(client)).await;
    let (msg, early) = match read {
        Ok(Ok((msg, raw, mut early))) => {
            if record.core.client_mptcp != Some(MptcpStatus::Active)
                && drop_duplicate(client, &raw, &mut early)
            {
                record.convert_duplicate_dropped = true;
                ctx.shared.metrics.convert_duplicate();
                tracing::warn!(
                    client = %peer,
                    "dropped a second copy of the Convert message (the kernel delivered the first bytes of a connection that fell back twice)"
                );
            }
            (msg, early)
        }
        Ok(Err(ReadError::Parse(e))) => {
            record.fail(GatewayEnd::BadHandshake, e.to_string());
            refuse(client, record, e.to_tlv()).await;
            return None;
        }
        Ok(Err(ReadError::Io(e))) => {
            record.fail(GatewayEnd::BadHandshake, e.to_string());
            return None;
        }
        Err(_) => {
            record.fail(
                GatewayEnd::BadHandshake,
                "no Convert message within the handshake timeout",
            );
            refuse(client, record, error_tlv(ErrorCode::MALFORMED_MESSAGE, 0)).await;
            return None;
        }
    };
    let mut reply = Vec::new();
    if msg.has_info() {
        reply.push(Tlv::SupportedTcpExtensions(vec![KIND_MPTCP]));
    }
    let connect = msg.tlvs.iter().find_map(|t| match t {
        Tlv::Connect { dest, tcp_options } => Some((*dest, tcp_options.clone())),
        _ => None,
    });
    let Some((dest, options)) = connect else {
        // An Info-only message (§4.2.3): answer it and close.
        if reply.is_empty() {
            record.fail(
                GatewayEnd::BadHandshake,
                "a Convert message with no Connect TLV",
            );
            refuse(client, record, error_tlv(ErrorCode::MALFORMED_MESSAGE, 0)).await;
        } else if let Ok(bytes) = convert::encode(&Message { tlvs: reply }) {
            let _ = client.write_all(&bytes).await;
            let _ = client.shutdown().await;
        }
        return None;
    };
    record.destination = Some(dest.to_string());
    // Option kinds other than EOL (0) and NOP (1) would ask us to use them
    // towards the server: refused (§4.2.8, 33, the value names the kind).
    if let Some(&kind) = options.iter().find(|&&k| k > 1) {
        record.fail(
            GatewayEnd::Refused,
            format!("TCP option kind {kind} in the Connect TLV"),
        );
        refuse(
            client,
            record,
            error_tlv(ErrorCode::UNSUPPORTED_TCP_OPTION, kind),
        )
        .await;
        return None;
    }
    if let Err(why) = policy.check_destination(dest.ip(), dest.port()) {
        tracing::info!(client = %peer, %dest, "refused: {}", why.as_str());
        record.fail(GatewayEnd::Refused, why.as_str());
        refuse(client, record, error_tlv(ErrorCode::NOT_AUTHORIZED, 0)).await;
        return None;
    }
    match dial.dial(dest).await {
        Ok(s) => Some((s, Pending { reply, early })),
        Err(e) => {
            let code = dial_error_code(&e);
            tracing::info!(client = %peer, %dest, "dial failed: {e}; answering {code}");
            record.fail(GatewayEnd::ConnectFailed, format!("{dest}: {e}"));
            refuse(client, record, error_tlv(code, 0)).await;
            None
        }
    }
}

/// Sends the converter's Convert message, then the client's early bytes.
pub(crate) async fn greet(
    ctx: &Ctx,
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    pending: Pending,
    record: &mut GatewayRecord,
) -> bool {
    // §4: the converter's own Convert message comes first on the way back,
    // then the server's bytes.
    let answer = convert::encode(&Message {
        tlvs: pending.reply,
    })
    .unwrap_or_default();
    if let Err(e) = client.write_all(&answer).await {
        record.fail(GatewayEnd::Reset, format!("client: {e}"));
        crate::sys::set_reset_on_close(upstream);
        return false;
    }
    if !pass_on(ctx, upstream, Side::Upstream, &pending.early, record).await {
        crate::sys::set_reset_on_close(client);
        return false;
    }
    true
}
