//! Netlink framing, without I/O: requests, replies and errors. The [`Exchange`] state
//! machine is fed received datagrams and says when a request is answered; the socket
//! layer (`crate::socket`, blocking, and `crate::asynk`, tokio) only moves bytes and
//! calls down into this module, never the other way.

use std::fmt::Debug;

use netlink_packet_core::{
    Emitable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_generic::{GenlFamily, GenlMessage};

use super::{nla, DecodeError};
use crate::Error;

/// Length of `struct nlmsghdr`.
pub(crate) const NLMSG_HDR_LEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
/// `NLM_F_CAPPED`: the error message carries only the request's header.
const NLM_F_CAPPED: u16 = 0x100;
/// `NLM_F_ACK_TLVS`: extended ack attributes follow.
const NLM_F_ACK_TLVS: u16 = 0x200;
/// `NLM_F_MULTI`.
#[cfg(test)]
const NLM_F_MULTI: u16 = 0x2;
/// `NLMSGERR_ATTR_MSG`.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// One netlink message inside a datagram.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawMsg<'a> {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    /// The whole message, header included.
    pub whole: &'a [u8],
    /// The payload after the header.
    pub payload: &'a [u8],
}

/// Splits a datagram into netlink messages, checking every length.
pub(crate) fn messages(datagram: &[u8]) -> impl Iterator<Item = Result<RawMsg<'_>, DecodeError>> {
    let mut rest = datagram;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let parsed = (|| {
            let hdr = rest.get(..NLMSG_HDR_LEN).ok_or_else(|| {
                DecodeError::new(format!(
                    "{} bytes left, too short for a netlink header",
                    rest.len()
                ))
            })?;
            let word = |off: usize| {
                u32::from_ne_bytes([hdr[off], hdr[off + 1], hdr[off + 2], hdr[off + 3]])
            };
            let len = usize::try_from(word(0)).unwrap_or(usize::MAX);
            if len < NLMSG_HDR_LEN || len > rest.len() {
                return Err(DecodeError::new(format!(
                    "netlink message claims {len} bytes, {} are left",
                    rest.len()
                )));
            }
            let msg = RawMsg {
                ty: u16::from_ne_bytes([hdr[4], hdr[5]]),
                flags: u16::from_ne_bytes([hdr[6], hdr[7]]),
                seq: word(8),
                whole: &rest[..len],
                payload: &rest[NLMSG_HDR_LEN..len],
            };
            let next = nla::align(len).min(rest.len());
            Ok((msg, &rest[next..]))
        })();
        match parsed {
            Ok((msg, tail)) => {
                rest = tail;
                Some(Ok(msg))
            }
            Err(e) => {
                rest = &[];
                Some(Err(e))
            }
        }
    })
}

/// A negative answer from the kernel: its errno and extended-ack message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Nack {
    pub errno: i32,
    pub message: Option<String>,
}

/// Reads the errno (positive) and the extended ack message of an `NLMSG_ERROR` or
/// `NLMSG_DONE` payload. `errno` 0 is an acknowledgement.
fn parse_status(msg: &RawMsg<'_>) -> Result<Nack, DecodeError> {
    let code = msg
        .payload
        .get(..4)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        // An empty NLMSG_DONE is a plain end of dump.
        .unwrap_or(0);
    let mut message = None;
    if msg.flags & NLM_F_ACK_TLVS != 0 {
        let after_code = msg.payload.get(4..).unwrap_or(&[]);
        let tlvs = if msg.ty == NLMSG_DONE {
            after_code
        } else {
            // The request follows: its header only when capped, else the whole of it.
            let orig_len = if msg.flags & NLM_F_CAPPED != 0 {
                NLMSG_HDR_LEN
            } else {
                after_code
                    .get(..4)
                    .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize)
                    .unwrap_or(0)
                    .max(NLMSG_HDR_LEN)
            };
            after_code.get(nla::align(orig_len)..).unwrap_or(&[])
        };
        for a in nla::attrs(tlvs) {
            let a = a?;
            if a.kind == NLMSGERR_ATTR_MSG {
                message = Some(a.string()).filter(|m| !m.is_empty());
            }
        }
    }
    Ok(Nack {
        errno: code.checked_neg().unwrap_or(i32::MAX),
        message,
    })
}

