//! The client role: learn the destination (SOCKS5, HTTP CONNECT, redirect),
//! reach it (through the converter, or directly over MPTCP), answer the local
//! client, relay.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use mptcp_net::{MptcpExt, MptcpStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{pass_on, sys, ConverterRetry, Ctx, GatewayEnd, GatewayRecord, Mode};
use crate::convert::{self, ErrorCode, Message, Parsed};
use crate::http_connect;
use crate::relay::Side;
use crate::session::Dial;
use crate::socks5::{self, reply};

/// The bytes read past a handshake on either side, sent once the upstream is
/// counted and the local client told the tunnel is open.
pub(crate) struct Pending {
    /// From the local client, after its request.
    early: Vec<u8>,
    /// From the server, with the converter's answer.
    from_server: Vec<u8>,
}

/// Where the local client wants to go.
enum Dest {
    Addr(SocketAddr),
    Name(String, u16),
}

/// How reaching the destination failed, for the local client's answer.
enum Failure {
    /// The converter answered with this Error TLV code.
    Convert(ErrorCode),
    /// Dialing failed.
    Dial(io::Error),
    /// The converter's answer was not a valid Convert message.
    BadAnswer(String),
}

impl Failure {
    /// RFC 1928 §6 reply code for this failure.
    fn socks5_code(&self) -> u8 {
        match self {
            Failure::Convert(c) => match *c {
                ErrorCode::NOT_AUTHORIZED => reply::NOT_ALLOWED,
                ErrorCode::CONNECTION_RESET => reply::CONNECTION_REFUSED,
                ErrorCode::DESTINATION_UNREACHABLE => reply::HOST_UNREACHABLE,
                ErrorCode::NETWORK_FAILURE => reply::NETWORK_UNREACHABLE,
                _ => reply::GENERAL_FAILURE,
            },
            Failure::Dial(e) => match e.kind() {
                io::ErrorKind::ConnectionRefused => reply::CONNECTION_REFUSED,
                io::ErrorKind::TimedOut => reply::TTL_EXPIRED,
                io::ErrorKind::HostUnreachable => reply::HOST_UNREACHABLE,
                io::ErrorKind::NetworkUnreachable => reply::NETWORK_UNREACHABLE,
                _ => reply::GENERAL_FAILURE,
            },
            Failure::BadAnswer(_) => reply::GENERAL_FAILURE,
        }
    }

    fn http_status(&self) -> &'static [u8] {
        match self {
            Failure::Convert(ErrorCode::NOT_AUTHORIZED) => http_connect::FORBIDDEN,
            Failure::Dial(e) if e.kind() == io::ErrorKind::TimedOut => {
                http_connect::GATEWAY_TIMEOUT
            }
            _ => http_connect::BAD_GATEWAY,
        }
    }

    fn end(&self) -> GatewayEnd {
        match self {
            Failure::Convert(ErrorCode::NOT_AUTHORIZED) => GatewayEnd::Refused,
            _ => GatewayEnd::ConnectFailed,
        }
    }

    fn describe(&self) -> String {
        match self {
            Failure::Convert(c) => format!("the converter answered error {c}"),
            Failure::Dial(e) => e.to_string(),
            Failure::BadAnswer(s) => format!("bad answer from the converter: {s}"),
        }
    }
}

type ParseFn<'a, T> = dyn FnMut(&[u8]) -> Result<Option<(T, usize)>, String> + Send + 'a;

