//! Which [`Connection`]s to keep from a listing: the predicate behind `mptcp conns
//! --port/--local/--remote/--state/--fallback/--token/--min-subflows`.
//!
//! It lives next to [`connections`](crate::connections) because it is a question
//! about a connection the kernel listed, asked the same way by every program (the
//! CLI, an exporter, a test); nothing in it prints. Addresses and ports match the
//! connection's own or any of its subflows', so a local address finds the
//! connections that have a subflow from it.

use std::net::{IpAddr, SocketAddr};

use mptcp_net::TcpState;

use crate::Connection;

/// An address to match, with or without a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrFilter {
    /// The address.
    pub ip: IpAddr,
    /// The port, when given.
    pub port: Option<u16>,
}

impl AddrFilter {
    /// `ADDR`, `ADDR:PORT`, `IPV6` or `[IPV6]:PORT`; the error says what is expected
    /// (usable as a clap value parser).
    pub fn parse(s: &str) -> Result<AddrFilter, String> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(AddrFilter { ip, port: None });
        }
        match s.parse::<SocketAddr>() {
            Ok(a) if a.port() != 0 => Ok(AddrFilter {
                ip: a.ip(),
                port: Some(a.port()),
            }),
            Ok(_) => Err("the port must be 1-65535".into()),
            Err(_) => Err(
                "expected ADDR or ADDR:PORT, e.g. 198.18.0.1, 198.18.0.1:5201, [2001:db8::1]:5201"
                    .into(),
            ),
        }
    }

    /// Whether `a` is this address (and port, when one was given).
    pub fn matches(&self, a: &SocketAddr) -> bool {
        a.ip() == self.ip && self.port.is_none_or(|p| p == a.port())
    }
}

/// What to keep; the default keeps every connection but listeners.
#[derive(Debug, Clone, Default)]
pub struct ConnectionFilter {
    /// Listeners too.
    pub listeners: bool,
    /// A port on either side.
    pub port: Option<u16>,
    /// The local address.
    pub local: Option<AddrFilter>,
    /// The remote address.
    pub remote: Option<AddrFilter>,
    /// The MPTCP socket's state.
    pub state: Option<TcpState>,
    /// Only connections that fell back to TCP.
    pub fallback: bool,
    /// The connection token.
    pub token: Option<u32>,
    /// At least this many subflows.
    pub min_subflows: Option<u64>,
}

impl ConnectionFilter {
    /// Whether `c` is kept.
    pub fn matches(&self, c: &Connection) -> bool {
        let locals = || std::iter::once(&c.local).chain(c.subflows.iter().map(|s| &s.local));
        let remotes = || std::iter::once(&c.remote).chain(c.subflows.iter().map(|s| &s.remote));
        (self.listeners || !c.is_listener())
            && self
                .port
                .is_none_or(|p| locals().chain(remotes()).any(|a| a.port() == p))
            && self.local.is_none_or(|f| locals().any(|a| f.matches(a)))
            && self.remote.is_none_or(|f| remotes().any(|a| f.matches(a)))
            && self.state.is_none_or(|s| s == c.state)
            && (!self.fallback || c.fallback())
            && self.token.is_none_or(|t| c.connection_token() == Some(t))
            && self
                .min_subflows
                .is_none_or(|n| c.subflows.len() as u64 >= n)
    }

    /// Whether any condition is set beyond the default (listeners excluded).
    pub fn is_narrowing(&self) -> bool {
        self.port.is_some()
            || self.local.is_some()
            || self.remote.is_some()
            || self.state.is_some()
            || self.fallback
            || self.token.is_some()
            || self.min_subflows.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_match() {
        let f = AddrFilter::parse("198.18.0.1").unwrap();
        assert_eq!((f.ip.to_string(), f.port), ("198.18.0.1".into(), None));
        let f = AddrFilter::parse("[2001:db8::1]:5201").unwrap();
        assert_eq!(
            (f.ip.to_string(), f.port),
            ("2001:db8::1".into(), Some(5201))
        );
        assert_eq!(AddrFilter::parse("2001:db8::1").unwrap().port, None);
        assert!(f.matches(&"[2001:db8::1]:5201".parse().unwrap()));
        assert!(!f.matches(&"[2001:db8::1]:5202".parse().unwrap()));
        for bad in [
            "",
            "198.18.0.1:0",
            "198.18.0.1:x",
            "host:80",
            "2001:db8::1:80000",
        ] {
            assert!(AddrFilter::parse(bad).is_err(), "{bad}");
        }
    }
}