/// Why an exchange failed.
#[derive(Debug)]
pub(crate) enum Failure {
    Nack(Nack),
    Decode(DecodeError),
    Overrun,
}

impl From<DecodeError> for Failure {
    fn from(e: DecodeError) -> Self {
        Failure::Decode(e)
    }
}

/// The replies to one request, collected from the datagrams fed to it.
#[derive(Debug)]
pub(crate) struct Exchange {
    seq: u32,
    replies: Vec<Vec<u8>>,
}

impl Exchange {
    pub fn new(seq: u32) -> Self {
        Exchange {
            seq,
            replies: Vec::new(),
        }
    }

    /// Takes one received datagram. `Ok(true)`: the answer is complete.
    pub fn feed(&mut self, datagram: &[u8]) -> Result<bool, Failure> {
        for msg in messages(datagram) {
            let msg = msg?;
            if msg.seq != self.seq {
                // A late answer to an earlier, timed-out request.
                continue;
            }
            match msg.ty {
                NLMSG_NOOP => {}
                NLMSG_OVERRUN => return Err(Failure::Overrun),
                NLMSG_ERROR | NLMSG_DONE => {
                    let status = parse_status(&msg)?;
                    if status.errno != 0 {
                        return Err(Failure::Nack(status));
                    }
                    return Ok(true);
                }
                _ => {
                    // A `do` request asked for an ack, which follows its reply; a dump
                    // ends with NLMSG_DONE. Either way, keep reading.
                    self.replies.push(msg.whole.to_vec());
                }
            }
        }
        Ok(false)
    }

    /// The reply messages (whole, headers included).
    pub fn into_replies(self) -> Vec<Vec<u8>> {
        self.replies
    }
}

/// Turns the reply messages of a request into its result.
pub(crate) type Finish<R> = Box<dyn FnOnce(Vec<Vec<u8>>) -> Result<R, Error> + Send>;

/// A request ready to send and what to make of its replies.
pub(crate) struct Op<R> {
    /// What is being done, for error messages ("add endpoint").
    pub name: &'static str,
    /// The whole netlink message; its sequence number is set when sent.
    pub request: Vec<u8>,
    pub finish: Finish<R>,
}

impl<R> Op<R> {
    /// Sets the sequence number in the request's header.
    pub fn set_seq(&mut self, seq: u32) {
        if let Some(field) = self.request.get_mut(8..12) {
            field.copy_from_slice(&seq.to_ne_bytes());
        }
    }
}

/// Serializes a generic netlink request for `family_id`.
pub(crate) fn genl_request<F>(family_id: u16, payload: F, dump: bool) -> Vec<u8>
where
    F: GenlFamily + Emitable + Debug,
{
    let mut genl = GenlMessage::from_payload(payload);
    genl.set_resolved_family_id(family_id);
    let mut header = NetlinkHeader::default();
    header.flags = if dump {
        NLM_F_REQUEST | NLM_F_DUMP
    } else {
        NLM_F_REQUEST | NLM_F_ACK
    };
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(genl));
    msg.finalize();
    let mut buf = vec![0; msg.buffer_len()];
    msg.serialize(&mut buf);
    buf
}

/// Parses a reply message of a generic netlink family into its payload.
pub(crate) fn genl_payload<F>(whole: &[u8]) -> Result<F, Error>
where
    F: netlink_packet_core::ParseableParametrized<[u8], netlink_packet_generic::GenlHeader> + Debug,
{
    let msg = NetlinkMessage::<GenlMessage<F>>::deserialize(whole)
        .map_err(|e| Error::Decode(DecodeError::new(e.to_string())))?;
    match msg.payload {
        NetlinkPayload::InnerMessage(genl) => Ok(genl.payload),
        other => Err(Error::Decode(DecodeError::new(format!(
            "expected a generic netlink message, got {other:?}"
        )))),
    }
}

