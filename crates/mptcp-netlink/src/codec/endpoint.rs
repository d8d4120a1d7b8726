//! Endpoints (the kernel's `mptcp_pm_addr_entry`), their flags, and the limits.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::{BitOr, BitOrAssign};
use std::str::FromStr;

use super::nla::{attrs, Writer};
use super::{addr, DecodeError, AF_INET, AF_INET6};
use crate::Error;

/// The highest value of each limit (`MPTCP_PM_ADDR_MAX`); also the most endpoints a
/// namespace may have.
pub const MAX_LIMIT: u32 = 8;

/// The flags of an endpoint (`MPTCP_PM_ADDR_FLAG_*`).
///
/// A set of bits like the `bitflags` crate's, that keeps bits it does not know: a newer
/// kernel's flag read here is shown as hexadecimal by [`Display`](fmt::Display) and
/// survives a round trip, but [`PathManager::add_endpoint`](crate::PathManager::add_endpoint)
/// refuses to send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EndpointFlags(u32);

impl EndpointFlags {
    /// `signal`: announce this address to peers (ADD_ADDR); servers use it.
    pub const SIGNAL: EndpointFlags = EndpointFlags(1 << 0);
    /// `subflow`: open extra subflows from this address; clients use it.
    pub const SUBFLOW: EndpointFlags = EndpointFlags(1 << 1);
    /// `backup`: subflows from this address are only used when others fail.
    pub const BACKUP: EndpointFlags = EndpointFlags(1 << 2);
    /// `fullmesh`: open a subflow from this address to every known peer address.
    pub const FULLMESH: EndpointFlags = EndpointFlags(1 << 3);
    /// `implicit`: created by the kernel for an address a subflow used without an
    /// endpoint. Never set by users.
    pub const IMPLICIT: EndpointFlags = EndpointFlags(1 << 4);
    /// `laminar` (Linux 6.18): use this address for subflows towards addresses the peer
    /// announces.
    pub const LAMINAR: EndpointFlags = EndpointFlags(1 << 5);

    const NAMED: [(EndpointFlags, &'static str); 6] = [
        (Self::SIGNAL, "signal"),
        (Self::SUBFLOW, "subflow"),
        (Self::BACKUP, "backup"),
        (Self::FULLMESH, "fullmesh"),
        (Self::IMPLICIT, "implicit"),
        (Self::LAMINAR, "laminar"),
    ];
    const KNOWN: u32 = 0b11_1111;

    /// No flag.
    pub const fn empty() -> Self {
        EndpointFlags(0)
    }

    /// The flags of `bits`, unknown bits included.
    pub const fn from_bits_retain(bits: u32) -> Self {
        EndpointFlags(bits)
    }

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: EndpointFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag of `other` is set.
    pub const fn intersects(self, other: EndpointFlags) -> bool {
        self.0 & other.0 != 0
    }

    /// No bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The bits this crate has no name for.
    pub const fn unknown_bits(self) -> u32 {
        self.0 & !Self::KNOWN
    }

    /// Sets the flags of `other`.
    pub fn insert(&mut self, other: EndpointFlags) {
        self.0 |= other.0;
    }

    /// Clears the flags of `other`.
    pub fn remove(&mut self, other: EndpointFlags) {
        self.0 &= !other.0;
    }

    /// The names of the set flags, in bit order (unknown bits are not named).
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMED
            .into_iter()
            .filter(move |(f, _)| self.contains(*f))
            .map(|(_, n)| n)
    }
}

