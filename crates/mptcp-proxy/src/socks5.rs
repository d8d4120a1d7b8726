//! SOCKS5 (RFC 1928) and its username/password sub-negotiation (RFC 1929): a
//! sans-I/O parser for what a client sends and an encoder for what a server
//! answers. Only the CONNECT command is served; the others get reply 7.
//!
//! Each `parse_*` function takes the bytes received so far and returns
//! `Ok(None)` when more are needed, `Ok(Some((value, consumed)))` when it has a
//! whole message, or an error for bytes that can never become one. Every
//! message is bounded (at most 2 + 255 methods; 3 + 255 + 255 credentials;
//! 7 + 255 request), so a reader never buffers more than [`MAX_MESSAGE`].
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The largest message a client sends in this exchange (the credentials).
pub const MAX_MESSAGE: usize = 3 + 255 + 255;

/// RFC 1928 §3 method: no authentication required.
pub const METHOD_NO_AUTH: u8 = 0x00;
/// RFC 1928 §3 method: username/password (RFC 1929).
pub const METHOD_USER_PASS: u8 = 0x02;
/// RFC 1928 §3: no acceptable methods.
pub const METHOD_NONE: u8 = 0xff;

/// RFC 1928 §6 reply codes.
pub mod reply {
    /// succeeded
    pub const SUCCEEDED: u8 = 0x00;
    /// general SOCKS server failure
    pub const GENERAL_FAILURE: u8 = 0x01;
    /// connection not allowed by ruleset
    pub const NOT_ALLOWED: u8 = 0x02;
    /// Network unreachable
    pub const NETWORK_UNREACHABLE: u8 = 0x03;
    /// Host unreachable
    pub const HOST_UNREACHABLE: u8 = 0x04;
    /// Connection refused
    pub const CONNECTION_REFUSED: u8 = 0x05;
    /// TTL expired
    pub const TTL_EXPIRED: u8 = 0x06;
    /// Command not supported
    pub const COMMAND_NOT_SUPPORTED: u8 = 0x07;
    /// Address type not supported
    pub const ADDRESS_TYPE_NOT_SUPPORTED: u8 = 0x08;
}

/// Bytes that are not SOCKS5.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Socks5Error {
    /// The version byte is not 5 (or 1 in the RFC 1929 sub-negotiation).
    #[error("not SOCKS5: version byte {0}")]
    Version(u8),
    /// The greeting lists no method (RFC 1928 §3: NMETHODS is 1 to 255).
    #[error("SOCKS5 greeting with no method")]
    NoMethods,
    /// The reserved byte of a request is not 0.
    #[error("SOCKS5 request with a non-zero reserved byte")]
    Reserved,
    /// An address type other than 1, 3 and 4 (reply 8).
    #[error("SOCKS5 address type {0} is not supported")]
    AddressType(u8),
    /// A domain name that is empty or not UTF-8.
    #[error("SOCKS5 request with a bad domain name")]
    BadDomain,
}

impl Socks5Error {
    /// The reply code that answers a request failing this way.
    pub fn reply_code(&self) -> u8 {
        match self {
            Socks5Error::AddressType(_) => reply::ADDRESS_TYPE_NOT_SUPPORTED,
            _ => reply::GENERAL_FAILURE,
        }
    }
}

/// RFC 1928 §3: `VER NMETHODS METHODS...`. Returns the methods offered.
pub fn parse_greeting(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, Socks5Error> {
    let Some(&ver) = buf.first() else {
        return Ok(None);
    };
    if ver != 5 {
        return Err(Socks5Error::Version(ver));
    }
    let Some(&n) = buf.get(1) else {
        return Ok(None);
    };
    if n == 0 {
        return Err(Socks5Error::NoMethods);
    }
    let end = 2 + usize::from(n);
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some((buf[2..end].to_vec(), end)))
}

/// RFC 1928 §3: `VER METHOD`.
pub fn encode_method(method: u8) -> [u8; 2] {
    [5, method]
}

/// A username and a password (RFC 1929), as bytes.
pub type Credentials = (Vec<u8>, Vec<u8>);

/// RFC 1929 §2: `VER(1) ULEN UNAME PLEN PASSWD`. Returns (username, password).
pub fn parse_credentials(buf: &[u8]) -> Result<Option<(Credentials, usize)>, Socks5Error> {
    let Some(&ver) = buf.first() else {
        return Ok(None);
    };
    if ver != 1 {
        return Err(Socks5Error::Version(ver));
    }
    let Some(&ulen) = buf.get(1) else {
        return Ok(None);
    };
    let ulen = usize::from(ulen);
    let Some(&plen) = buf.get(2 + ulen) else {
        return Ok(None);
    };
    let end = 3 + ulen + usize::from(plen);
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some((
        (buf[2..2 + ulen].to_vec(), buf[3 + ulen..end].to_vec()),
        end,
    )))
}

/// RFC 1929 §2: `VER(1) STATUS`; 0 is success, anything else closes.
pub fn encode_auth_status(ok: bool) -> [u8; 2] {
    [1, if ok { 0 } else { 1 }]
}

/// Where a request asks to connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// ATYP 1 or 4.
    Addr(SocketAddr),
    /// ATYP 3: a name (resolved by the server) and a port.
    Domain(String, u16),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Addr(a) => write!(f, "{a}"),
            Target::Domain(d, p) => write!(f, "{d}:{p}"),
        }
    }
}

/// A parsed RFC 1928 §4 request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// CMD: 1 CONNECT, 2 BIND, 3 UDP ASSOCIATE.
    pub command: u8,
    /// DST.ADDR and DST.PORT.
    pub target: Target,
}