/// Runs the framing and status parsers on arbitrary bytes; for fuzzing.
pub(crate) fn fuzz_framing(data: &[u8]) {
    {
        let seq = data
            .get(8..12)
            .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or(0);
        let mut ex = Exchange::new(seq);
        let _ = ex.feed(data);
        for reply in ex.into_replies() {
            let _ = genl_payload::<crate::codec::PmMessage>(&reply);
            let _ = genl_payload::<crate::codec::EventMessage>(&reply);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nlmsg(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((NLMSG_HDR_LEN + payload.len()) as u32).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(payload);
        v.resize(nla::align(v.len()), 0);
        v
    }

    #[test]
    fn error_with_extack_message() {
        // -EINVAL, capped request header, then NLMSGERR_ATTR_MSG "limit greater than maximum (8)".
        let mut payload = (-22i32).to_ne_bytes().to_vec();
        payload.extend_from_slice(&nlmsg(0x1c, 5, 7, &[])[..16]);
        let mut w = nla::Writer::new();
        w.bytes(NLMSGERR_ATTR_MSG, b"limit greater than maximum (8)\0");
        payload.extend_from_slice(&w.into_bytes());
        let dgram = nlmsg(NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, 7, &payload);
        let mut ex = Exchange::new(7);
        match ex.feed(&dgram) {
            Err(Failure::Nack(n)) => {
                assert_eq!(n.errno, 22);
                assert_eq!(n.message.as_deref(), Some("limit greater than maximum (8)"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn uncapped_error_skips_the_request() {
        let request = nlmsg(0x1c, 5, 3, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let mut payload = (-17i32).to_ne_bytes().to_vec();
        payload.extend_from_slice(&request);
        let mut w = nla::Writer::new();
        w.bytes(NLMSGERR_ATTR_MSG, b"exists\0");
        payload.extend_from_slice(&w.into_bytes());
        let dgram = nlmsg(NLMSG_ERROR, NLM_F_ACK_TLVS, 3, &payload);
        let Err(Failure::Nack(n)) = Exchange::new(3).feed(&dgram) else {
            panic!("expected a nack")
        };
        assert_eq!((n.errno, n.message.as_deref()), (17, Some("exists")));
    }

    #[test]
    fn replies_then_ack_and_stale_seq() {
        let mut dgram = nlmsg(0x1c, 0, 9, &[1, 2, 0, 0]); // stale
        dgram.extend(nlmsg(0x1c, 0, 10, &[3, 1, 0, 0]));
        dgram.extend(nlmsg(NLMSG_ERROR, NLM_F_CAPPED, 10, &[0; 20]));
        let mut ex = Exchange::new(10);
        assert!(ex.feed(&dgram).unwrap());
        assert_eq!(ex.into_replies().len(), 1);
        // A dump ends with NLMSG_DONE; an empty DONE is fine too.
        let mut ex = Exchange::new(1);
        assert!(!ex
            .feed(&nlmsg(0x1c, NLM_F_MULTI, 1, &[3, 1, 0, 0]))
            .unwrap());
        assert!(ex.feed(&nlmsg(NLMSG_DONE, NLM_F_MULTI, 1, &[])).unwrap());
        // A DONE carrying an error.
        let Err(Failure::Nack(n)) =
            Exchange::new(1).feed(&nlmsg(NLMSG_DONE, 0, 1, &(-1i32).to_ne_bytes()))
        else {
            panic!("expected a nack")
        };
        assert_eq!(n.errno, 1);
        // Bad framing.
        assert!(Exchange::new(1).feed(&[40, 0, 0, 0, 1]).is_err());
    }
}
