//! The bench wire protocol, sans I/O: a 32-byte request from the client, and
//! (for uploads) a 32-byte result from the server. Everything else on the
//! connection is test data.
//!
//! ```text
//! request  = "MPTCPBN1" flags:u32 duration_ms:u32 bytes:u64 reserved:u64   (big-endian)
//! result   = "MPTCPBR1" bytes:u64 elapsed_us:u64 max_gap_us:u32 flags:u32
//! ```
//! Request flags: bit 0 reverse (server sends), bit 1 verify. Result flags:
//! bit 0 verified, bit 1 verification failed.

use std::fmt;
use std::time::Duration;

/// Length of a request and of a result.
pub const MESSAGE_LEN: usize = 32;
const REQUEST_MAGIC: &[u8; 8] = b"MPTCPBN1";
const RESULT_MAGIC: &[u8; 8] = b"MPTCPBR1";
const FLAG_REVERSE: u32 = 1;
const FLAG_VERIFY: u32 = 2;
const RESULT_VERIFIED: u32 = 1;
const RESULT_CORRUPT: u32 = 2;

/// The longest test a server accepts.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

/// What the client asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// The server sends, the client receives.
    pub reverse: bool,
    /// The receiver checks every byte.
    pub verify: bool,
    /// How long the sender sends (`None`: until `bytes`).
    pub duration: Option<Duration>,
    /// How many bytes the sender sends at most (`None`: until `duration`).
    pub bytes: Option<u64>,
}

/// What a receiving server reports at the end of an upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerResult {
    /// Bytes received (and verified, when asked).
    pub bytes: u64,
    /// From the first byte to end of stream.
    pub elapsed: Duration,
    /// The longest wait between two reads that returned data.
    pub max_gap: Duration,
    /// `Some(true)` verified intact, `Some(false)` corrupted, `None` not checked.
    pub verified: Option<bool>,
}

/// A malformed message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtoError(String);

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProtoError {}

impl From<ProtoError> for std::io::Error {
    fn from(e: ProtoError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

impl Request {
    /// The request as sent.
    pub fn encode(&self) -> [u8; MESSAGE_LEN] {
        let mut out = [0u8; MESSAGE_LEN];
        out[..8].copy_from_slice(REQUEST_MAGIC);
        let flags =
            if self.reverse { FLAG_REVERSE } else { 0 } | if self.verify { FLAG_VERIFY } else { 0 };
        out[8..12].copy_from_slice(&flags.to_be_bytes());
        let ms = self
            .duration
            .map_or(0, |d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX));
        out[12..16].copy_from_slice(&ms.to_be_bytes());
        out[16..24].copy_from_slice(&self.bytes.unwrap_or(0).to_be_bytes());
        out
    }

    /// Parses and validates a request: known magic and flags, a bound on the
    /// test (duration or bytes), a duration no longer than [`MAX_DURATION`].
    pub fn decode(b: &[u8; MESSAGE_LEN]) -> Result<Request, ProtoError> {
        if &b[..8] != REQUEST_MAGIC {
            return Err(ProtoError(
                "not an mptcp bench client (bad request magic)".into(),
            ));
        }
        let flags = be_u32(b, 8);
        if flags & !(FLAG_REVERSE | FLAG_VERIFY) != 0 {
            return Err(ProtoError(format!("unknown request flags {flags:#x}")));
        }
        let ms = be_u32(b, 12);
        let bytes = be_u64(b, 16);
        let duration = (ms != 0).then(|| Duration::from_millis(u64::from(ms)));
        if duration.is_none() && bytes == 0 {
            return Err(ProtoError(
                "request sets neither a duration nor a byte count".into(),
            ));
        }
        if duration.is_some_and(|d| d > MAX_DURATION) {
            return Err(ProtoError(format!(
                "requested duration {ms} ms is longer than the {} s limit",
                MAX_DURATION.as_secs()
            )));
        }
        Ok(Request {
            reverse: flags & FLAG_REVERSE != 0,
            verify: flags & FLAG_VERIFY != 0,
            duration,
            bytes: (bytes != 0).then_some(bytes),
        })
    }
}

impl ServerResult {
    /// The result as sent.
    pub fn encode(&self) -> [u8; MESSAGE_LEN] {
        let mut out = [0u8; MESSAGE_LEN];
        out[..8].copy_from_slice(RESULT_MAGIC);
        out[8..16].copy_from_slice(&self.bytes.to_be_bytes());
        let us = u64::try_from(self.elapsed.as_micros()).unwrap_or(u64::MAX);
        out[16..24].copy_from_slice(&us.to_be_bytes());
        let gap = u32::try_from(self.max_gap.as_micros()).unwrap_or(u32::MAX);
        out[24..28].copy_from_slice(&gap.to_be_bytes());
        let flags = match self.verified {
            None => 0,
            Some(true) => RESULT_VERIFIED,
            Some(false) => RESULT_CORRUPT,
        };
        out[28..32].copy_from_slice(&flags.to_be_bytes());
        out
    }