impl BitOr for EndpointFlags {
    type Output = EndpointFlags;
    fn bitor(self, rhs: Self) -> Self {
        EndpointFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for EndpointFlags {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

/// The set flags' names separated by spaces, as `ip mptcp endpoint show` prints them,
/// then any unknown bits in hexadecimal (`signal backup 0x40`). Empty flags print nothing.
impl fmt::Display for EndpointFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        for name in self.names() {
            write!(f, "{sep}{name}")?;
            sep = " ";
        }
        if self.unknown_bits() != 0 {
            f.write_str(sep)?;
            super::fmt_hex(f, self.unknown_bits())?;
        }
        Ok(())
    }
}

/// Parses flag names separated by spaces, commas or `|` (`"signal,backup"`), case
/// insensitive; hexadecimal (`0x40`) gives raw bits. An unknown name is an
/// [`Error::Invalid`] that lists the known ones.
impl FromStr for EndpointFlags {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let mut flags = EndpointFlags::empty();
        for word in s
            .split(|c: char| c.is_whitespace() || c == ',' || c == '|')
            .filter(|w| !w.is_empty())
        {
            let lower = word.to_ascii_lowercase();
            if let Some(hex) = lower.strip_prefix("0x") {
                let bits = u32::from_str_radix(hex, 16).map_err(|_| {
                    Error::Invalid(format!("bad hexadecimal endpoint flags {word:?}"))
                })?;
                flags.0 |= bits;
                continue;
            }
            match Self::NAMED.iter().find(|(_, n)| *n == lower) {
                Some((f, _)) => flags |= *f,
                None => {
                    return Err(Error::Invalid(format!(
                        "unknown endpoint flag {word:?}: expected signal, subflow, backup, \
                         fullmesh, laminar (or implicit, which only the kernel sets)"
                    )))
                }
            }
        }
        Ok(flags)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for EndpointFlags {
    /// A list of names, unknown bits as one hexadecimal string: `["signal", "0x40"]`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let unknown = self.unknown_bits();
        let mut seq = s.serialize_seq(None)?;
        for name in self.names() {
            seq.serialize_element(name)?;
        }
        if unknown != 0 {
            seq.serialize_element(&format!("{unknown:#x}"))?;
        }
        seq.end()
    }
}

/// The raw contents of an address nest (`MPTCP_PM_ATTR_ADDR`, `MPTCP_PM_ATTR_ADDR_REMOTE`):
/// every attribute optional, as on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressAttrs {
    /// `MPTCP_PM_ADDR_ATTR_FAMILY` (`AF_INET` 2, `AF_INET6` 10).
    pub family: Option<u16>,
    /// `MPTCP_PM_ADDR_ATTR_ID`.
    pub id: Option<u8>,
    /// `MPTCP_PM_ADDR_ATTR_ADDR4` or `_ADDR6`.
    pub addr: Option<IpAddr>,
    /// `MPTCP_PM_ADDR_ATTR_PORT` (host order on the wire).
    pub port: Option<u16>,
    /// `MPTCP_PM_ADDR_ATTR_FLAGS`.
    pub flags: Option<u32>,
    /// `MPTCP_PM_ADDR_ATTR_IF_IDX`.
    pub ifindex: Option<i32>,
}

impl AddressAttrs {
    /// Attributes for `ip` with its family set.
    pub fn from_ip(ip: IpAddr) -> Self {
        AddressAttrs {
            family: Some(family_of(ip)),
            addr: Some(ip),
            ..Self::default()
        }
    }

    /// Parses the value of an address nest. Unknown attributes are skipped.
    pub fn parse(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut a = AddressAttrs::default();
        for attr in attrs(bytes) {
            let attr = attr?;
            match attr.kind {
                addr::FAMILY => a.family = Some(attr.u16_ne("address family")?),
                addr::ID => a.id = Some(attr.u8("address id")?),
                addr::ADDR4 => a.addr = Some(IpAddr::V4(attr.ipv4("IPv4 address")?)),
                addr::ADDR6 => {
                    if attr.value.len() != 16 {
                        return Err(DecodeError::new(format!(
                            "IPv6 address attribute has {} bytes, expected 16",
                            attr.value.len()
                        )));
                    }
                    a.addr = Some(IpAddr::V6(attr.ipv6("IPv6 address")?))
                }
                addr::PORT => a.port = Some(attr.u16_ne("address port")?),
                addr::FLAGS => a.flags = Some(attr.u32_ne("address flags")?),
                addr::IF_IDX => a.ifindex = Some(attr.i32_ne("address ifindex")?),
                _ => {}
            }
        }
        Ok(a)
    }

