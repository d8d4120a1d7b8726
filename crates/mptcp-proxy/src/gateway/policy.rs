//! The converter's policy: who may use it, and where it may connect. Pure
//! functions over addresses; the converter asks before dialing.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

/// What a converter serves.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Client networks allowed to use the converter (never empty: it is not an open proxy).
    pub allow: Vec<IpNet>,
    /// Allow destinations in private and other not-globally-reachable ranges.
    pub allow_private_destinations: bool,
    /// The converter host's own addresses: never a destination (no loops back in).
    pub own: Vec<IpAddr>,
}

/// Why a destination is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Unspecified (0.0.0.0, ::), port 0 or broadcast.
    Unspecified,
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// One of the converter's own addresses.
    Own,
    /// A private or not globally reachable range (without `--allow-private-destinations`).
    Private,
}

impl Refusal {
    /// A short name for logs and records.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unspecified => "unspecified destination",
            Refusal::Loopback => "loopback destination",
            Refusal::LinkLocal => "link-local destination",
            Refusal::Multicast => "multicast destination",
            Refusal::Own => "the converter's own address",
            Refusal::Private => "private destination",
        }
    }
}

/// An IPv4-mapped IPv6 address as IPv4, others as they are.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Ranges that are not globally reachable (RFC 6890 and its IANA registries):
/// private (RFC 1918), shared (RFC 6598), benchmarking (RFC 2544), documentation,
/// "this network", reserved; IPv6 unique local, documentation, discard.
fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_private()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || (o[0] == 192 && o[1] == 0 && (o[2] == 0 || o[2] == 2))
                || (o[0] == 198 && o[1] == 51 && o[2] == 100)
                || (o[0] == 203 && o[1] == 0 && o[2] == 113)
                || o[0] >= 240
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            (s[0] & 0xfe00) == 0xfc00
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0)
        }
    }
}

impl Policy {
    /// Whether `client` may use the converter.
    pub fn client_allowed(&self, client: IpAddr) -> bool {
        let c = canonical(client);
        self.allow.iter().any(|n| n.contains(&c))
    }

    /// Whether the converter may connect to `dest`.
    pub fn check_destination(&self, dest: IpAddr, port: u16) -> Result<(), Refusal> {
        let d = canonical(dest);
        if d.is_unspecified() || port == 0 || d == IpAddr::V4(Ipv4Addr::BROADCAST) {
            return Err(Refusal::Unspecified);
        }
        if d.is_loopback() {
            return Err(Refusal::Loopback);
        }
        if d.is_multicast() {
            return Err(Refusal::Multicast);
        }
        let link_local = match d {
            IpAddr::V4(a) => a.is_link_local(),
            IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
        };
        if link_local {
            return Err(Refusal::LinkLocal);
        }
        if self.own.iter().any(|&o| canonical(o) == d) {
            return Err(Refusal::Own);
        }
        if !self.allow_private_destinations && private(d) {
            return Err(Refusal::Private);
        }
        Ok(())
    }
}

/// The host's addresses (`getifaddrs`), for [`Policy::own`].
pub fn own_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for ifa in addrs {
            let Some(a) = ifa.address else { continue };
            if let Some(v4) = a.as_sockaddr_in() {
                out.push(IpAddr::V4(v4.ip()));
            } else if let Some(v6) = a.as_sockaddr_in6() {
                out.push(IpAddr::V6(v6.ip()));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(private: bool) -> Policy {
        Policy {
            allow: vec![
                "198.18.0.0/24".parse().unwrap(),
                "2001:db8:1::/48".parse().unwrap(),
            ],
            allow_private_destinations: private,
            own: vec!["203.0.113.7".parse().unwrap()],
        }
    }

    #[test]
    fn clients() {
        let p = policy(false);
        assert!(p.client_allowed("198.18.0.9".parse().unwrap()));
        assert!(p.client_allowed("::ffff:198.18.0.9".parse().unwrap()));
        assert!(p.client_allowed("2001:db8:1::5".parse().unwrap()));
        assert!(!p.client_allowed("198.18.1.9".parse().unwrap()));
        assert!(!p.client_allowed("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn destinations() {
        let p = policy(false);
        let check = |s: &str| p.check_destination(s.parse().unwrap(), 80);
        assert_eq!(check("127.0.0.1"), Err(Refusal::Loopback));
        assert_eq!(check("::ffff:127.0.0.1"), Err(Refusal::Loopback));
        assert_eq!(check("::1"), Err(Refusal::Loopback));
        assert_eq!(check("169.254.1.1"), Err(Refusal::LinkLocal));
        assert_eq!(check("fe80::1"), Err(Refusal::LinkLocal));
        assert_eq!(check("224.0.0.1"), Err(Refusal::Multicast));
        assert_eq!(check("ff02::1"), Err(Refusal::Multicast));
        assert_eq!(check("0.0.0.0"), Err(Refusal::Unspecified));
        assert_eq!(check("203.0.113.7"), Err(Refusal::Own));
        assert_eq!(check("10.1.2.3"), Err(Refusal::Private));
        assert_eq!(check("192.168.1.1"), Err(Refusal::Private));
        assert_eq!(check("100.64.0.1"), Err(Refusal::Private));
        assert_eq!(check("198.18.0.1"), Err(Refusal::Private));
        assert_eq!(check("fd00::1"), Err(Refusal::Private));
        assert_eq!(check("2001:db8::1"), Err(Refusal::Private));
        assert_eq!(check("8.8.8.8"), Ok(()));
        assert_eq!(check("2a00:1450::1"), Ok(()));
        assert_eq!(
            p.check_destination("8.8.8.8".parse().unwrap(), 0),
            Err(Refusal::Unspecified)
        );
        let p = policy(true);
        assert_eq!(
            p.check_destination("198.18.0.1".parse().unwrap(), 80),
            Ok(())
        );
        // Loopback and own addresses stay refused even then.
        assert_eq!(
            p.check_destination("127.0.0.1".parse().unwrap(), 80),
            Err(Refusal::Loopback)
        );
        assert_eq!(
            p.check_destination("203.0.113.7".parse().unwrap(), 80),
            Err(Refusal::Own)
        );
    }
}
