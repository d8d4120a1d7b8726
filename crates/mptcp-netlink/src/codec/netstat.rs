//! The text of `/proc/net/netstat` and `/proc/net/snmp`: pairs of lines
//! `Group: Name1 Name2 ...` / `Group: value1 value2 ...` (`TcpExt`, `IpExt`,
//! `MPTcpExt`; `Ip`, `Tcp`, `Udp`, ...). The one parser of these files in the
//! workspace: [`Counters`](crate::Counters) keeps the `MPTcpExt` group, the test
//! network's counters keep them all.

use super::DecodeError;

/// One group of counters, as the kernel printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetstatGroup<'a> {
    /// `TcpExt`, `MPTcpExt`, `Tcp`, ...
    pub name: &'a str,
    /// The counters in the kernel's order. Values the kernel prints as negative numbers
    /// (only the constant `Tcp MaxConn = -1`) are left out: they are not counters.
    pub counters: Vec<(&'a str, u64)>,
}

/// Parses the text of `/proc/net/netstat`, `/proc/net/snmp`, or both concatenated.
/// Blank lines are skipped.
///
/// # Errors
/// A header without a line of values, a values line of another group, a line
/// without `Group:`, counts that differ, or a value that is not a number.
pub fn parse_netstat(text: &str) -> Result<Vec<NetstatGroup<'_>>, DecodeError> {
    let mut groups = Vec::new();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    while let Some(header) = lines.next() {
        let values = lines
            .next()
            .ok_or_else(|| DecodeError::new(format!("header without values: {header:?}")))?;
        let (name, names) = split_group(header)?;
        let (value_group, values) = split_group(values)?;
        if name != value_group {
            return Err(DecodeError::new(format!(
                "header group {name:?} followed by values of {value_group:?}"
            )));
        }
        let names: Vec<&str> = names.split_whitespace().collect();
        let values: Vec<&str> = values.split_whitespace().collect();
        if names.len() != values.len() {
            return Err(DecodeError::new(format!(
                "group {name}: {} names but {} values",
                names.len(),
                values.len()
            )));
        }
        let mut counters = Vec::with_capacity(names.len());
        for (counter, value) in names.into_iter().zip(values) {
            match value.parse::<u64>() {
                Ok(v) => counters.push((counter, v)),
                Err(_) if value.parse::<i64>().is_ok() => {}
                Err(_) => {
                    return Err(DecodeError::new(format!(
                        "group {name}: {counter} = {value:?} is not a number"
                    )))
                }
            }
        }
        groups.push(NetstatGroup { name, counters });
    }
    Ok(groups)
}

fn split_group(line: &str) -> Result<(&str, &str), DecodeError> {
    line.split_once(':')
        .map(|(group, rest)| (group.trim(), rest))
        .ok_or_else(|| DecodeError::new(format!("line without a `Group:` prefix: {line:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_in_order_negative_constants_left_out() {
        let text = "TcpExt: SyncookiesSent SyncookiesRecv\nTcpExt: 0 3\n\n\
                    Tcp: RtoAlgorithm MaxConn ActiveOpens\nTcp: 1 -1 7\n";
        let groups = parse_netstat(text).unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].name, "TcpExt");
        assert_eq!(
            groups[0].counters,
            [("SyncookiesSent", 0), ("SyncookiesRecv", 3)]
        );
        assert_eq!(
            groups[1].counters,
            [("RtoAlgorithm", 1), ("ActiveOpens", 7)]
        );
        assert!(parse_netstat("").unwrap().is_empty());
    }

    #[test]
    fn malformed_text_is_an_error() {
        for bad in [
            "Tcp: A B\n",
            "Tcp: A B\nTcp: 1\n",
            "Tcp: A\nUdp: 1\n",
            "Tcp A\nTcp 1\n",
            "Tcp: A\nTcp: x\n",
        ] {
            assert!(parse_netstat(bad).is_err(), "{bad:?}");
        }
    }
}
