//! Netlink attributes (TLVs): a checked reader and a small writer.
//!
//! Every read is bounds-checked and returns a [`DecodeError`] instead of panicking, so any
//! byte string can be fed to the parsers built on this.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::DecodeError;

/// Attribute header length (`struct nlattr`).
pub(crate) const HEADER_LEN: usize = 4;
/// `NLA_F_NESTED`.
pub(crate) const F_NESTED: u16 = 1 << 15;
/// `NLA_F_NET_BYTEORDER`.
pub(crate) const F_NET_BYTEORDER: u16 = 1 << 14;
/// Mask of the attribute type without the two flag bits.
pub(crate) const TYPE_MASK: u16 = !(F_NESTED | F_NET_BYTEORDER);

/// Rounds `len` up to the 4-byte netlink alignment, saturating.
pub(crate) fn align(len: usize) -> usize {
    len.saturating_add(3) & !3
}

/// One attribute: its type (flags masked off) and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attr<'a> {
    pub kind: u16,
    pub value: &'a [u8],
}

impl<'a> Attr<'a> {
    fn exact<const N: usize>(&self, what: &'static str) -> Result<[u8; N], DecodeError> {
        self.value.try_into().map_err(|_| {
            DecodeError::new(format!(
                "{what}: attribute {} has {} bytes, expected {N}",
                self.kind,
                self.value.len()
            ))
        })
    }

    pub fn u8(&self, what: &'static str) -> Result<u8, DecodeError> {
        self.exact::<1>(what).map(|b| b[0])
    }

    pub fn u16_ne(&self, what: &'static str) -> Result<u16, DecodeError> {
        self.exact::<2>(what).map(u16::from_ne_bytes)
    }

    pub fn u16_be(&self, what: &'static str) -> Result<u16, DecodeError> {
        self.exact::<2>(what).map(u16::from_be_bytes)
    }

    pub fn u32_ne(&self, what: &'static str) -> Result<u32, DecodeError> {
        self.exact::<4>(what).map(u32::from_ne_bytes)
    }

    pub fn i32_ne(&self, what: &'static str) -> Result<i32, DecodeError> {
        self.exact::<4>(what).map(i32::from_ne_bytes)
    }

    pub fn u64_ne(&self, what: &'static str) -> Result<u64, DecodeError> {
        self.exact::<8>(what).map(u64::from_ne_bytes)
    }

    pub fn ipv4(&self, what: &'static str) -> Result<Ipv4Addr, DecodeError> {
        self.exact::<4>(what).map(Ipv4Addr::from)
    }

    /// An IPv6 address: the first 16 bytes (the event attributes are "at least 16").
    pub fn ipv6(&self, what: &'static str) -> Result<Ipv6Addr, DecodeError> {
        let bytes: [u8; 16] = self
            .value
            .get(..16)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                DecodeError::new(format!(
                    "{what}: IPv6 attribute {} has {} bytes, expected 16",
                    self.kind,
                    self.value.len()
                ))
            })?;
        Ok(Ipv6Addr::from(bytes))
    }

    /// A NUL-terminated (or not) string.
    pub fn string(&self) -> String {
        let end = self
            .value
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.value.len());
        String::from_utf8_lossy(&self.value[..end]).into_owned()
    }
}

/// Iterates over the attributes in `buf`; stops at the first malformed one with an error.
pub(crate) fn attrs(buf: &[u8]) -> Attrs<'_> {
    Attrs { rest: buf }
}

/// Iterator returned by [`attrs`].
pub(crate) struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<Attr<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let parsed = (|| {
            let header: [u8; HEADER_LEN] = self
                .rest
                .get(..HEADER_LEN)
                .and_then(|h| h.try_into().ok())
                .ok_or_else(|| {
                    DecodeError::new(format!(
                        "{} trailing bytes are too short for an attribute header",
                        self.rest.len()
                    ))
                })?;
            let len = usize::from(u16::from_ne_bytes([header[0], header[1]]));
            let kind = u16::from_ne_bytes([header[2], header[3]]) & TYPE_MASK;
            if len < HEADER_LEN || len > self.rest.len() {
                return Err(DecodeError::new(format!(
                    "attribute {kind} claims {len} bytes, {} are left",
                    self.rest.len()
                )));
            }
            let value = &self.rest[HEADER_LEN..len];
            let next = align(len).min(self.rest.len());
            Ok((Attr { kind, value }, &self.rest[next..]))
        })();
        match parsed {
            Ok((attr, rest)) => {
                self.rest = rest;
                Some(Ok(attr))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// Builds a sequence of attributes.
#[derive(Debug, Default, Clone)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub fn bytes(&mut self, kind: u16, value: &[u8]) -> &mut Self {
        // Attribute values built here are at most a few dozen bytes; a longer one would be
        // a bug, which the cap turns into a kernel-side EINVAL rather than a panic.
        let len = u16::try_from(HEADER_LEN + value.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.pad();
        self
    }

    pub fn u8(&mut self, kind: u16, v: u8) -> &mut Self {
        self.bytes(kind, &[v])
    }

    pub fn u16_ne(&mut self, kind: u16, v: u16) -> &mut Self {
        self.bytes(kind, &v.to_ne_bytes())
    }

    pub fn u32_ne(&mut self, kind: u16, v: u32) -> &mut Self {
        self.bytes(kind, &v.to_ne_bytes())
    }

    pub fn i32_ne(&mut self, kind: u16, v: i32) -> &mut Self {
        self.bytes(kind, &v.to_ne_bytes())
    }

    /// A nested attribute whose value is written by `f`.
    pub fn nested(&mut self, kind: u16, f: impl FnOnce(&mut Writer)) -> &mut Self {
        let mut inner = Writer::new();
        f(&mut inner);
        self.bytes(kind | F_NESTED, &inner.buf)
    }

    fn pad(&mut self) {
        let padded = align(self.buf.len());
        self.buf.resize(padded, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_back() {
        let mut w = Writer::new();
        w.u8(1, 7).u32_ne(2, 0xdead_beef).nested(3, |w| {
            w.u16_ne(1, 2);
        });
        let bytes = w.into_bytes();
        assert_eq!(bytes.len(), 8 + 8 + 12);
        let got: Vec<_> = attrs(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].u8("t").unwrap(), 7);
        assert_eq!(got[1].u32_ne("t").unwrap(), 0xdead_beef);
        assert_eq!(got[2].kind, 3);
        let inner: Vec<_> = attrs(got[2].value).collect::<Result<_, _>>().unwrap();
        assert_eq!(inner[0].u16_ne("t").unwrap(), 2);
    }

    #[test]
    fn rejects_bad_lengths() {
        // Claims 8 bytes, has 6.
        let bad = [8u8, 0, 1, 0, 0, 0];
        assert!(attrs(&bad).next().unwrap().is_err());
        // Length below the header size.
        let bad = [2u8, 0, 1, 0];
        assert!(attrs(&bad).next().unwrap().is_err());
        // Short trailing bytes.
        assert!(attrs(&[1u8, 2]).next().unwrap().is_err());
        // Last attribute without its padding is fine.
        let ok = [5u8, 0, 1, 0, 9];
        assert_eq!(attrs(&ok).next().unwrap().unwrap().value, &[9]);
    }
}