    /// Parses a result.
    pub fn decode(b: &[u8; MESSAGE_LEN]) -> Result<ServerResult, ProtoError> {
        if &b[..8] != RESULT_MAGIC {
            return Err(ProtoError(
                "the peer is not an mptcp bench server (bad result magic)".into(),
            ));
        }
        let flags = be_u32(b, 28);
        let verified = match flags {
            0 => None,
            RESULT_VERIFIED => Some(true),
            RESULT_CORRUPT => Some(false),
            other => return Err(ProtoError(format!("unknown result flags {other:#x}"))),
        };
        Ok(ServerResult {
            bytes: be_u64(b, 8),
            elapsed: Duration::from_micros(be_u64(b, 16)),
            max_gap: Duration::from_micros(u64::from(be_u32(b, 24))),
            verified,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip_and_validation() {
        let r = Request {
            reverse: true,
            verify: true,
            duration: Some(Duration::from_millis(2500)),
            bytes: None,
        };
        assert_eq!(Request::decode(&r.encode()), Ok(r));
        let r = Request {
            reverse: false,
            verify: false,
            duration: None,
            bytes: Some(1 << 40),
        };
        assert_eq!(Request::decode(&r.encode()), Ok(r));

        let mut bad = r.encode();
        bad[0] = b'X';
        assert!(Request::decode(&bad).unwrap_err().0.contains("magic"));
        let unbounded = Request { bytes: None, ..r };
        assert!(Request::decode(&unbounded.encode()).is_err());
        let too_long = Request {
            duration: Some(MAX_DURATION + Duration::from_secs(1)),
            ..r
        };
        assert!(Request::decode(&too_long.encode()).is_err());
        let mut flags = r.encode();
        flags[11] = 0x80;
        assert!(Request::decode(&flags).unwrap_err().0.contains("flags"));
    }

    #[test]
    fn result_round_trip_and_garbage() {
        for verified in [None, Some(true), Some(false)] {
            let r = ServerResult {
                bytes: 123_456_789,
                elapsed: Duration::from_micros(2_000_123),
                max_gap: Duration::from_micros(250_000),
                verified,
            };
            assert_eq!(ServerResult::decode(&r.encode()), Ok(r));
        }
        // An HTTP server's answer, say.
        let mut garbage = [0u8; MESSAGE_LEN];
        garbage[..15].copy_from_slice(b"HTTP/1.1 400 Ba");
        assert!(ServerResult::decode(&garbage).is_err());
        // Every single-byte corruption of a valid message parses or errors,
        // never panics.
        let ok = ServerResult {
            bytes: 1,
            elapsed: Duration::ZERO,
            max_gap: Duration::ZERO,
            verified: None,
        }
        .encode();
        for i in 0..MESSAGE_LEN {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut m = ok;
                m[i] = v;
                let _ = ServerResult::decode(&m);
                let _ = Request::decode(&m);
            }
        }
    }
}