    /// Writes the attributes that are set, in the kernel's order.
    pub(crate) fn write(&self, w: &mut Writer) {
        if let Some(family) = self.family {
            w.u16_ne(addr::FAMILY, family);
        }
        if let Some(id) = self.id {
            w.u8(addr::ID, id);
        }
        match self.addr {
            Some(IpAddr::V4(ip)) => {
                w.bytes(addr::ADDR4, &ip.octets());
            }
            Some(IpAddr::V6(ip)) => {
                w.bytes(addr::ADDR6, &ip.octets());
            }
            None => {}
        }
        if let Some(port) = self.port {
            w.u16_ne(addr::PORT, port);
        }
        if let Some(flags) = self.flags {
            w.u32_ne(addr::FLAGS, flags);
        }
        if let Some(ifindex) = self.ifindex {
            w.i32_ne(addr::IF_IDX, ifindex);
        }
    }

    /// The nest's value bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_bytes()
    }
}

pub(crate) fn family_of(ip: IpAddr) -> u16 {
    match ip {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

/// An endpoint of the in-kernel path manager, as the kernel reports it
/// (`ip mptcp endpoint show`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Endpoint {
    /// The endpoint id (1-255); the kernel picks one unless it was given.
    pub id: u8,
    /// The local address.
    pub address: IpAddr,
    /// The port, for `signal` endpoints that have one (the kernel listens on it).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub port: Option<u16>,
    /// The flags.
    pub flags: EndpointFlags,
    /// The interface index subflows from this address are bound to, if any.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub ifindex: Option<u32>,
    /// The name of that interface, when it could be resolved in the path manager's
    /// network namespace.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub interface: Option<String>,
}

impl TryFrom<&AddressAttrs> for Endpoint {
    type Error = DecodeError;

    fn try_from(a: &AddressAttrs) -> Result<Self, DecodeError> {
        let id =
            a.id.ok_or_else(|| DecodeError::new("endpoint without an id attribute"))?;
        let address = a
            .addr
            .ok_or_else(|| DecodeError::new(format!("endpoint {id} without an address")))?;
        if let Some(family) = a.family {
            if family != family_of(address) {
                return Err(DecodeError::new(format!(
                    "endpoint {id}: family {family} does not match address {address}"
                )));
            }
        }
        Ok(Endpoint {
            id,
            address,
            port: a.port.filter(|&p| p != 0),
            flags: EndpointFlags(a.flags.unwrap_or(0)),
            ifindex: a
                .ifindex
                .and_then(|i| u32::try_from(i).ok())
                .filter(|&i| i != 0),
            interface: None,
        })
    }
}

/// Like `ip mptcp endpoint show`: `198.18.0.1 port 1234 id 5 signal backup dev eth0`.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.address)?;
        if let Some(port) = self.port {
            write!(f, " port {port}")?;
        }
        write!(f, " id {}", self.id)?;
        if !self.flags.is_empty() {
            write!(f, " {}", self.flags)?;
        }
        match (&self.interface, self.ifindex) {
            (Some(name), _) => write!(f, " dev {name}")?,
            (None, Some(index)) => write!(f, " dev #{index}")?,
            (None, None) => {}
        }
        Ok(())
    }
}

/// An interface, by index or by name (resolved in the path manager's namespace).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum InterfaceRef {
    /// An interface index.
    Index(u32),
    /// An interface name such as `eth0`.
    Name(String),
}

impl From<u32> for InterfaceRef {
    fn from(index: u32) -> Self {
        InterfaceRef::Index(index)
    }
}

impl From<&str> for InterfaceRef {
    fn from(name: &str) -> Self {
        InterfaceRef::Name(name.to_string())
    }
}

impl From<String> for InterfaceRef {
    fn from(name: String) -> Self {
        InterfaceRef::Name(name)
    }
}

