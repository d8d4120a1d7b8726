//! The 0-RTT TCP Convert Protocol (RFC 8803) wire format: a sans-I/O parser and
//! encoder, no sockets inside.
//!
//! The wire format is the contract. Where the numbers come from:
//!
//! - the type and error codes, and version 1: the IANA registry "TCP Convert
//!   Protocol (Convert) Parameters" (Convert Versions, Convert TLVs, Convert
//!   Errors), read for this module;
//! - the field layouts (sizes, order, lengths in 32-bit words, the magic
//!   number): RFC 8803 §4, cross-checked field by field against Tessares'
//!   libconvert client (`convert.h`), the RFC authors' own implementation. The
//!   RFC's body text could not be retrieved on the build host, so the section
//!   numbers cited (§4.1 fixed header, §4.2.1 generic TLV, §4.2.3 Info, §4.2.4
//!   Supported TCP Extensions, §4.2.5 Connect, §4.2.6 Extended TCP Header,
//!   §4.2.7 Cookie, §4.2.8 Error) follow the RFC's table of contents as
//!   recalled; check them against the text before quoting them elsewhere.
//!
//! # Layout
//!
//! A Convert message is a fixed header followed by TLVs (§4.1):
//!
//! ```text
//!  0                   1                   2                   3
//! +---------------+---------------+-------------------------------+
//! |    Version    | Total Length  |         Magic Number          |
//! +---------------+---------------+-------------------------------+
//! ```
//!
//! - Version: 1 (IANA "Convert Versions": 0 reserved, 1 assigned).
//! - Total Length: the whole message, header included, in **32-bit words**; an
//!   8-bit field, so a message is at most 255 x 4 = 1020 bytes ([`MAX_MESSAGE`]).
//! - Magic Number: `0x2263`.
//!
//! Every TLV (§4.2.1) starts with Type (8 bits) and Length (8 bits, the TLV's size
//! in 32-bit words, Type and Length included); TLVs are padded with zeros to a
//! 32-bit boundary. The types (IANA "Convert TLVs"): 1 Info, 10 Connect,
//! 20 Extended TCP Header, 21 Supported TCP Extensions, 22 Cookie, 30 Error.
//!
//! The bytes that follow the message on the same stream are application data
//! (§4: the converter relays them to the server, and the server's to the client
//! after the converter's own message). [`parse`] reports how many bytes the
//! message took so the caller keeps the rest.
//!
//! # What this module decides
//!
//! - A TLV whose Length is 0, runs past Total Length, or is shorter than its
//!   type's fixed part is a Malformed Message (error 1). An unknown type is an
//!   Unsupported Message (error 2), with the type as the Error TLV's value
//!   (§4.2.8 asks the Value to identify what was not supported).
//! - The Connect TLV's address is always 16 bytes (§4.2.5: IPv4 destinations as
//!   IPv4-mapped IPv6 addresses, RFC 4291); [`Tlv::Connect`] turns a mapped
//!   address back into IPv4.
//! - Padding bytes are not checked on input (be liberal), always zero on output.
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The only version (IANA "Convert Versions").
pub const VERSION: u8 = 1;
/// The fixed header's magic number (§4.1).
pub const MAGIC: u16 = 0x2263;
/// The fixed header's size in bytes.
pub const HEADER_LEN: usize = 4;
/// The largest message: Total Length is an 8-bit count of 32-bit words.
pub const MAX_MESSAGE: usize = 255 * 4;

/// TLV type codes (IANA "Convert TLVs").
pub mod tlv_type {
    /// Info TLV (§4.2.3): the client asks which TCP extensions the converter supports.
    pub const INFO: u8 = 1;
    /// Connect TLV (§4.2.5): the destination.
    pub const CONNECT: u8 = 10;
    /// Extended TCP Header TLV (§4.2.6): the server's TCP header, returned by the converter.
    pub const EXTENDED_TCP_HEADER: u8 = 20;
    /// Supported TCP Extensions TLV (§4.2.4): TCP option kinds the converter supports.
    pub const SUPPORTED_TCP_EXTENSIONS: u8 = 21;
    /// Cookie TLV (§4.2.7).
    pub const COOKIE: u8 = 22;
    /// Error TLV (§4.2.8).
    pub const ERROR: u8 = 30;
}

