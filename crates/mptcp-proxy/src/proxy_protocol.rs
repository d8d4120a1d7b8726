//! The PROXY protocol header (HAProxy's `proxy-protocol.txt`, versions 1 and 2),
//! as a sender writes it: addresses in, bytes out, no I/O.
//!
//! The relay sends it to the upstream, once, before the first byte of the client,
//! so a server behind the relay (nginx `proxy_protocol`, HAProxy `accept-proxy`)
//! sees the client's address instead of the relay's.
//!
//! # Addresses
//!
//! The source is the client's address as the relay accepted it, the destination
//! the relay's own address on that connection. An IPv4 client accepted on a
//! dual-stack (`[::]`) listener appears as `::ffff:a.b.c.d`; such mapped addresses
//! are sent as IPv4 when both ends are mapped (`TCP4` / family `0x11`), and when
//! only one end is IPv4 the other is written as a mapped IPv6 address so both share
//! one family (`TCP6` / `0x21`), as the specification requires.
//!
//! # The MPTCP TLV (version 2)
//!
//! Version 2 carries one TLV in the application-specific range 0xE0-0xEF:
//!
//! | byte | value |
//! |---|---|
//! | 0 | type [`PP2_TYPE_MPTCP`] = `0xEC` |
//! | 1-2 | length, big endian: `0x00 0x01` |
//! | 3 | the client connection: `0x00` plain TCP, `0x01` MPTCP in use, `0x02` an MPTCP socket that fell back to TCP |
//!
//! `0xEC` was picked to stay clear of the values cloud load balancers already put
//! in this range (0xE0, 0xEA, 0xEE). A receiver should read the first value byte
//! and ignore any further bytes: later versions may append fields.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use mptcp_net::MptcpStatus;

/// The 12-byte signature that opens every version 2 header.
pub const V2_SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

/// The TLV type this crate uses for the client connection's MPTCP status.
pub const PP2_TYPE_MPTCP: u8 = 0xEC;

/// The value byte of the MPTCP TLV.
pub fn mptcp_tlv_value(status: MptcpStatus) -> u8 {
    match status {
        MptcpStatus::Active => 0x01,
        MptcpStatus::FellBack => 0x02,
        _ => 0x00,
    }
}

/// `addr`'s IP, with an IPv4-mapped IPv6 address turned back into IPv4.
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), addr.port()),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}

fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// Source and destination in one family (see the module docs).
fn same_family(src: SocketAddr, dst: SocketAddr) -> (SocketAddr, SocketAddr) {
    let (s, d) = (canonical(src), canonical(dst));
    if s.is_ipv4() == d.is_ipv4() {
        (s, d)
    } else {
        (
            SocketAddr::new(IpAddr::V6(as_v6(s.ip())), s.port()),
            SocketAddr::new(IpAddr::V6(as_v6(d.ip())), d.port()),
        )
    }
}

/// The version 1 line, `PROXY TCP4 <src> <dst> <sport> <dport>\r\n`.
pub fn encode_v1(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let (s, d) = same_family(source, destination);
    let family = if s.is_ipv4() { "TCP4" } else { "TCP6" };
    // Display of Ipv4Addr / Ipv6Addr is the canonical form the spec asks for (no
    // leading zeroes, `::` for the longest run of zero groups).
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        s.ip(),
        d.ip(),
        s.port(),
        d.port()
    )
    .into_bytes()
}