/// An endpoint to add ([`PathManager::add_endpoint`](crate::PathManager::add_endpoint)),
/// the arguments of `ip mptcp endpoint add`.
///
/// ```
/// use mptcp_netlink::{EndpointFlags, NewEndpoint};
///
/// let ep = NewEndpoint::new("198.18.1.1".parse()?)
///     .flags(EndpointFlags::SIGNAL)
///     .port(5202)
///     .id(3);
/// ep.validate()?;
/// // A port needs `signal`: refused before anything is sent.
/// assert!(NewEndpoint::new("198.18.1.1".parse()?).flags(EndpointFlags::SUBFLOW).port(1).validate().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEndpoint {
    /// The local address.
    pub address: IpAddr,
    /// The id to use (1-255), or `None` for the kernel's choice.
    pub id: Option<u8>,
    /// A port (only with `signal`, without `subflow`).
    pub port: Option<u16>,
    /// The flags.
    pub flags: EndpointFlags,
    /// An interface to bind subflows from this address to.
    pub interface: Option<InterfaceRef>,
}

impl NewEndpoint {
    /// An endpoint for `address` with no flag (add flags with [`flags`](Self::flags)).
    pub fn new(address: IpAddr) -> Self {
        NewEndpoint {
            address,
            id: None,
            port: None,
            flags: EndpointFlags::empty(),
            interface: None,
        }
    }

    /// Asks for this id (1-255).
    pub fn id(mut self, id: u8) -> Self {
        self.id = Some(id);
        self
    }

    /// Sets a port (needs `signal`).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Sets the flags.
    pub fn flags(mut self, flags: EndpointFlags) -> Self {
        self.flags = flags;
        self
    }

    /// Binds subflows from this address to an interface, by name or index.
    pub fn interface(mut self, interface: impl Into<InterfaceRef>) -> Self {
        self.interface = Some(interface.into());
        self
    }

    /// Checks what the kernel would refuse, with a message that says why.
    ///
    /// # Errors
    /// [`Error::Invalid`] for id 0, port 0, a port without `signal` or with `subflow`,
    /// `signal` with `fullmesh`, the kernel-only `implicit` flag, unknown flag bits, an
    /// unspecified or multicast address, or a bad interface name.
    pub fn validate(&self) -> Result<(), Error> {
        let flags = self.flags;
        if self.id == Some(0) {
            return Err(Error::Invalid(
                "endpoint id 0 is reserved for a connection's initial address: use 1-255, \
                 or no id to let the kernel choose"
                    .into(),
            ));
        }
        if flags.unknown_bits() != 0 {
            return Err(Error::Invalid(format!(
                "unknown endpoint flag bits {:#x}: known flags are signal, subflow, backup, \
                 fullmesh, laminar",
                flags.unknown_bits()
            )));
        }
        if flags.contains(EndpointFlags::IMPLICIT) {
            return Err(Error::Invalid(
                "the implicit flag is set by the kernel only; add the endpoint without it".into(),
            ));
        }
        if flags.contains(EndpointFlags::SIGNAL | EndpointFlags::FULLMESH) {
            return Err(Error::Invalid(
                "signal and fullmesh cannot be combined: use fullmesh with subflow".into(),
            ));
        }
        match self.port {
            Some(0) => {
                return Err(Error::Invalid(
                    "port 0 is not a port: leave the port unset".into(),
                ))
            }
            Some(port) if !flags.contains(EndpointFlags::SIGNAL) => {
                return Err(Error::Invalid(format!(
                    "port {port} needs the signal flag (the kernel listens on it for joins)"
                )))
            }
            Some(port) if flags.contains(EndpointFlags::SUBFLOW) => {
                return Err(Error::Invalid(format!(
                    "port {port} cannot be used with the subflow flag: only signal endpoints \
                     have a port"
                )))
            }
            _ => {}
        }
        if self.address.is_unspecified() || self.address.is_multicast() {
            return Err(Error::Invalid(format!(
                "{} cannot be an endpoint: give a unicast address of this host",
                self.address
            )));
        }
        match &self.interface {
            Some(InterfaceRef::Name(name))
                if name.is_empty() || name.len() > 15 || name.contains(['/', '\0']) =>
            {
                return Err(Error::Invalid(format!(
                    "{name:?} is not an interface name (1-15 bytes, no '/')"
                )))
            }
            Some(InterfaceRef::Index(index)) if i32::try_from(*index).is_err() || *index == 0 => {
                return Err(Error::Invalid(format!("{index} is not an interface index")))
            }
            _ => {}
        }
        Ok(())
    }