/// An Error TLV's code (IANA "Convert Errors"; §4.2.8). Ranges: 0-31 message
/// validation and processing, 32-63 client side, 64-95 converter side, 96-127
/// caused by the destination server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u8);

impl ErrorCode {
    /// 0: the message's version is not supported.
    pub const UNSUPPORTED_VERSION: ErrorCode = ErrorCode(0);
    /// 1: the message could not be decoded.
    pub const MALFORMED_MESSAGE: ErrorCode = ErrorCode(1);
    /// 2: a TLV the converter does not support.
    pub const UNSUPPORTED_MESSAGE: ErrorCode = ErrorCode(2);
    /// 3: the converter requires a Cookie TLV.
    pub const MISSING_COOKIE: ErrorCode = ErrorCode(3);
    /// 32: the client may not use this converter (or this destination).
    pub const NOT_AUTHORIZED: ErrorCode = ErrorCode(32);
    /// 33: a TCP option in the Connect TLV is not supported.
    pub const UNSUPPORTED_TCP_OPTION: ErrorCode = ErrorCode(33);
    /// 64: the converter is out of resources.
    pub const RESOURCE_EXCEEDED: ErrorCode = ErrorCode(64);
    /// 65: the converter could not reach the network.
    pub const NETWORK_FAILURE: ErrorCode = ErrorCode(65);
    /// 96: the server reset the connection.
    pub const CONNECTION_RESET: ErrorCode = ErrorCode(96);
    /// 97: the server could not be reached.
    pub const DESTINATION_UNREACHABLE: ErrorCode = ErrorCode(97);

    /// The registry's description, or `unassigned`.
    pub fn description(self) -> &'static str {
        match self.0 {
            0 => "Unsupported Version",
            1 => "Malformed Message",
            2 => "Unsupported Message",
            3 => "Missing Cookie",
            32 => "Not Authorized",
            33 => "Unsupported TCP Option",
            64 => "Resource Exceeded",
            65 => "Network Failure",
            96 => "Connection Reset",
            97 => "Destination Unreachable",
            192..=255 => "private use",
            _ => "unassigned",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.0, self.description())
    }
}

/// One TLV.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tlv {
    /// Info TLV (§4.2.3): type 1, length 1, 16 zero bits.
    Info,
    /// Connect TLV (§4.2.5): Remote Peer Port (16 bits), Remote Peer IP Address
    /// (128 bits), then TCP options (padded to 32 bits) for the converter to use
    /// towards the server.
    Connect {
        /// The destination (an IPv4-mapped address comes back as IPv4).
        dest: SocketAddr,
        /// Raw TCP options, padding included.
        tcp_options: Vec<u8>,
    },
    /// Extended TCP Header TLV (§4.2.6): 16 unassigned bits, then the TCP header
    /// (options included) the server sent, as the converter returns it.
    ExtendedTcpHeader(Vec<u8>),
    /// Supported TCP Extensions TLV (§4.2.4): 16 unassigned bits, then one byte
    /// per supported TCP option kind, zero padded.
    SupportedTcpExtensions(Vec<u8>),
    /// Cookie TLV (§4.2.7): 16 zero bits, then an opaque value.
    Cookie(Vec<u8>),
    /// Error TLV (§4.2.8): Error Code (8 bits), then a Value whose meaning
    /// depends on the code.
    Error {
        /// The code.
        code: ErrorCode,
        /// The value bytes (padding included when parsed).
        value: Vec<u8>,
    },
}

/// A Convert message: the fixed header's fields are implied (version 1, the
/// length computed, the magic number).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// The TLVs, in order.
    pub tlvs: Vec<Tlv>,
}