/// Reads until `parse` has a whole message, at most `max` bytes, starting with
/// the bytes `buf` already holds (what came after the previous message: a
/// client may send its SOCKS5 greeting and request at once). Returns the
/// message and the bytes after it.
async fn read_until<T>(
    s: &mut TcpStream,
    mut buf: Vec<u8>,
    max: usize,
    parse: &mut ParseFn<'_, T>,
) -> Result<(T, Vec<u8>), String> {
    let mut chunk = [0u8; 1024];
    loop {
        if let Some((v, n)) = parse(&buf)? {
            return Ok((v, buf.split_off(n)));
        }
        if buf.len() >= max {
            return Err(format!("no whole message within {max} bytes"));
        }
        let want = (max - buf.len()).min(chunk.len());
        let n = s
            .read(&mut chunk[..want])
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the peer closed during the handshake".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// An intake failure: what to log, and the SOCKS5 reply code to send, if any.
type IntakeError = (String, Option<u8>);

/// SOCKS5: method negotiation, the optional RFC 1929 check, the request.
async fn socks5_intake(client: &mut TcpStream, ctx: &Ctx) -> Result<(Dest, Vec<u8>), IntakeError> {
    let (methods, rest) = read_until(client, Vec::new(), socks5::MAX_MESSAGE, &mut |b| {
        socks5::parse_greeting(b).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| (e, None))?;
    let want = if ctx.config.credentials.is_some() {
        socks5::METHOD_USER_PASS
    } else {
        socks5::METHOD_NO_AUTH
    };
    if !methods.contains(&want) {
        let _ = client
            .write_all(&socks5::encode_method(socks5::METHOD_NONE))
            .await;
        return Err(("no acceptable SOCKS5 authentication method".into(), None));
    }
    client
        .write_all(&socks5::encode_method(want))
        .await
        .map_err(|e| (e.to_string(), None))?;
    let mut rest = rest;
    if let Some((user, pass)) = &ctx.config.credentials {
        let ((u, p), after) = read_until(client, rest, socks5::MAX_MESSAGE, &mut |b| {
            socks5::parse_credentials(b).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| (e, None))?;
        rest = after;
        let ok = u == user.as_bytes() && p == pass.as_bytes();
        let _ = client.write_all(&socks5::encode_auth_status(ok)).await;
        if !ok {
            return Err(("SOCKS5 username/password refused".into(), None));
        }
    }
    let mut code = None;
    let r = read_until(client, rest, socks5::MAX_MESSAGE, &mut |b| {
        socks5::parse_request(b).map_err(|e| {
            code = Some(e.reply_code());
            e.to_string()
        })
    })
    .await;
    let (req, rest) = r.map_err(|e| (e, Some(code.unwrap_or(reply::GENERAL_FAILURE))))?;
    if req.command != 1 {
        return Err((
            format!("SOCKS5 command {} is not supported", req.command),
            Some(reply::COMMAND_NOT_SUPPORTED),
        ));
    }
    let dest = match req.target {
        socks5::Target::Addr(a) => Dest::Addr(a),
        socks5::Target::Domain(d, p) => Dest::Name(d, p),
    };
    Ok((dest, rest))
}

/// HTTP CONNECT: the request head.
async fn http_intake(client: &mut TcpStream) -> Result<(Dest, Vec<u8>), IntakeError> {
    let mut status: &'static [u8] = b"";
    let r = read_until(client, Vec::new(), http_connect::MAX_HEAD, &mut |b| {
        http_connect::parse(b)
            .map(|o| o.map(|(h, p, n)| ((h, p), n)))
            .map_err(|e| {
                status = e.response();
                e.to_string()
            })
    })
    .await;
    match r {
        Ok(((h, p), rest)) => {
            let dest = match h.parse() {
                Ok(ip) => Dest::Addr(SocketAddr::new(ip, p)),
                Err(_) => Dest::Name(h, p),
            };
            Ok((dest, rest))
        }
        Err(e) => {
            if !status.is_empty() {
                let _ = client.write_all(status).await;
            }
            Err((e, None))
        }
    }
}

/// Transparent: where the client meant to go.
fn transparent_intake(client: &TcpStream, ctx: &Ctx) -> Result<(Dest, Vec<u8>), IntakeError> {
    let local = client.local_addr().map_err(|e| (e.to_string(), None))?;
    let orig = if ctx.config.tproxy {
        // TPROXY keeps the original destination as the socket's local address.
        local
    } else {
        sys::original_dst(client, local).map_err(|e| {
            (
                format!("no original destination (SO_ORIGINAL_DST): {e}"),
                None,
            )
        })?
    };
    if orig == ctx.local || orig == local && !ctx.config.tproxy {
        return Err((
            format!("{orig} is the gateway itself: no redirect in place"),
            None,
        ));
    }
    Ok((Dest::Addr(orig), Vec::new()))
}

/// Resolves a destination to one address (the Connect TLV carries addresses).
async fn resolve(dest: &Dest) -> io::Result<SocketAddr> {
    match dest {
        Dest::Addr(a) => Ok(*a),
        Dest::Name(h, p) => tokio::net::lookup_host((h.as_str(), *p))
            .await?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{h}: no address"))),
    }
}

/// Reaches the destination: through the converter (the Convert message in the
/// SYN when TFO is on; its answer read and checked), or directly. Returns the
/// upstream and the server bytes that came with the converter's answer.
async fn dial_upstream(
    ctx: &Ctx,
    dial: &Dial<'_>,
    dest: &Dest,
    record: &mut GatewayRecord,
) -> Result<(TcpStream, Vec<u8>), Failure> {
    let Some(converter) = &ctx.config.converter else {
        let s = match dest {
            Dest::Addr(a) => dial.dial(*a).await,
            Dest::Name(h, p) => dial.dial(format!("{h}:{p}").as_str()).await,
        }
        .map_err(Failure::Dial)?;
        return Ok((s, Vec::new()));
    };
    let addr = resolve(dest).await.map_err(Failure::Dial)?;
    let request = convert::connect_request(addr, false);
    loop {
        let mut s = dial.dial(converter.as_str()).await.map_err(Failure::Dial)?;
        record.fastopen = Some(sys::fastopen_connect(&s));
        let retried = record.converter_retry.is_some();
        // Why this connection cannot carry the client, if it cannot.
        let (why, what) = match exchange(&mut s, &request, ctx.config.handshake_timeout).await {
            Ok((msg, rest)) => {
                if let Some(code) = msg.error() {
                    record.convert_error = Some(code.0);
                    return Err(Failure::Convert(code));
                }
                if retried || !fell_back_since_dial(dial, &s) {
                    return Ok((s, rest));
                }
                let what = "fell back to TCP after its handshake".to_string();
                (ConverterRetry::FellBack, what)
            }
            Err(Exchange::Bad(e)) => return Err(Failure::BadAnswer(e)),
            Err(Exchange::Lost(_, e)) if retried => return Err(Failure::Dial(e)),
            Err(Exchange::Lost(why, e)) => (why, format!("no answer: {e}")),
        };
        // Nothing of the client's has been sent: the converter saw at most a
        // Convert message, and the server an empty connection.
        record.converter_retry = Some(why);
        ctx.shared.metrics.converter_retry(why.as_str());
        tracing::info!(
            client = %record.core.client,
            converter = %converter,
            "converter connection given up ({what}); trying a new connection"
        );
        crate::sys::set_reset_on_close(&s);
    }
}

/// Whether `s`, MPTCP when `dial` made it, is plain TCP now (one `getsockopt`).
fn fell_back_since_dial(dial: &Dial<'_>, s: &TcpStream) -> bool {
    dial.known_status(s) == Some(Some(MptcpStatus::Active))
        && s.mptcp_status().ok() == Some(MptcpStatus::FellBack)
}

/// How a Convert exchange failed.
enum Exchange {
    /// The answer was not a valid Convert message.
    Bad(String),
    /// No answer: none in time, or the connection closed or failed first.
    Lost(ConverterRetry, io::Error),
}

/// Sends `request` on a new converter connection (with `TCP_FASTOPEN_CONNECT`,
/// `connect()` returned at once and this write is what the SYN carries) and
/// reads the converter's answer: the message and the server bytes after it.
async fn exchange(
    s: &mut TcpStream,
    request: &[u8],
    timeout: Duration,
) -> Result<(Message, Vec<u8>), Exchange> {
    s.write_all(request)
        .await
        .map_err(|e| Exchange::Lost(ConverterRetry::Lost, e))?;
    let mut bad = false;
    let answer = tokio::time::timeout(
        timeout,
        read_until(
            s,
            Vec::new(),
            convert::MAX_MESSAGE,
            &mut |b| match convert::parse(b) {
                Ok(Parsed::Done(m, n)) => Ok(Some((m, n))),
                Ok(Parsed::Incomplete(_)) => Ok(None),
                Err(e) => {
                    bad = true;
                    Err(e.to_string())
                }
            },
        ),
    )
    .await;
    match answer {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) if bad => Err(Exchange::Bad(e)),
        Ok(Err(e)) => Err(Exchange::Lost(
            ConverterRetry::Lost,
            io::Error::new(io::ErrorKind::ConnectionAborted, format!("converter: {e}")),
        )),
        Err(_) => Err(Exchange::Lost(
            ConverterRetry::NoAnswer,
            io::Error::new(
                io::ErrorKind::TimedOut,
                "no answer from the converter within the handshake timeout",
            ),
        )),
    }
}

/// Learns the destination from the local client and reaches it; a failure is
/// answered in the intake's terms (a SOCKS5 reply, an HTTP status, a reset).
pub(crate) async fn reach(
    ctx: &Ctx,
    client: &mut TcpStream,
    dial: &Dial<'_>,
    record: &mut GatewayRecord,
) -> Option<(TcpStream, Pending)> {
    let mode = ctx.config.mode;
    let timeout = ctx.config.handshake_timeout;
    let late = || Err(("no request within the handshake timeout".to_string(), None));
    // 1. The destination, and any bytes the client sent after its request.
    let intake = match mode {
        Mode::Socks5 => tokio::time::timeout(timeout, socks5_intake(client, ctx))
            .await
            .unwrap_or_else(|_| late()),
        Mode::HttpConnect => tokio::time::timeout(timeout, http_intake(client))
            .await
            .unwrap_or_else(|_| late()),
        _ => transparent_intake(client, ctx),
    };
    let (dest, early) = match intake {
        Ok(v) => v,
        Err((e, code)) => {
            if let Some(code) = code {
                let _ = client.write_all(&socks5::encode_reply(code, None)).await;
            }
            record.fail(GatewayEnd::BadHandshake, e);
            return None;
        }
    };
    record.destination = Some(match &dest {
        Dest::Addr(a) => a.to_string(),
        Dest::Name(h, p) => format!("{h}:{p}"),
    });
    // 2. The upstream.
    match dial_upstream(ctx, dial, &dest, record).await {
        Ok((upstream, from_server)) => Some((upstream, Pending { early, from_server })),
        Err(f) => {
            match mode {
                Mode::Socks5 => {
                    let _ = client
                        .write_all(&socks5::encode_reply(f.socks5_code(), None))
                        .await;
                }
                Mode::HttpConnect => {
                    let _ = client.write_all(f.http_status()).await;
                }
                // Transparent: the client believes it dialed the server; a
                // reset says "no connection" as the server itself would.
                _ => crate::sys::set_reset_on_close(client),
            }
            tracing::info!(
                client = %record.core.client,
                dest = record.destination.as_deref().unwrap_or(""),
                "{}",
                f.describe()
            );
            record.fail(f.end(), f.describe());
            None
        }
    }
}

/// Tells the local client the tunnel is open, then passes on the bytes already
/// read on either side.
pub(crate) async fn greet(
    ctx: &Ctx,
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    pending: Pending,
    record: &mut GatewayRecord,
) -> bool {
    // 3. Tell the local client the tunnel is open.
    let ok = match ctx.config.mode {
        Mode::Socks5 => {
            client
                .write_all(&socks5::encode_reply(
                    reply::SUCCEEDED,
                    upstream.local_addr().ok(),
                ))
                .await
        }
        Mode::HttpConnect => client.write_all(http_connect::ESTABLISHED).await,
        _ => Ok(()),
    };
    if let Err(e) = ok {
        record.fail(GatewayEnd::Reset, format!("client: {e}"));
        crate::sys::set_reset_on_close(upstream);
        return false;
    }
    // 4. Bytes already read on either side; the pipeline relays the rest.
    pass_on(ctx, client, Side::Client, &pending.from_server, record).await
        && pass_on(ctx, upstream, Side::Upstream, &pending.early, record).await
}