    /// The address nest of an ADD_ADDR request, with the interface already resolved.
    pub fn to_attrs(&self, ifindex: Option<u32>) -> AddressAttrs {
        AddressAttrs {
            family: Some(family_of(self.address)),
            id: self.id,
            addr: Some(self.address),
            port: self.port,
            flags: Some(self.flags.bits()),
            ifindex: ifindex.and_then(|i| i32::try_from(i).ok()),
        }
    }
}

/// A subflow to open with the userspace path manager
/// ([`PathManager::open_subflow`](crate::PathManager::open_subflow)).
///
/// ```
/// use mptcp_netlink::NewSubflow;
///
/// let sub = NewSubflow::new(2, "198.18.1.1:0".parse()?, "198.18.0.2:443".parse()?)
///     .interface(3)
///     .backup(true);
/// assert!(sub.backup);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubflow {
    /// The local address id (1-255) the connection knows the local address by.
    pub local_id: u8,
    /// The local address (port 0: any).
    pub local: SocketAddr,
    /// The peer's address and port.
    pub remote: SocketAddr,
    /// An interface index to bind the subflow to.
    pub interface: Option<u32>,
    /// Open it as a backup subflow (the MP_JOIN carries the backup bit).
    pub backup: bool,
}

impl NewSubflow {
    /// A subflow from `local` (id `local_id`) to `remote`, not bound, not backup.
    pub fn new(local_id: u8, local: SocketAddr, remote: SocketAddr) -> Self {
        NewSubflow {
            local_id,
            local,
            remote,
            interface: None,
            backup: false,
        }
    }

    /// Binds it to interface `index`.
    pub fn interface(mut self, index: u32) -> Self {
        self.interface = Some(index);
        self
    }

    /// Opens it as a backup subflow, or not.
    pub fn backup(mut self, backup: bool) -> Self {
        self.backup = backup;
        self
    }
}

/// The in-kernel path manager's limits, per network namespace
/// (`ip mptcp limits show`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Limits {
    /// Most extra subflows per connection (default 2, at most [`MAX_LIMIT`]).
    pub subflows: u32,
    /// Most ADD_ADDR announcements accepted per connection (default 0, at most
    /// [`MAX_LIMIT`]).
    pub add_addr_accepted: u32,
}

impl Limits {
    /// Checks both values against [`MAX_LIMIT`].
    ///
    /// # Errors
    /// [`Error::Invalid`] for a value above the maximum.
    pub fn validate(&self) -> Result<(), Error> {
        for (name, v) in [
            ("subflows", self.subflows),
            ("add_addr_accepted", self.add_addr_accepted),
        ] {
            if v > MAX_LIMIT {
                return Err(Error::Invalid(format!(
                    "limit {name} {v} is above the kernel's maximum of {MAX_LIMIT}"
                )));
            }
        }
        Ok(())
    }
}

/// Like `ip mptcp limits show`: `add_addr_accepted 0 subflows 2`.
impl fmt::Display for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "add_addr_accepted {} subflows {}",
            self.add_addr_accepted, self.subflows
        )
    }
}

