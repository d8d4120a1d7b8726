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
pub fn parse(buf: &[u8]) -> Result<Option<(String, u16, usize)>, HttpConnectError> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
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
    let line = std::str::from_utf8(&buf[..line_end]).map_err(|_| HttpConnectError::Malformed)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpConnectError::Malformed);
    };
    if !version.starts_with("HTTP/1.") {
        return Err(HttpConnectError::Malformed);
    }
    if method != "CONNECT" {
        return Err(HttpConnectError::Method(method.chars().take(16).collect()));
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
    Ok(Some((host.to_string(), port, head_len)))
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
}
