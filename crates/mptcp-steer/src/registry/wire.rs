//! The datagram format: encode and decode, no I/O, no key handling beyond the MAC.
//!
//! The layout is in the crate docs (`Message layout`); this module is its only
//! implementation, shared by [`Publisher`](super::Publisher) and
//! [`Registry`](super::Registry).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Key;

/// The protocol version this crate speaks (byte 0 of every message).
pub const VERSION: u8 = 1;
/// Length of the HMAC-SHA256 trailer.
pub const MAC_LEN: usize = 32;
/// Length of one operation: a kind byte and a token.
pub const OP_LEN: usize = 5;
/// The default bound on a datagram: fits the IPv6 minimum MTU (1280) with
/// IPv6 and UDP headers, so no datagram is ever fragmented.
pub const DEFAULT_MAX_DATAGRAM: usize = 1200;
/// The largest datagram the format allows a sender to build (the UDP limit).
pub const MAX_DATAGRAM: usize = 65_507;

const FAMILY_V4: u8 = 4;
const FAMILY_V6: u8 = 6;
const OP_ADD: u8 = 1;
const OP_REMOVE: u8 = 2;
const OP_RESET: u8 = 3;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// One change a backend reports about the tokens it owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// This backend owns the MPTCP token (a connection was created).
    Add(u32),
    /// This backend no longer owns the token (the connection closed).
    Remove(u32),
    /// Forget every token of this backend; sent when its daemon starts,
    /// followed by the tokens it owns now.
    Reset,
}

impl Op {
    fn encode(self, out: &mut Vec<u8>) {
        let (kind, token) = match self {
            Op::Add(t) => (OP_ADD, t),
            Op::Remove(t) => (OP_REMOVE, t),
            Op::Reset => (OP_RESET, 0),
        };
        out.push(kind);
        out.extend_from_slice(&token.to_be_bytes());
    }

    fn decode(b: &[u8; OP_LEN]) -> Result<Op, &'static str> {
        let token = u32::from_be_bytes([b[1], b[2], b[3], b[4]]);
        match b[0] {
            OP_ADD => Ok(Op::Add(token)),
            OP_REMOVE => Ok(Op::Remove(token)),
            OP_RESET if token == 0 => Ok(Op::Reset),
            OP_RESET => Err("reset operation with a non-zero token"),
            _ => Err("unknown operation kind"),
        }
    }
}

/// A decoded message, before or after authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The backend the message speaks for.
    pub backend: IpAddr,
    /// The sender's clock when it built the message, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The sender's sequence number, strictly increasing per sender process.
    pub seq: u64,
    /// The operations, applied in order.
    pub ops: Vec<Op>,
}

/// Length of the header (everything before the operations) for an address.
pub const fn header_len(backend: &IpAddr) -> usize {
    match backend {
        IpAddr::V4(_) => 4 + 4 + 16,
        IpAddr::V6(_) => 4 + 16 + 16,
    }
}

/// How many operations fit in a datagram of `max_datagram` bytes for this backend.
pub const fn ops_per_datagram(backend: &IpAddr, max_datagram: usize) -> usize {
    let fixed = header_len(backend) + MAC_LEN;
    if max_datagram <= fixed {
        return 0;
    }
    let n = (max_datagram - fixed) / OP_LEN;
    if n > u16::MAX as usize {
        u16::MAX as usize
    } else {
        n
    }
}

/// Encodes `msg` and appends its MAC. The caller keeps `msg.ops.len()` within
/// `u16::MAX` (the [`Publisher`](super::Publisher) does).
pub(crate) fn encode(msg: &Message, key: &Key) -> Vec<u8> {
    let count = u16::try_from(msg.ops.len()).unwrap_or(u16::MAX);
    let mut out =
        Vec::with_capacity(header_len(&msg.backend) + usize::from(count) * OP_LEN + MAC_LEN);
    out.push(VERSION);
    match msg.backend {
        IpAddr::V4(a) => {
            out.push(FAMILY_V4);
            out.extend_from_slice(&count.to_be_bytes());
            out.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out.push(FAMILY_V6);
            out.extend_from_slice(&count.to_be_bytes());
            out.extend_from_slice(&a.octets());
        }
    }
    out.extend_from_slice(&msg.timestamp_ms.to_be_bytes());
    out.extend_from_slice(&msg.seq.to_be_bytes());
    for op in msg.ops.iter().take(usize::from(count)) {
        op.encode(&mut out);
    }
    let mut mac = key.mac();
    mac.update(&out);
    out.extend_from_slice(&mac.finalize().into_bytes());
    out
}

/// A message whose structure is valid; its MAC is not checked yet.
pub(crate) struct Parsed<'a> {
    pub message: Message,
    /// The bytes the MAC covers.
    pub signed: &'a [u8],
    pub mac: &'a [u8],
}

fn take<const N: usize>(b: &[u8], at: usize) -> Result<[u8; N], &'static str> {
    b.get(at..at + N)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or("truncated message")
}