/// The version 2 header, command PROXY over TCP, with the MPTCP TLV telling
/// `client_status` (`None`: no TLV).
pub fn encode_v2(
    source: SocketAddr,
    destination: SocketAddr,
    client_status: Option<MptcpStatus>,
) -> Vec<u8> {
    let (s, d) = same_family(source, destination);
    let mut out = Vec::with_capacity(16 + 36 + 4);
    out.extend_from_slice(&V2_SIGNATURE);
    out.push(0x21); // version 2, command PROXY
    let mut body = Vec::with_capacity(36 + 4);
    match (s.ip(), d.ip()) {
        (IpAddr::V4(si), IpAddr::V4(di)) => {
            out.push(0x11); // AF_INET, STREAM
            body.extend_from_slice(&si.octets());
            body.extend_from_slice(&di.octets());
        }
        (si, di) => {
            out.push(0x21); // AF_INET6, STREAM
            body.extend_from_slice(&as_v6(si).octets());
            body.extend_from_slice(&as_v6(di).octets());
        }
    }
    body.extend_from_slice(&s.port().to_be_bytes());
    body.extend_from_slice(&d.port().to_be_bytes());
    if let Some(status) = client_status {
        body.extend_from_slice(&[PP2_TYPE_MPTCP, 0x00, 0x01, mptcp_tlv_value(status)]);
    }
    // At most 36 + 4 bytes: always fits the 16-bit length.
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_ipv4_matches_the_spec_example() {
        // The example line of section 2.1.
        assert_eq!(
            encode_v1(sa("192.168.0.1:56324"), sa("192.168.0.11:443")),
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
        );
    }

    #[test]
    fn v1_ipv6_is_compressed_and_v4_mapped_is_ipv4() {
        assert_eq!(
            encode_v1(sa("[2001:db8:0:0:0:0:0:1]:1"), sa("[2001:db8::2]:65535")),
            b"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n"
        );
        assert_eq!(
            encode_v1(
                sa("[::ffff:198.18.0.1]:40000"),
                sa("[::ffff:198.18.0.2]:80")
            ),
            b"PROXY TCP4 198.18.0.1 198.18.0.2 40000 80\r\n"
        );
        // Mixed: both as IPv6.
        assert_eq!(
            encode_v1(sa("198.18.0.1:5"), sa("[2001:db8::2]:80")),
            b"PROXY TCP6 ::ffff:198.18.0.1 2001:db8::2 5 80\r\n"
        );
    }

    #[test]
    fn v1_longest_lines_fit_the_spec_bounds() {
        let v4 = encode_v1(sa("255.255.255.255:65535"), sa("255.255.255.255:65535"));
        assert_eq!(v4.len(), 56);
        let f = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535";
        assert_eq!(encode_v1(sa(f), sa(f)).len(), 104);
    }

    #[test]
    fn v2_ipv4_with_tlv() {
        let got = encode_v2(
            sa("198.18.0.1:40000"),
            sa("198.18.0.2:80"),
            Some(MptcpStatus::Active),
        );
        let mut want = vec![
            0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, // sig
            0x21, // v2 PROXY
            0x11, // TCP over IPv4
            0x00, 0x10, // 12 address bytes + 4 TLV bytes
            198, 18, 0, 1, // src
            198, 18, 0, 2, // dst
            0x9C, 0x40, // 40000
            0x00, 0x50, // 80
        ];
        want.extend_from_slice(&[0xEC, 0x00, 0x01, 0x01]);
        assert_eq!(got, want);
    }

    #[test]
    fn v2_ipv6_without_tlv_and_statuses() {
        let got = encode_v2(sa("[2001:db8::1]:1"), sa("[2001:db8::2]:2"), None);
        assert_eq!(&got[12..16], &[0x21, 0x21, 0x00, 36]);
        assert_eq!(got.len(), 16 + 36);
        assert_eq!(got[16], 0x20);
        assert_eq!(got[31], 0x01);
        assert_eq!(&got[48..52], &[0, 1, 0, 2]);
        for (status, byte) in [
            (MptcpStatus::PlainTcp, 0),
            (MptcpStatus::Active, 1),
            (MptcpStatus::FellBack, 2),
        ] {
            let h = encode_v2(
                sa("[::ffff:1.2.3.4]:1"),
                sa("[::ffff:5.6.7.8]:2"),
                Some(status),
            );
            assert_eq!(h[13], 0x11, "mapped addresses go as IPv4");
            assert_eq!(*h.last().unwrap(), byte);
        }
    }
}