impl Message {
    /// The Connect TLV's destination, if there is one.
    pub fn connect(&self) -> Option<SocketAddr> {
        self.tlvs.iter().find_map(|t| match t {
            Tlv::Connect { dest, .. } => Some(*dest),
            _ => None,
        })
    }

    /// The first Error TLV's code, if there is one.
    pub fn error(&self) -> Option<ErrorCode> {
        self.tlvs.iter().find_map(|t| match t {
            Tlv::Error { code, .. } => Some(*code),
            _ => None,
        })
    }

    /// Whether the message carries an Info TLV.
    pub fn has_info(&self) -> bool {
        self.tlvs.iter().any(|t| matches!(t, Tlv::Info))
    }
}

/// Why bytes are not a valid Convert message. [`ParseError::code`] gives the
/// Error TLV code a converter answers with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The version is not 1.
    #[error("unsupported Convert version {0}")]
    UnsupportedVersion(u8),
    /// The magic number is not 0x2263: not a Convert message.
    #[error("bad magic number {0:#06x} (expected 0x2263)")]
    BadMagic(u16),
    /// The layout is wrong.
    #[error("malformed Convert message: {0}")]
    Malformed(&'static str),
    /// A TLV type this implementation does not know.
    #[error("unsupported Convert TLV type {0}")]
    UnsupportedTlv(u8),
}

impl ParseError {
    /// The Error TLV code that answers this error (§4.2.8).
    pub fn code(&self) -> ErrorCode {
        match self {
            ParseError::UnsupportedVersion(_) => ErrorCode::UNSUPPORTED_VERSION,
            ParseError::BadMagic(_) | ParseError::Malformed(_) => ErrorCode::MALFORMED_MESSAGE,
            ParseError::UnsupportedTlv(_) => ErrorCode::UNSUPPORTED_MESSAGE,
        }
    }

    /// The Error TLV that answers this error: for Unsupported Version the value
    /// is the version we support, for Unsupported Message the offending type.
    pub fn to_tlv(&self) -> Tlv {
        let value = match self {
            ParseError::UnsupportedVersion(_) => vec![VERSION],
            ParseError::UnsupportedTlv(t) => vec![*t],
            _ => vec![0],
        };
        Tlv::Error {
            code: self.code(),
            value,
        }
    }
}

/// What [`parse`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole message, and how many bytes of the input it took.
    Done(Message, usize),
    /// Not enough bytes yet: the message needs at least this many in all.
    Incomplete(usize),
}

/// Parses one Convert message at the start of `buf`.
///
/// Returns [`Parsed::Incomplete`] with the number of bytes needed when `buf`
/// is too short (never more than [`MAX_MESSAGE`]), so a reader reads until it
/// has them and never buffers more than that.
pub fn parse(buf: &[u8]) -> Result<Parsed, ParseError> {
    if buf.len() < HEADER_LEN {
        // Check what we have early: a wrong first byte need not wait for more.
        if let Some(&v) = buf.first() {
            if v != VERSION {
                return Err(ParseError::UnsupportedVersion(v));
            }
        }
        return Ok(Parsed::Incomplete(HEADER_LEN));
    }
    // §4.1: Version, Total Length (32-bit words), Magic Number.
    let version = buf[0];
    let total = usize::from(buf[1]) * 4;
    let magic = u16::from_be_bytes([buf[2], buf[3]]);
    if version != VERSION {
        return Err(ParseError::UnsupportedVersion(version));
    }
    if magic != MAGIC {
        return Err(ParseError::BadMagic(magic));
    }
    if total < HEADER_LEN {
        return Err(ParseError::Malformed("Total Length is 0"));
    }
    if buf.len() < total {
        return Ok(Parsed::Incomplete(total));
    }
    let mut tlvs = Vec::new();
    let mut rest = &buf[HEADER_LEN..total];
    while !rest.is_empty() {
        if rest.len() < 2 {
            return Err(ParseError::Malformed("a TLV shorter than its header"));
        }
        let kind = rest[0];
        let len = usize::from(rest[1]) * 4;
        if len == 0 {
            return Err(ParseError::Malformed("a TLV with Length 0"));
        }
        if len > rest.len() {
            return Err(ParseError::Malformed("a TLV runs past Total Length"));
        }
        tlvs.push(parse_tlv(kind, &rest[..len])?);
        rest = &rest[len..];
    }
    Ok(Parsed::Done(Message { tlvs }, total))
}

