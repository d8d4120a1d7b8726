//! Per-namespace SNMP/MIB counters (`/proc/net/netstat`, `/proc/net/snmp`), parsed
//! without I/O by `mptcp_netlink`'s one parser of these files, grouped for lookups.

use std::collections::BTreeMap;

use mptcp_netlink::codec::netstat::parse_netstat;

use crate::Error;

/// A snapshot of a network namespace's counters, grouped as the kernel groups them:
/// `TcpExt`, `IpExt`, `MPTcpExt` (from `/proc/net/netstat`) and `Ip`, `Icmp`, `Tcp`,
/// `Udp`, ... (from `/proc/net/snmp`).
///
/// Values the kernel prints as negative numbers (only the constant `Tcp MaxConn = -1`)
/// are left out: they are not counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    groups: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Counters {
    /// Parses the text of `/proc/net/netstat`, `/proc/net/snmp`, or both concatenated:
    /// pairs of lines `Group: Name1 Name2 ...` / `Group: value1 value2 ...`.
    ///
    /// # Errors
    /// [`Error::Parse`] if a header has no matching value line or the counts differ.
    pub fn parse(text: &str) -> Result<Counters, Error> {
        let groups = parse_netstat(text).map_err(|e| Error::Parse(e.to_string()))?;
        let mut counters = Counters::default();
        for group in groups {
            let entry = counters.groups.entry(group.name.to_string()).or_default();
            entry.extend(group.counters.into_iter().map(|(n, v)| (n.to_string(), v)));
        }
        Ok(counters)
    }

    /// One counter, e.g. `get("MPTcpExt", "MPJoinSynRx")` or `get("Tcp", "ActiveOpens")`.
    pub fn get(&self, group: &str, name: &str) -> Option<u64> {
        self.groups.get(group)?.get(name).copied()
    }

    /// An `MPTcpExt` counter, 0 when absent (the kernel hides zero-only MPTCP counters
    /// on some versions, and older kernels lack newer names).
    pub fn mptcp(&self, name: &str) -> u64 {
        self.get("MPTcpExt", name).unwrap_or(0)
    }

    /// Every counter as `(group, name, value)`, sorted by group then name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, u64)> + '_ {
        self.groups.iter().flat_map(|(group, names)| {
            names
                .iter()
                .map(move |(name, value)| (group.as_str(), name.as_str(), *value))
        })
    }

    /// How much each counter grew since `earlier` (counters missing from `earlier`
    /// count from 0; a counter that went down yields 0).
    pub fn delta(&self, earlier: &Counters) -> Counters {
        let groups = self
            .groups
            .iter()
            .map(|(group, names)| {
                let names = names
                    .iter()
                    .map(|(name, value)| {
                        let before = earlier.get(group, name).unwrap_or(0);
                        (name.clone(), value.saturating_sub(before))
                    })
                    .collect();
                (group.clone(), names)
            })
            .collect();
        Counters { groups }
    }

    /// The counters that are not zero: handy for printing a [`delta`](Self::delta).
    pub fn non_zero(&self) -> impl Iterator<Item = (&str, &str, u64)> + '_ {
        self.iter().filter(|(_, _, v)| *v != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NETSTAT: &str = "TcpExt: SyncookiesSent SyncookiesRecv\n\
                           TcpExt: 0 3\n\
                           MPTcpExt: MPCapableSYNRX MPJoinSynRx\n\
                           MPTcpExt: 2 5\n";
    const SNMP: &str = "Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens\n\
                        Tcp: 1 200 120000 -1 7\n";

    #[test]
    fn parses_netstat_and_snmp_together() {
        let c = Counters::parse(&format!("{NETSTAT}{SNMP}")).unwrap();
        assert_eq!(c.get("TcpExt", "SyncookiesRecv"), Some(3));
        assert_eq!(c.get("Tcp", "ActiveOpens"), Some(7));
        assert_eq!(
            c.get("Tcp", "MaxConn"),
            None,
            "negative constants are skipped"
        );
        assert_eq!(c.mptcp("MPJoinSynRx"), 5);
        assert_eq!(c.mptcp("NoSuchCounter"), 0);
        assert_eq!(c.iter().count(), 8);
        assert_eq!(c.iter().next(), Some(("MPTcpExt", "MPCapableSYNRX", 2)));
    }

    #[test]
    fn delta_subtracts_and_saturates() {
        let before = Counters::parse("Tcp: A B\nTcp: 5 9\n").unwrap();
        let after = Counters::parse("Tcp: A B C\nTcp: 6 1 4\n").unwrap();
        let d = after.delta(&before);
        assert_eq!(d.get("Tcp", "A"), Some(1));
        assert_eq!(d.get("Tcp", "B"), Some(0));
        assert_eq!(d.get("Tcp", "C"), Some(4));
        let nz: Vec<_> = d.non_zero().collect();
        assert_eq!(nz, vec![("Tcp", "A", 1), ("Tcp", "C", 4)]);
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in [
            "Tcp: A B\n",
            "Tcp: A B\nTcp: 1\n",
            "Tcp: A\nUdp: 1\n",
            "Tcp A\nTcp 1\n",
            "Tcp: A\nTcp: x\n",
        ] {
            assert!(
                matches!(Counters::parse(bad), Err(Error::Parse(_))),
                "{bad:?}"
            );
        }
        assert_eq!(Counters::parse("").unwrap(), Counters::default());
    }
}
