//! The parsers and encoders of `mptcp-proxy`'s intake: PROXY protocol, SOCKS5, HTTP
//! CONNECT, RFC 8803 Convert.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use mptcp_net::MptcpStatus;
use mptcp_proxy::{convert, http_connect, proxy_protocol as pp, socks5};

use crate::Input;

/// One address from the input: a flag byte (bit 0: IPv6, bit 1: an IPv4-mapped IPv6
/// address), the address bytes, the port.
fn socket_addr(input: &mut Input<'_>) -> SocketAddr {
    let flags = input.u8();
    let ip = if flags & 2 != 0 {
        IpAddr::V6(Ipv4Addr::from(input.array::<4>()).to_ipv6_mapped())
    } else if flags & 1 != 0 {
        IpAddr::V6(Ipv6Addr::from(input.array::<16>()))
    } else {
        IpAddr::V4(Ipv4Addr::from(input.array::<4>()))
    };
    SocketAddr::new(ip, input.u16())
}

/// `::ffff:a.b.c.d` as `a.b.c.d`, anything else as it is (written here from the PROXY
/// protocol specification, not with the library's helper).
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            if s[..5] == [0; 5] && s[5] == 0xffff {
                let o = v6.octets();
                IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
            } else {
                ip
            }
        }
        v4 => v4,
    }
}