/// One TLV, `tlv` being exactly its Length x 4 bytes (header included).
fn parse_tlv(kind: u8, tlv: &[u8]) -> Result<Tlv, ParseError> {
    // Every defined TLV has at least a 4-byte first word (Type, Length, 16 bits).
    if tlv.len() < 4 {
        return Err(ParseError::Malformed("a TLV shorter than one word"));
    }
    let body = &tlv[4..];
    Ok(match kind {
        // §4.2.3: Type, Length = 1, Zero (16).
        tlv_type::INFO => Tlv::Info,
        // §4.2.5: Type, Length, Remote Peer Port (16), Remote Peer IP Address
        // (128), TCP Options (variable): at least 5 words.
        tlv_type::CONNECT => {
            if tlv.len() < 20 {
                return Err(ParseError::Malformed("Connect TLV shorter than 5 words"));
            }
            let port = u16::from_be_bytes([tlv[2], tlv[3]]);
            let mut a = [0u8; 16];
            a.copy_from_slice(&tlv[4..20]);
            let v6 = Ipv6Addr::from(a);
            let ip = match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            };
            Tlv::Connect {
                dest: SocketAddr::new(ip, port),
                tcp_options: tlv[20..].to_vec(),
            }
        }
        // §4.2.6: Type, Length, Unassigned (16), returned TCP header.
        tlv_type::EXTENDED_TCP_HEADER => Tlv::ExtendedTcpHeader(body.to_vec()),
        // §4.2.4: Type, Length, Unassigned (16), option kinds (8 bits each).
        tlv_type::SUPPORTED_TCP_EXTENSIONS => {
            // Zero kinds are padding (kind 0 is End of Option List, never "supported").
            Tlv::SupportedTcpExtensions(body.iter().copied().filter(|&k| k != 0).collect())
        }
        // §4.2.7: Type, Length, Zero (16), Opaque Value.
        tlv_type::COOKIE => Tlv::Cookie(body.to_vec()),
        // §4.2.8: Type, Length, Error Code (8), Value (variable).
        tlv_type::ERROR => Tlv::Error {
            code: ErrorCode(tlv[2]),
            value: tlv[3..].to_vec(),
        },
        other => return Err(ParseError::UnsupportedTlv(other)),
    })
}

/// Appends one TLV: `first` are the two bytes after Type and Length, `body`
/// the rest, zero padded to 32 bits. Returns `None` if it would exceed 255 words.
fn put_tlv(out: &mut Vec<u8>, kind: u8, first: [u8; 2], body: &[u8]) -> Option<()> {
    let len = (4 + body.len()).div_ceil(4);
    let words = u8::try_from(len).ok()?;
    out.extend_from_slice(&[kind, words, first[0], first[1]]);
    out.extend_from_slice(body);
    out.resize(out.len() + (len * 4 - 4 - body.len()), 0);
    Some(())
}

/// Why a message could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Convert message longer than 1020 bytes")]
pub struct TooLong;

