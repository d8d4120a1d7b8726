//! HTTP CONNECT (RFC 9110 §9.3.6), sans-I/O: the request head a client sends
//! to open a tunnel, and the status lines the proxy answers with.
//!
//! Only `CONNECT host:port HTTP/1.x` is accepted; headers are read and ignored
//! (no proxy authentication). The head is bounded by [`MAX_HEAD`]: a client that
//! sends more without the blank line gets 431 and is closed. Bytes after the
//! blank line are tunnel data, kept by the caller.

/// The largest request head accepted.
pub const MAX_HEAD: usize = 8 * 1024;

/// A request head that is not a CONNECT this proxy serves.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpConnectError {
    /// No blank line within [`MAX_HEAD`] bytes.
    #[error("request head longer than 8 KiB")]
    TooLong,
    /// Not an HTTP/1.x request line.
    #[error("malformed request line")]
    Malformed,
    /// A method other than CONNECT.
    #[error("method {0} is not CONNECT")]
    Method(String),
    /// The authority is not `host:port`.
    #[error("CONNECT target {0:?} is not host:port")]
    Target(String),
}

impl HttpConnectError {
    /// The status line (with its blank line) that answers this error.
    pub fn response(&self) -> &'static [u8] {
        match self {
            HttpConnectError::TooLong => {
                b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n"
            }
            HttpConnectError::Method(_) => {
                b"HTTP/1.1 405 Method Not Allowed\r\nAllow: CONNECT\r\nConnection: close\r\n\r\n"
            }
            _ => b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n",
        }
    }
}

/// Parses a CONNECT request head at the start of `buf`: `Ok(None)` until the
/// blank line has arrived, then `(host, port, head length)`. The host keeps no
/// brackets (`[2001:db8::1]:443` gives `2001:db8::1`).
///
/// A head is refused as soon as its first bytes rule it out, without waiting
/// for the blank line: a method that is not CONNECT once its space has come,
/// a byte no method may hold, or a complete request line that is bad. Bytes
/// that could still begin a CONNECT request wait. So a client sending garbage
/// is answered at once instead of holding its connection until the handshake
/// timeout, and what is refused early is refused with the same error whole.
///
/// ```
/// use mptcp_proxy::http_connect::{parse, HttpConnectError};
///
/// assert_eq!(parse(b"CONNECT 198.18.0.1:443 HTTP/1.1\r\n"), Ok(None));
/// assert_eq!(
///     parse(b"CONNECT 198.18.0.1:443 HTTP/1.1\r\nHost: x\r\n\r\n"),
///     Ok(Some(("198.18.0.1".into(), 443, 44)))
/// );
/// // Refused before the blank line.
/// assert_eq!(parse(b"GET /"), Err(HttpConnectError::Method("GET".into())));
/// assert_eq!(parse(b"\x16\x03\x01"), Err(HttpConnectError::Malformed));
/// ```
pub fn parse(buf: &[u8]) -> Result<Option<(String, u16, usize)>, HttpConnectError> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        refuse_early(buf)?;
        if buf.len() >= MAX_HEAD {
            return Err(HttpConnectError::TooLong);
        }
        return Ok(None);
    };
    let head_len = end + 4;
    if head_len > MAX_HEAD {
        return Err(HttpConnectError::TooLong);
    }
    let line_end = buf.windows(2).position(|w| w == b"\r\n").unwrap_or(end);
    let (host, port) = request_line(&buf[..line_end])?;
    Ok(Some((host, port, head_len)))
}

/// Before the blank line: the error the head will be refused with whatever
/// follows, if its bytes so far already decide it.
fn refuse_early(buf: &[u8]) -> Result<(), HttpConnectError> {
    if let Some(line_end) = buf.windows(2).position(|w| w == b"\r\n") {
        return request_line(&buf[..line_end]).map(drop);
    }
    if let Some(space) = buf.iter().position(|&b| b == b' ') {
        return check_method(&buf[..space]);
    }
    // The method so far; a CR at the end may begin the line's CRLF.
    let method = buf.strip_suffix(b"\r").unwrap_or(buf);
    if buf == b"\r" || !method.iter().all(|&b| is_tchar(b)) {
        return Err(HttpConnectError::Malformed);
    }
    Ok(())
}