/// Checks the structure (version, family, operation count against the length)
/// and decodes. Never panics, whatever the input.
pub(crate) fn parse(b: &[u8]) -> Result<Parsed<'_>, &'static str> {
    let [version, family, c0, c1] = take::<4>(b, 0)?;
    if version != VERSION {
        return Err("unsupported protocol version");
    }
    let count = usize::from(u16::from_be_bytes([c0, c1]));
    let (backend, mut at) = match family {
        FAMILY_V4 => (IpAddr::V4(Ipv4Addr::from(take::<4>(b, 4)?)), 8),
        FAMILY_V6 => (IpAddr::V6(Ipv6Addr::from(take::<16>(b, 4)?)), 20),
        _ => return Err("unknown address family"),
    };
    let timestamp_ms = u64::from_be_bytes(take::<8>(b, at)?);
    let seq = u64::from_be_bytes(take::<8>(b, at + 8)?);
    at += 16;
    let signed_len = at + count * OP_LEN;
    if b.len() < signed_len + MAC_LEN {
        return Err("truncated message");
    }
    if b.len() > signed_len + MAC_LEN {
        return Err("trailing bytes after the MAC");
    }
    let mut ops = Vec::with_capacity(count);
    for _ in 0..count {
        ops.push(Op::decode(&take::<OP_LEN>(b, at)?)?);
        at += OP_LEN;
    }
    Ok(Parsed {
        message: Message {
            backend,
            timestamp_ms,
            seq,
            ops,
        },
        signed: &b[..signed_len],
        mac: &b[signed_len..],
    })
}

/// Constant-time check of `parsed.mac` against the key.
pub(crate) fn verify(parsed: &Parsed<'_>, key: &Key) -> bool {
    let mut mac = key.mac();
    mac.update(parsed.signed);
    mac.verify_slice(parsed.mac).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::new(b"0123456789abcdef".to_vec()).unwrap()
    }

    /// The byte table in the crate docs, as a fixture.
    #[test]
    fn v4_layout_matches_the_docs() {
        let msg = Message {
            backend: "198.19.0.2".parse().unwrap(),
            timestamp_ms: 0x0102_0304_0506_0708,
            seq: 9,
            ops: vec![Op::Reset, Op::Add(0xdead_beef), Op::Remove(7)],
        };
        let b = encode(&msg, &key());
        let expect_head: &[u8] = &[
            1, 4, 0, 3, // version, family, count
            198, 19, 0, 2, // backend
            1, 2, 3, 4, 5, 6, 7, 8, // timestamp
            0, 0, 0, 0, 0, 0, 0, 9, // seq
            3, 0, 0, 0, 0, // reset
            1, 0xde, 0xad, 0xbe, 0xef, // add
            2, 0, 0, 0, 7, // remove
        ];
        assert_eq!(&b[..expect_head.len()], expect_head);
        assert_eq!(b.len(), expect_head.len() + MAC_LEN);
        let p = parse(&b).unwrap();
        assert_eq!(p.message, msg);
        assert!(verify(&p, &key()));
    }

    #[test]
    fn v6_round_trip() {
        let msg = Message {
            backend: "2001:db8:10::2".parse().unwrap(),
            timestamp_ms: 1,
            seq: 2,
            ops: vec![Op::Add(1)],
        };
        let b = encode(&msg, &key());
        assert_eq!(b.len(), header_len(&msg.backend) + OP_LEN + MAC_LEN);
        assert_eq!(parse(&b).unwrap().message, msg);
    }

    #[test]
    fn structure_errors() {
        let msg = Message {
            backend: "198.19.0.2".parse().unwrap(),
            timestamp_ms: 1,
            seq: 2,
            ops: vec![Op::Add(1)],
        };
        let good = encode(&msg, &key());
        for n in 0..good.len() {
            assert!(parse(&good[..n]).is_err(), "prefix of {n} bytes parsed");
        }
        let mut long = good.clone();
        long.push(0);
        assert_eq!(parse(&long).err(), Some("trailing bytes after the MAC"));
        let mut v = good.clone();
        v[0] = 2;
        assert_eq!(parse(&v).err(), Some("unsupported protocol version"));
        let mut f = good.clone();
        f[1] = 5;
        assert_eq!(parse(&f).err(), Some("unknown address family"));
        let mut k = good.clone();
        k[24] = 9;
        assert_eq!(parse(&k).err(), Some("unknown operation kind"));
        let mut r = good;
        r[24] = OP_RESET;
        assert_eq!(
            parse(&r).err(),
            Some("reset operation with a non-zero token")
        );
    }

    #[test]
    fn capacity() {
        let v4: IpAddr = "198.19.0.2".parse().unwrap();
        let v6: IpAddr = "2001:db8::2".parse().unwrap();
        assert_eq!(ops_per_datagram(&v4, DEFAULT_MAX_DATAGRAM), 228);
        assert_eq!(ops_per_datagram(&v6, DEFAULT_MAX_DATAGRAM), 226);
        assert_eq!(ops_per_datagram(&v4, 10), 0);
        assert_eq!(ops_per_datagram(&v4, MAX_DATAGRAM), 13_090);
    }
}