fn mapped(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// What a receiver must read from a header for `src` and `dst`: both IPv4 when both are
/// (or are mapped) IPv4, else both IPv6.
fn expected(src: SocketAddr, dst: SocketAddr) -> (SocketAddr, SocketAddr) {
    let (s, d) = (unmapped(src.ip()), unmapped(dst.ip()));
    if s.is_ipv4() && d.is_ipv4() {
        (
            SocketAddr::new(s, src.port()),
            SocketAddr::new(d, dst.port()),
        )
    } else {
        (
            SocketAddr::new(IpAddr::V6(mapped(s)), src.port()),
            SocketAddr::new(IpAddr::V6(mapped(d)), dst.port()),
        )
    }
}

/// A strict reader of a version 1 line (HAProxy's `proxy-protocol.txt`, section 2.1):
/// the addresses, or why not.
fn read_v1(line: &[u8]) -> Result<(SocketAddr, SocketAddr), String> {
    if line.len() > 107 {
        return Err(format!("{} bytes, the limit is 107", line.len()));
    }
    let text = std::str::from_utf8(line).map_err(|e| e.to_string())?;
    let text = text.strip_suffix("\r\n").ok_or("no CRLF at the end")?;
    let parts: Vec<&str> = text.split(' ').collect();
    let [proxy, proto, s, d, sp, dp] = parts[..] else {
        return Err(format!("{} fields", parts.len()));
    };
    if proxy != "PROXY" {
        return Err("no PROXY".into());
    }
    let ip = |t: &str| -> Result<IpAddr, String> {
        let ip = match proto {
            "TCP4" => t.parse::<Ipv4Addr>().map(IpAddr::V4),
            "TCP6" => t.parse::<Ipv6Addr>().map(IpAddr::V6),
            other => return Err(format!("protocol {other}")),
        }
        .map_err(|e| format!("{t}: {e}"))?;
        // The canonical form: what parses prints back the same.
        if ip.to_string() != t {
            return Err(format!("{t} is not in canonical form"));
        }
        Ok(ip)
    };
    let port = |t: &str| -> Result<u16, String> {
        let p: u16 = t.parse().map_err(|_| format!("port {t}"))?;
        if p.to_string() != t {
            return Err(format!("port {t} has leading zeroes"));
        }
        Ok(p)
    };
    Ok((
        SocketAddr::new(ip(s)?, port(sp)?),
        SocketAddr::new(ip(d)?, port(dp)?),
    ))
}

/// The addresses and the MPTCP TLV's value of a version 2 header.
type V2 = (SocketAddr, SocketAddr, Option<u8>);

/// A strict reader of a version 2 header (section 2.2) of command PROXY over TCP.
fn read_v2(b: &[u8]) -> Result<V2, String> {
    if b.len() < 16 || b[..12] != pp::V2_SIGNATURE {
        return Err("no signature".into());
    }
    if b[12] != 0x21 {
        return Err(format!("version/command {:#x}", b[12]));
    }
    let len = usize::from(u16::from_be_bytes([b[14], b[15]]));
    if b.len() != 16 + len {
        return Err(format!("length {len} for {} bytes", b.len()));
    }
    let body = &b[16..];
    let (src_ip, dst_ip, rest): (IpAddr, IpAddr, &[u8]) = match b[13] {
        0x11 if body.len() >= 12 => (
            IpAddr::from(<[u8; 4]>::try_from(&body[0..4]).unwrap()),
            IpAddr::from(<[u8; 4]>::try_from(&body[4..8]).unwrap()),
            &body[8..],
        ),
        0x21 if body.len() >= 36 => (
            IpAddr::from(<[u8; 16]>::try_from(&body[0..16]).unwrap()),
            IpAddr::from(<[u8; 16]>::try_from(&body[16..32]).unwrap()),
            &body[32..],
        ),
        other => return Err(format!("family {other:#x} with {} bytes", body.len())),
    };
    let sport = u16::from_be_bytes([rest[0], rest[1]]);
    let dport = u16::from_be_bytes([rest[2], rest[3]]);
    let mut tlvs = &rest[4..];
    let mut mptcp = None;
    while !tlvs.is_empty() {
        if tlvs.len() < 3 {
            return Err("a TLV cut short".into());
        }
        let kind = tlvs[0];
        let n = usize::from(u16::from_be_bytes([tlvs[1], tlvs[2]]));
        let value = tlvs.get(3..3 + n).ok_or("a TLV runs past the header")?;
        if kind == pp::PP2_TYPE_MPTCP {
            if mptcp.is_some() || value.is_empty() {
                return Err("a second or empty MPTCP TLV".into());
            }
            mptcp = Some(value[0]);
        }
        tlvs = &tlvs[3 + n..];
    }
    Ok((
        SocketAddr::new(src_ip, sport),
        SocketAddr::new(dst_ip, dport),
        mptcp,
    ))
}

/// PROXY protocol versions 1 and 2. The library only writes these headers (the relay
/// sends one upstream), so the input is what the writer is given: two addresses (each a
/// flag byte, bit 0 IPv6 and bit 1 IPv4-mapped IPv6, then the address and the port) and
/// the client's MPTCP status. Each header must read back, with a strict reader written
/// here from the specification, to the addresses in one family and to the status.
pub fn proxy_protocol(data: &[u8]) {
    let mut input = Input(data);
    let src = socket_addr(&mut input);
    let dst = socket_addr(&mut input);
    let status = match input.u8() % 4 {
        0 => None,
        1 => Some(MptcpStatus::PlainTcp),
        2 => Some(MptcpStatus::Active),
        _ => Some(MptcpStatus::FellBack),
    };
    let want = expected(src, dst);

    let v1 = pp::encode_v1(src, dst);
    let got = read_v1(&v1).unwrap_or_else(|e| panic!("v1 {:?}: {e}", String::from_utf8_lossy(&v1)));
    assert_eq!(got, want, "v1 for {src} {dst}");

    let v2 = pp::encode_v2(src, dst, status);
    let (s, d, tlv) = read_v2(&v2).unwrap_or_else(|e| panic!("v2 {v2:02x?}: {e}"));
    assert_eq!((s, d), want, "v2 for {src} {dst}");
    let want_tlv = status.map(|st| match st {
        MptcpStatus::Active => 1,
        MptcpStatus::FellBack => 2,
        _ => 0,
    });
    assert_eq!(tlv, want_tlv, "v2 MPTCP TLV for {status:?}");
    if let Some(st) = status {
        assert_eq!(Some(pp::mptcp_tlv_value(st)), want_tlv);
    }
}

/// Checks that every proper prefix of a message `parse` accepted as `n` bytes is
/// `Ok(None)`: a reader given the bytes in pieces must wait, not refuse.
fn prefixes_wait<T, E: std::fmt::Debug>(
    data: &[u8],
    n: usize,
    parse: impl Fn(&[u8]) -> Result<Option<T>, E>,
    what: &str,
) {
    for k in 0..n {
        match parse(&data[..k]) {
            Ok(None) => {}
            Ok(Some(_)) => panic!("{what}: {k} of {n} bytes already parse"),
            Err(e) => panic!("{what}: {k} of {n} bytes are refused ({e:?})"),
        }
    }
}

/// The request (RFC 1928 section 4) a client sends for `r`.
fn socks5_request_bytes(r: &socks5::Request) -> Vec<u8> {
    let mut out = vec![5, r.command, 0];
    let port = match &r.target {
        socks5::Target::Addr(a) => {
            match a.ip() {
                IpAddr::V4(v4) => {
                    out.push(1);
                    out.extend_from_slice(&v4.octets());
                }
                IpAddr::V6(v6) => {
                    out.push(4);
                    out.extend_from_slice(&v6.octets());
                }
            }
            a.port()
        }
        socks5::Target::Domain(name, port) => {
            out.push(3);
            out.push(u8::try_from(name.len()).expect("a parsed domain fits one length byte"));
            out.extend_from_slice(name.as_bytes());
            *port
        }
    };
    out.extend_from_slice(&port.to_be_bytes());
    out
}

/// SOCKS5: the greeting, the RFC 1929 credentials and the request parsers on the same
/// bytes. A parsed message re-encodes to the bytes it took, its prefixes wait for more,
/// an incomplete one is within the bound; and the server's reply encoder writes what
/// the request parser reads back (a reply has the request's layout).
pub fn socks5(data: &[u8]) {
    match socks5::parse_greeting(data) {
        Ok(Some((methods, n))) => {
            assert!(n <= data.len() && !methods.is_empty() && methods.len() <= 255);
            assert_eq!(n, 2 + methods.len());
            assert_eq!(&data[2..n], &methods[..]);
            prefixes_wait(data, n, socks5::parse_greeting, "greeting");
        }
        Ok(None) => assert!(data.len() < 2 + 255, "{} bytes wait", data.len()),
        Err(_) => {}
    }
    match socks5::parse_credentials(data) {
        Ok(Some(((user, pass), n))) => {
            assert!(n <= data.len() && n <= socks5::MAX_MESSAGE);
            let mut again = vec![1, user.len() as u8];
            again.extend_from_slice(&user);
            again.push(pass.len() as u8);
            again.extend_from_slice(&pass);
            assert_eq!(&again[..], &data[..n]);
            prefixes_wait(data, n, socks5::parse_credentials, "credentials");
        }
        Ok(None) => assert!(data.len() < socks5::MAX_MESSAGE),
        Err(_) => {}
    }
    match socks5::parse_request(data) {
        Ok(Some((r, n))) => {
            assert!(n <= data.len() && n <= 7 + 255);
            assert_eq!(socks5_request_bytes(&r), &data[..n]);
            prefixes_wait(data, n, socks5::parse_request, "request");
            let _ = r.target.to_string();
            if let socks5::Target::Addr(bound) = r.target {
                let reply = socks5::encode_reply(r.command, Some(bound));
                let back = socks5::parse_request(&reply);
                assert_eq!(back, Ok(Some((r.clone(), reply.len()))), "reply {reply:?}");
            }
        }
        Ok(None) => assert!(data.len() < 7 + 255),
        Err(e) => assert!([1, 8].contains(&e.reply_code()), "{e:?}"),
    }
}

/// HTTP CONNECT: a parsed head ends with its blank line within the bound and parses the
/// same without the bytes after it; one byte less waits; the host and port written back
/// into a request line parse to the same. Refusals answer with a 4xx, and a head
/// refused from its first bytes stays refused whatever follows them.
pub fn http_connect(data: &[u8]) {
    let whole = http_connect::parse(data);
    if http_connect::parse(&data[..data.len() / 2]).is_err() {
        assert!(whole.is_err(), "refused at half, not whole: {whole:?}");
    }
    match whole {
        Ok(Some((host, port, n))) => {
            assert!(n <= data.len() && n <= http_connect::MAX_HEAD);
            assert_eq!(&data[n - 4..n], b"\r\n\r\n");
            assert!(!host.is_empty() && port != 0);
            assert_eq!(
                http_connect::parse(&data[..n]),
                Ok(Some((host.clone(), port, n)))
            );
            assert_eq!(http_connect::parse(&data[..n - 1]), Ok(None));
            let authority = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            let again = format!("CONNECT {authority} HTTP/1.1\r\n\r\n");
            if again.len() <= http_connect::MAX_HEAD {
                assert_eq!(
                    http_connect::parse(again.as_bytes()),
                    Ok(Some((host, port, again.len()))),
                    "{again:?}"
                );
            }
        }
        Ok(None) => assert!(data.len() < http_connect::MAX_HEAD),
        Err(e) => assert!(e.response().starts_with(b"HTTP/1.1 4"), "{e:?}"),
    }
}

/// RFC 8803 Convert: a parsed message takes a whole number of words within the bound
/// and encodes back to no more bytes, which parse to the same message; its prefixes are
/// incomplete, asking for more than they have and no more than the bound.
pub fn convert(data: &[u8]) {
    match convert::parse(data) {
        Ok(convert::Parsed::Done(msg, n)) => {
            assert!(n <= data.len() && n <= convert::MAX_MESSAGE && n % 4 == 0);
            // No longer: a Supported TCP Extensions TLV drops its zero padding, whole
            // words of it included.
            let again = convert::encode(&msg).expect("a parsed message encodes");
            assert!(again.len() <= n, "{msg:?} grows to {} bytes", again.len());
            assert_eq!(
                convert::parse(&again),
                Ok(convert::Parsed::Done(msg.clone(), again.len()))
            );
            for k in (0..n).filter(|&k| k < 8 || k + 1 == n) {
                match convert::parse(&data[..k]) {
                    Ok(convert::Parsed::Incomplete(need)) => {
                        assert!(need > k && need <= n, "{k} of {n} bytes ask for {need}")
                    }
                    other => panic!("{k} of {n} bytes give {other:?}"),
                }
            }
            let _ = (msg.connect(), msg.error(), msg.has_info());
        }
        Ok(convert::Parsed::Incomplete(need)) => {
            assert!(need > data.len() && need <= convert::MAX_MESSAGE);
        }
        Err(e) => {
            let _ = (e.to_tlv(), e.code().description(), e.to_string());
        }
    }
}