/// A method is a token (RFC 9110 §5.6.2), and here it is CONNECT.
fn check_method(method: &[u8]) -> Result<(), HttpConnectError> {
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(HttpConnectError::Malformed);
    }
    if method != b"CONNECT" {
        return Err(HttpConnectError::Method(
            String::from_utf8_lossy(method).chars().take(16).collect(),
        ));
    }
    Ok(())
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `CONNECT host:port HTTP/1.x`, the request line without its CRLF. The
/// method is judged first, as [`refuse_early`] judges it.
fn request_line(line: &[u8]) -> Result<(String, u16), HttpConnectError> {
    let (method, rest) = match line.iter().position(|&b| b == b' ') {
        Some(space) => (&line[..space], Some(&line[space + 1..])),
        None => (line, None),
    };
    check_method(method)?;
    let rest = rest.ok_or(HttpConnectError::Malformed)?;
    let rest = std::str::from_utf8(rest).map_err(|_| HttpConnectError::Malformed)?;
    let mut parts = rest.split(' ');
    let (Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(HttpConnectError::Malformed);
    };
    if !version.starts_with("HTTP/1.") {
        return Err(HttpConnectError::Malformed);
    }
    let bad = || HttpConnectError::Target(target.chars().take(64).collect());
    let (host, port) = target.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || port == 0 || host.contains(['/', '@', ' ']) {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// The answer once the tunnel is open.
pub const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection Established\r\n\r\n";
/// The answer when the destination is refused by policy (or by the converter).
pub const FORBIDDEN: &[u8] = b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n";
/// The answer when the destination could not be reached.
pub const BAD_GATEWAY: &[u8] = b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n\r\n";
/// The answer when the destination did not answer in time.
pub const GATEWAY_TIMEOUT: &[u8] = b"HTTP/1.1 504 Gateway Timeout\r\nConnection: close\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_requests() {
        let req = b"CONNECT 198.18.0.1:80 HTTP/1.1\r\nHost: 198.18.0.1:80\r\n\r\nDATA";
        for cut in 0..req.len() - 4 {
            assert_eq!(parse(&req[..cut]), Ok(None), "{cut}");
        }
        assert_eq!(
            parse(req),
            Ok(Some(("198.18.0.1".into(), 80, req.len() - 4)))
        );
        assert_eq!(
            parse(b"CONNECT [2001:db8::1]:443 HTTP/1.0\r\n\r\n"),
            Ok(Some(("2001:db8::1".into(), 443, 38)))
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\n\r\n"),
            Err(HttpConnectError::Method("GET".into()))
        );
        assert!(matches!(
            parse(b"CONNECT host HTTP/1.1\r\n\r\n"),
            Err(HttpConnectError::Target(_))
        ));
        assert!(matches!(
            parse(b"CONNECT host:0 HTTP/1.1\r\n\r\n"),
            Err(HttpConnectError::Target(_))
        ));
        assert_eq!(
            parse(b"CONNECT a:1 SPDY/3\r\n\r\n"),
            Err(HttpConnectError::Malformed)
        );
        assert_eq!(parse(&[b'x'; MAX_HEAD]), Err(HttpConnectError::TooLong));
        assert!(HttpConnectError::TooLong
            .response()
            .starts_with(b"HTTP/1.1 431"));
    }

    #[test]
    fn garbage_is_refused_before_the_blank_line() {
        use HttpConnectError::*;
        assert_eq!(parse(b"GET /"), Err(Method("GET".into())));
        assert_eq!(parse(b"\x16\x03\x01\x02\x00"), Err(Malformed));
        assert_eq!(parse(b"\r"), Err(Malformed));
        assert_eq!(parse(b" CONNECT"), Err(Malformed));
        assert_eq!(parse(b"CONNECT a:1 SPDY/3\r\n"), Err(Malformed));
        assert!(matches!(
            parse(b"CONNECT host HTTP/1.1\r\nHost: h"),
            Err(Target(_))
        ));
        // What could still begin a CONNECT request, or name a method, waits.
        for wait in [
            &b""[..],
            b"C",
            b"CONNEC",
            b"CONNECT",
            b"CONNECT\r",
            b"GE",
            b"GET\r",
        ] {
            assert_eq!(parse(wait), Ok(None), "{wait:?}");
        }
    }

    #[test]
    fn a_head_refused_early_is_refused_alike_whole() {
        let heads: [&[u8]; 9] = [
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET\r\n\r\n",
            b"G@T / HTTP/1.1\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
            b"CONNECT a:1 HTTP/1.1 x\r\n\r\n",
            b"CONNECT a:1 SPDY/3\r\nHost: a\r\n\r\n",
            b"CONNECT a HTTP/1.1\r\n\r\n",
            b"CONNECT\r\n\r\n",
            b"\r\n\r\n",
        ];
        for head in heads {
            let whole = parse(head);
            assert!(whole.is_err(), "{head:?}");
            for cut in 0..head.len() {
                let part = parse(&head[..cut]);
                assert!(
                    part == Ok(None) || part == whole,
                    "{head:?} cut at {cut}: {part:?}"
                );
            }
        }
    }
}