/// Encodes `msg`: the fixed header (version 1, Total Length, magic) then each
/// TLV, zero padded. Fails if the result would exceed [`MAX_MESSAGE`].
pub fn encode(msg: &Message) -> Result<Vec<u8>, TooLong> {
    let mut out = vec![VERSION, 0, 0, 0];
    out[2..4].copy_from_slice(&MAGIC.to_be_bytes());
    for tlv in &msg.tlvs {
        let ok = match tlv {
            Tlv::Info => put_tlv(&mut out, tlv_type::INFO, [0, 0], &[]),
            Tlv::Connect { dest, tcp_options } => {
                let ip = match dest.ip() {
                    IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                    IpAddr::V6(v6) => v6,
                };
                let mut body = ip.octets().to_vec();
                body.extend_from_slice(tcp_options);
                put_tlv(
                    &mut out,
                    tlv_type::CONNECT,
                    dest.port().to_be_bytes(),
                    &body,
                )
            }
            Tlv::ExtendedTcpHeader(h) => {
                put_tlv(&mut out, tlv_type::EXTENDED_TCP_HEADER, [0, 0], h)
            }
            Tlv::SupportedTcpExtensions(k) => {
                put_tlv(&mut out, tlv_type::SUPPORTED_TCP_EXTENSIONS, [0, 0], k)
            }
            Tlv::Cookie(c) => put_tlv(&mut out, tlv_type::COOKIE, [0, 0], c),
            Tlv::Error { code, value } => {
                // Error Code is the third byte; the Value starts in the fourth.
                let (first, rest) = match value.split_first() {
                    Some((v, rest)) => ([code.0, *v], rest),
                    None => ([code.0, 0], &[][..]),
                };
                put_tlv(&mut out, tlv_type::ERROR, first, rest)
            }
        };
        if ok.is_none() {
            return Err(TooLong);
        }
    }
    if out.len() > MAX_MESSAGE {
        return Err(TooLong);
    }
    out[1] = (out.len() / 4) as u8;
    Ok(out)
}

/// The client's Convert message for `dest` (§4.2.5 Connect TLV, and an Info
/// TLV when `info`, asking for the converter's Supported TCP Extensions).
pub fn connect_request(dest: SocketAddr, info: bool) -> Vec<u8> {
    let mut tlvs = Vec::with_capacity(2);
    if info {
        tlvs.push(Tlv::Info);
    }
    tlvs.push(Tlv::Connect {
        dest,
        tcp_options: Vec::new(),
    });
    // Two small TLVs always fit.
    encode(&Message { tlvs }).unwrap_or_default()
}