/// RFC 1928 §4: `VER CMD RSV ATYP DST.ADDR DST.PORT`.
pub fn parse_request(buf: &[u8]) -> Result<Option<(Request, usize)>, Socks5Error> {
    if buf.len() < 4 {
        if let Some(&v) = buf.first() {
            if v != 5 {
                return Err(Socks5Error::Version(v));
            }
        }
        return Ok(None);
    }
    if buf[0] != 5 {
        return Err(Socks5Error::Version(buf[0]));
    }
    if buf[2] != 0 {
        return Err(Socks5Error::Reserved);
    }
    let command = buf[1];
    let (addr_len, start) = match buf[3] {
        1 => (4, 4),
        4 => (16, 4),
        3 => match buf.get(4) {
            Some(&n) => (usize::from(n), 5),
            None => return Ok(None),
        },
        other => return Err(Socks5Error::AddressType(other)),
    };
    let end = start + addr_len + 2;
    if buf.len() < end {
        return Ok(None);
    }
    let a = &buf[start..start + addr_len];
    let port = u16::from_be_bytes([buf[end - 2], buf[end - 1]]);
    let target = match buf[3] {
        1 => Target::Addr(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])),
            port,
        )),
        4 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(a);
            Target::Addr(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), port))
        }
        _ => {
            let name = std::str::from_utf8(a).map_err(|_| Socks5Error::BadDomain)?;
            if name.is_empty() {
                return Err(Socks5Error::BadDomain);
            }
            Target::Domain(name.to_string(), port)
        }
    };
    Ok(Some((Request { command, target }, end)))
}

/// RFC 1928 §6: `VER REP RSV ATYP BND.ADDR BND.PORT`. `bound` is the address
/// the server uses towards the target (0.0.0.0:0 when there is none).
pub fn encode_reply(code: u8, bound: Option<SocketAddr>) -> Vec<u8> {
    let bound = bound.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut out = vec![5, code, 0];
    match bound.ip() {
        IpAddr::V4(v4) => {
            out.push(1);
            out.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            out.push(4);
            out.extend_from_slice(&v6.octets());
        }
    }
    out.extend_from_slice(&bound.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting() {
        assert_eq!(parse_greeting(&[5]), Ok(None));
        assert_eq!(parse_greeting(&[5, 2, 0]), Ok(None));
        assert_eq!(parse_greeting(&[5, 2, 0, 2, 9]), Ok(Some((vec![0, 2], 4))));
        assert_eq!(parse_greeting(&[4, 1, 0]), Err(Socks5Error::Version(4)));
        assert_eq!(parse_greeting(&[5, 0]), Err(Socks5Error::NoMethods));
        assert_eq!(encode_method(METHOD_NONE), [5, 0xff]);
    }

    #[test]
    fn credentials() {
        let b = [1, 3, b'b', b'o', b'b', 2, b'p', b'w'];
        for cut in 0..b.len() {
            assert_eq!(parse_credentials(&b[..cut]), Ok(None), "{cut}");
        }
        assert_eq!(
            parse_credentials(&b),
            Ok(Some(((b"bob".to_vec(), b"pw".to_vec()), 8)))
        );
        assert_eq!(
            parse_credentials(&[1, 0, 0]),
            Ok(Some(((vec![], vec![]), 3)))
        );
        assert_eq!(parse_credentials(&[5, 0, 0]), Err(Socks5Error::Version(5)));
        assert_eq!(encode_auth_status(false), [1, 1]);
    }

    #[test]
    fn requests() {
        // CONNECT 198.18.0.1:80
        let v4 = [5, 1, 0, 1, 198, 18, 0, 1, 0, 80];
        for cut in 0..v4.len() {
            assert_eq!(parse_request(&v4[..cut]), Ok(None), "{cut}");
        }
        let want = Request {
            command: 1,
            target: Target::Addr("198.18.0.1:80".parse().unwrap()),
        };
        assert_eq!(parse_request(&v4), Ok(Some((want, 10))));
        // CONNECT [2001:db8::1]:443
        let mut v6 = vec![5, 1, 0, 4];
        v6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&[1, 0xbb]);
        let (r, n) = parse_request(&v6).unwrap().unwrap();
        assert_eq!(n, 22);
        assert_eq!(r.target.to_string(), "[2001:db8::1]:443");
        // CONNECT example.test:8080
        let mut d = vec![5, 1, 0, 3, 12];
        d.extend_from_slice(b"example.test");
        d.extend_from_slice(&[0x1f, 0x90]);
        let (r, n) = parse_request(&d).unwrap().unwrap();
        assert_eq!(
            (r.target, n),
            (Target::Domain("example.test".into(), 8080), 19)
        );
        assert_eq!(
            parse_request(&[5, 1, 0, 9, 0, 0]),
            Err(Socks5Error::AddressType(9))
        );
        assert_eq!(parse_request(&[5, 1, 1, 1]), Err(Socks5Error::Reserved));
        assert_eq!(
            parse_request(&[5, 1, 0, 3, 0, 0, 80]),
            Err(Socks5Error::BadDomain)
        );
        assert_eq!(
            parse_request(&[5, 1, 0, 3, 1, 0xff, 0, 80]),
            Err(Socks5Error::BadDomain)
        );
    }

    #[test]
    fn replies() {
        assert_eq!(
            encode_reply(reply::SUCCEEDED, Some("198.18.0.2:4000".parse().unwrap())),
            [5, 0, 0, 1, 198, 18, 0, 2, 0x0f, 0xa0]
        );
        assert_eq!(
            encode_reply(reply::NOT_ALLOWED, None),
            [5, 2, 0, 1, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(encode_reply(0, Some("[::1]:1".parse().unwrap())).len(), 22);
    }
}