/// Checks that `ip` could be a subflow's local or remote address.
pub(crate) fn check_unicast(what: &str, ip: IpAddr) -> Result<(), Error> {
    let bad = match ip {
        IpAddr::V4(v4) => v4 == Ipv4Addr::UNSPECIFIED || v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => v6 == Ipv6Addr::UNSPECIFIED || v6.is_multicast(),
    };
    if bad {
        return Err(Error::Invalid(format!(
            "{what} {ip} is not a unicast address"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_display_and_parse() {
        let f = EndpointFlags::SIGNAL | EndpointFlags::BACKUP;
        assert_eq!(f.to_string(), "signal backup");
        assert_eq!("signal,backup".parse::<EndpointFlags>().unwrap(), f);
        assert_eq!("Signal | BACKUP".parse::<EndpointFlags>().unwrap(), f);
        let unknown = EndpointFlags::from_bits_retain(0x41);
        assert_eq!(unknown.to_string(), "signal 0x40");
        assert_eq!(
            unknown.to_string().parse::<EndpointFlags>().unwrap(),
            unknown
        );
        assert_eq!(EndpointFlags::empty().to_string(), "");
        let err = "signal bogus".parse::<EndpointFlags>().unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
        assert_eq!(
            (EndpointFlags::IMPLICIT | EndpointFlags::LAMINAR).to_string(),
            "implicit laminar"
        );
    }

    #[test]
    fn validation() {
        let ip: IpAddr = "198.18.0.1".parse().unwrap();
        let ok = NewEndpoint::new(ip)
            .flags(EndpointFlags::SIGNAL)
            .port(80)
            .id(1);
        ok.validate().unwrap();
        let cases = [
            (NewEndpoint::new(ip).id(0), "id 0"),
            (
                NewEndpoint::new(ip).flags(EndpointFlags::SUBFLOW).port(5),
                "signal",
            ),
            (
                NewEndpoint::new(ip)
                    .flags(EndpointFlags::SIGNAL | EndpointFlags::SUBFLOW)
                    .port(5),
                "subflow",
            ),
            (
                NewEndpoint::new(ip).flags(EndpointFlags::SIGNAL).port(0),
                "port 0",
            ),
            (
                NewEndpoint::new(ip).flags(EndpointFlags::from_bits_retain(0x80)),
                "0x80",
            ),
            (
                NewEndpoint::new(ip).flags(EndpointFlags::IMPLICIT),
                "implicit",
            ),
            (
                NewEndpoint::new(ip).flags(EndpointFlags::SIGNAL | EndpointFlags::FULLMESH),
                "fullmesh",
            ),
            (NewEndpoint::new("0.0.0.0".parse().unwrap()), "unicast"),
            (NewEndpoint::new(ip).interface("a/b"), "interface name"),
            (NewEndpoint::new(ip).interface(0), "interface index"),
        ];
        for (ep, needle) in cases {
            let err = ep.validate().expect_err(needle);
            assert!(matches!(err, Error::Invalid(_)));
            assert!(err.to_string().contains(needle), "{err} lacks {needle}");
        }
        assert!(Limits {
            subflows: 9,
            add_addr_accepted: 0
        }
        .validate()
        .is_err());
        assert!(Limits {
            subflows: 8,
            add_addr_accepted: 8
        }
        .validate()
        .is_ok());
    }

    #[test]
    fn address_nest_fixture() {
        // family AF_INET, id 5, 198.18.0.1, port 1234 (host order), flags signal, ifindex 1
        let fixture: [u8; 48] = [
            6, 0, 1, 0, 2, 0, 0, 0, // family 2
            5, 0, 2, 0, 5, 0, 0, 0, // id 5
            8, 0, 3, 0, 198, 18, 0, 1, // addr4
            6, 0, 5, 0, 0xd2, 0x04, 0, 0, // port 1234
            8, 0, 6, 0, 1, 0, 0, 0, // flags
            8, 0, 7, 0, 1, 0, 0, 0, // ifindex 1
        ];
        let a = AddressAttrs::parse(&fixture).unwrap();
        let ep = Endpoint::try_from(&a).unwrap();
        assert_eq!(ep.to_string(), "198.18.0.1 port 1234 id 5 signal dev #1");
        assert_eq!(a.to_bytes(), fixture);
        let ep6 = AddressAttrs::from_ip("2001:db8::1".parse().unwrap());
        let bytes = ep6.to_bytes();
        assert_eq!(bytes.len(), 8 + 20);
        assert_eq!(AddressAttrs::parse(&bytes).unwrap(), ep6);
        // A family that contradicts the address is refused.
        let mut bad = a.clone();
        bad.family = Some(AF_INET6);
        assert!(Endpoint::try_from(&bad).is_err());
    }
}