/// A message with one Error TLV (one word: code, one value byte).
pub fn error_reply(code: ErrorCode, value: u8) -> Vec<u8> {
    encode(&Message {
        tlvs: vec![Tlv::Error {
            code,
            value: vec![value],
        }],
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_ipv4_fixture() {
        // Header: v1, 6 words, 0x2263; Connect: type 10, 5 words, port 80,
        // ::ffff:198.18.0.1.
        let fixture: &[u8] = &[
            0x01, 0x06, 0x22, 0x63, //
            0x0a, 0x05, 0x00, 0x50, //
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 1,
        ];
        let dest: SocketAddr = "198.18.0.1:80".parse().unwrap();
        assert_eq!(connect_request(dest, false), fixture);
        let Parsed::Done(msg, n) = parse(fixture).unwrap() else {
            panic!("incomplete")
        };
        assert_eq!(n, 24);
        assert_eq!(msg.connect(), Some(dest));
    }

    #[test]
    fn connect_ipv6_with_info_and_trailing_data() {
        let dest: SocketAddr = "[2001:db8::2]:443".parse().unwrap();
        let mut bytes = connect_request(dest, true);
        assert_eq!(&bytes[..8], &[1, 7, 0x22, 0x63, 1, 1, 0, 0]);
        assert_eq!(bytes.len(), 28);
        bytes.extend_from_slice(b"GET /");
        let Parsed::Done(msg, n) = parse(&bytes).unwrap() else {
            panic!("incomplete")
        };
        assert_eq!(n, 28);
        assert_eq!(&bytes[n..], b"GET /");
        assert!(msg.has_info());
        assert_eq!(msg.connect(), Some(dest));
    }

    #[test]
    fn error_fixture() {
        // Error TLV: type 30, 1 word, code 32 Not Authorized, value 0.
        let fixture: &[u8] = &[1, 2, 0x22, 0x63, 0x1e, 1, 32, 0];
        assert_eq!(error_reply(ErrorCode::NOT_AUTHORIZED, 0), fixture);
        let Parsed::Done(msg, _) = parse(fixture).unwrap() else {
            panic!()
        };
        assert_eq!(msg.error(), Some(ErrorCode::NOT_AUTHORIZED));
        assert_eq!(ErrorCode(97).to_string(), "97 (Destination Unreachable)");
    }

    #[test]
    fn supported_extensions_and_cookie_round_trip() {
        let msg = Message {
            tlvs: vec![
                Tlv::SupportedTcpExtensions(vec![2, 4, 8, 30]),
                Tlv::Cookie(vec![9; 6]),
                Tlv::ExtendedTcpHeader(vec![7; 20]),
            ],
        };
        let bytes = encode(&msg).unwrap();
        // 1 + 2 + 3 + 6 words.
        assert_eq!(bytes[1], 12);
        assert_eq!(&bytes[4..12], &[21, 2, 0, 0, 2, 4, 8, 30]);
        let Parsed::Done(back, _) = parse(&bytes).unwrap() else {
            panic!()
        };
        // The cookie keeps its padding (opaque to us).
        assert_eq!(back.tlvs[0], msg.tlvs[0]);
        assert_eq!(back.tlvs[1], Tlv::Cookie(vec![9, 9, 9, 9, 9, 9, 0, 0]));
        assert_eq!(back.tlvs[2], msg.tlvs[2]);
    }

    #[test]
    fn incomplete_and_errors() {
        let full = connect_request("198.18.0.1:80".parse().unwrap(), false);
        for cut in 0..full.len() {
            let want = if cut < 4 { 4 } else { 24 };
            assert_eq!(parse(&full[..cut]), Ok(Parsed::Incomplete(want)), "{cut}");
        }
        assert_eq!(
            parse(&[2, 1, 0x22, 0x63]),
            Err(ParseError::UnsupportedVersion(2))
        );
        assert_eq!(
            parse(&[2]).unwrap_err().code(),
            ErrorCode::UNSUPPORTED_VERSION
        );
        assert_eq!(
            parse(&[1, 1, 0x22, 0x64]),
            Err(ParseError::BadMagic(0x2264))
        );
        assert!(matches!(
            parse(&[1, 0, 0x22, 0x63]),
            Err(ParseError::Malformed(_))
        ));
        // A TLV with Length 0, one running past the end, a short Connect.
        assert!(matches!(
            parse(&[1, 2, 0x22, 0x63, 10, 0, 0, 0]),
            Err(ParseError::Malformed(_))
        ));
        assert!(matches!(
            parse(&[1, 2, 0x22, 0x63, 10, 2, 0, 0]),
            Err(ParseError::Malformed(_))
        ));
        assert!(matches!(
            parse(&[1, 2, 0x22, 0x63, 10, 1, 0, 0]),
            Err(ParseError::Malformed(_))
        ));
        let unknown = parse(&[1, 2, 0x22, 0x63, 99, 1, 0, 0]).unwrap_err();
        assert_eq!(unknown, ParseError::UnsupportedTlv(99));
        assert_eq!(
            unknown.to_tlv(),
            Tlv::Error {
                code: ErrorCode::UNSUPPORTED_MESSAGE,
                value: vec![99]
            }
        );
    }

    #[test]
    fn too_long_is_refused() {
        let msg = Message {
            tlvs: vec![Tlv::Cookie(vec![0; 1100])],
        };
        assert_eq!(encode(&msg), Err(TooLong));
        let msg = Message {
            tlvs: vec![Tlv::Cookie(vec![0; 600]), Tlv::Cookie(vec![0; 600])],
        };
        assert_eq!(encode(&msg), Err(TooLong));
    }
}
