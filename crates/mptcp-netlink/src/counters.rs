//! MPTCP MIB counters (`MPTcpExt` in `/proc/net/netstat`).

use std::fmt;

use crate::codec::netstat::parse_netstat;
use crate::codec::DecodeError;
use crate::Error;

/// Where the calling thread's namespace counters are: `/proc/net` would be the
/// namespace of the process's main thread.
pub(crate) const NETSTAT_PATH: &str = "/proc/thread-self/net/netstat";

/// A snapshot of the MPTCP MIB counters of one network namespace, every counter the
/// kernel reports, by name and in the kernel's order (`MPCapableSYNRX`, `MPJoinAckRx`,
/// `AddAddr`, ...: 77 on Linux 6.18).
///
/// Counters are per namespace, not per connection; compare two snapshots with
/// [`delta`](Self::delta).
///
/// ```
/// use mptcp_netlink::Counters;
///
/// let text = "MPTcpExt: MPCapableSYNRX MPJoinAckRx\nMPTcpExt: 3 1\n";
/// let c = Counters::parse(text)?;
/// assert_eq!(c.get("MPJoinAckRx"), Some(1));
/// # Ok::<(), mptcp_netlink::codec::DecodeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Counters {
    entries: Vec<(String, u64)>,
}

impl Counters {
    /// Reads the calling thread's namespace counters from `/proc/thread-self/net/netstat`.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read; [`Error::NotFound`] if it has no
    /// `MPTcpExt` lines (a kernel without MPTCP); [`Error::Decode`] if they are malformed.
    pub fn read() -> Result<Counters, Error> {
        let text = std::fs::read_to_string(NETSTAT_PATH)
            .map_err(|e| Error::io("cannot read /proc/thread-self/net/netstat", e))?;
        let counters = Counters::parse(&text)?;
        if counters.is_empty() {
            return Err(Error::NotFound {
                op: "read MPTCP counters",
                message: Some("no MPTcpExt in netstat: kernel without MPTCP".into()),
            });
        }
        Ok(counters)
    }

    /// Parses the text of a `netstat` file ([`parse_netstat`]) and keeps the
    /// `MPTcpExt` group; no `MPTcpExt` gives an empty set.
    pub fn parse(text: &str) -> Result<Counters, DecodeError> {
        let entries = parse_netstat(text)?
            .into_iter()
            .find(|g| g.name == "MPTcpExt")
            .map(|g| {
                g.counters
                    .into_iter()
                    .map(|(n, v)| (n.to_string(), v))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Counters { entries })
    }

    /// The value of counter `name` (exact, case-sensitive kernel name).
    pub fn get(&self, name: &str) -> Option<u64> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }

    /// Every counter, in the kernel's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.entries.iter().map(|(n, v)| (n.as_str(), *v))
    }

    /// How many counters there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No counter (a kernel without MPTCP).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The increase of each counter since `earlier` (0 where it went down, which only a
    /// different namespace would show).
    pub fn delta(&self, earlier: &Counters) -> Counters {
        Counters {
            entries: self
                .entries
                .iter()
                .map(|(n, v)| (n.clone(), v.saturating_sub(earlier.get(n).unwrap_or(0))))
                .collect(),
        }
    }

    /// The counters that are not zero.
    pub fn non_zero(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.iter().filter(|(_, v)| *v != 0)
    }
}

/// One `Name value` line per counter, like `nstat`.
impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.entries.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        for (n, v) in &self.entries {
            writeln!(f, "{n:<width$} {v}")?;
        }
        Ok(())
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Counters {
    /// A map from name to value, in the kernel's order.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.entries.len()))?;
        for (n, v) in &self.entries {
            map.serialize_entry(n, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_netstat_text() {
        let text = "TcpExt: SyncookiesSent\nTcpExt: 0\n\
                    MPTcpExt: MPCapableSYNRX MPCapableACKRX MPJoinAckRx\n\
                    MPTcpExt: 5 4 2\nIpExt: InNoRoutes\nIpExt: 0\n";
        let c = Counters::parse(text).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c.get("MPCapableACKRX"), Some(4));
        assert_eq!(c.get("SyncookiesSent"), None);
        let earlier = Counters::parse("MPTcpExt: MPCapableSYNRX\nMPTcpExt: 3\n").unwrap();
        let d = c.delta(&earlier);
        assert_eq!(d.get("MPCapableSYNRX"), Some(2));
        assert_eq!(d.get("MPJoinAckRx"), Some(2));
        assert_eq!(c.non_zero().count(), 3);
        assert!(c.to_string().starts_with("MPCapableSYNRX 5\n"));
        assert!(Counters::parse("MPTcpExt: A B\nMPTcpExt: 1\n").is_err());
        assert!(Counters::parse("MPTcpExt: A\nMPTcpExt: x\n").is_err());
        assert!(Counters::parse("MPTcpExt: A\n").is_err());
        assert!(Counters::parse("").unwrap().is_empty());
    }
}
