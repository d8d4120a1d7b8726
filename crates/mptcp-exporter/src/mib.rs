//! The `MPTcpExt` counters: their metric names and help texts.
//!
//! The meanings follow the comments of the kernel's `net/mptcp/mib.h` (Linux 6.18), in
//! our words. A counter this table does not know (a newer kernel's) is still exported,
//! under the same naming rule, with a generic help text.

/// How a kernel counter is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only ever goes up (nearly all of them): a Prometheus counter, `_total`.
    Counter,
    /// A current value (`MPCurrEstab`): a gauge.
    Gauge,
}

/// The known counters: kernel name, help text, kind.
const TABLE: &[(&str, &str, Kind)] = &[
    (
        "MPCapableSYNRX",
        "SYNs received with MP_CAPABLE",
        Kind::Counter,
    ),
    ("MPCapableSYNTX", "SYNs sent with MP_CAPABLE", Kind::Counter),
    (
        "MPCapableSYNACKRX",
        "SYN/ACKs received with MP_CAPABLE",
        Kind::Counter,
    ),
    (
        "MPCapableACKRX",
        "Third ACKs received with MP_CAPABLE",
        Kind::Counter,
    ),
    (
        "MPCapableFallbackACK",
        "Server-side handshakes that fell back to TCP",
        Kind::Counter,
    ),
    (
        "MPCapableFallbackSYNACK",
        "Client-side handshakes that fell back to TCP",
        Kind::Counter,
    ),
    (
        "MPCapableSYNTXDrop",
        "Client-side fallbacks after an MP_CAPABLE SYN was dropped",
        Kind::Counter,
    ),
    (
        "MPCapableSYNTXDisabled",
        "SYNs sent without MP_CAPABLE because earlier drops disabled MPTCP",
        Kind::Counter,
    ),
    (
        "MPCapableEndpAttempt",
        "MP_CAPABLE SYNs refused because they reached a port-based endpoint",
        Kind::Counter,
    ),
    (
        "MPFallbackTokenInit",
        "Connections that fell back because no token could be set up",
        Kind::Counter,
    ),
    (
        "MPTCPRetrans",
        "Segments retransmitted at the MPTCP level",
        Kind::Counter,
    ),
    (
        "MPJoinNoTokenFound",
        "MP_JOINs received for a token no connection has",
        Kind::Counter,
    ),
    ("MPJoinSynRx", "SYNs received with MP_JOIN", Kind::Counter),
    (
        "MPJoinSynBackupRx",
        "SYNs received with MP_JOIN and the backup flag",
        Kind::Counter,
    ),
    (
        "MPJoinSynAckRx",
        "SYN/ACKs received with MP_JOIN",
        Kind::Counter,
    ),
    (
        "MPJoinSynAckBackupRx",
        "SYN/ACKs received with MP_JOIN and the backup flag",
        Kind::Counter,
    ),
    (
        "MPJoinSynAckHMacFailure",
        "SYN/ACKs with MP_JOIN whose HMAC was wrong",
        Kind::Counter,
    ),
    ("MPJoinAckRx", "ACKs received with MP_JOIN", Kind::Counter),
    (
        "MPJoinAckHMacFailure",
        "ACKs with MP_JOIN whose HMAC was wrong",
        Kind::Counter,
    ),
    (
        "MPJoinRejected",
        "MP_JOIN requests the path manager refused",
        Kind::Counter,
    ),
    ("MPJoinSynTx", "SYNs sent with MP_JOIN", Kind::Counter),
    (
        "MPJoinSynTxCreatSkErr",
        "MP_JOIN SYNs not sent: the subflow socket could not be created",
        Kind::Counter,
    ),
    (
        "MPJoinSynTxBindErr",
        "MP_JOIN SYNs not sent: binding the local address failed",
        Kind::Counter,
    ),
    (
        "MPJoinSynTxConnectErr",
        "MP_JOIN SYNs not sent: connecting the subflow failed",
        Kind::Counter,
    ),
    (
        "DSSNotMatching",
        "Data mappings that contradicted the previous one",
        Kind::Counter,
    ),
    (
        "DSSCorruptionFallback",
        "Corrupted data mappings that made the connection fall back",
        Kind::Counter,
    ),
    (
        "DSSCorruptionReset",
        "Corrupted data mappings that reset an MP_JOIN subflow",
        Kind::Counter,
    ),
    (
        "InfiniteMapTx",
        "Infinite mappings sent (fallback in the middle of a connection)",
        Kind::Counter,
    ),
    ("InfiniteMapRx", "Infinite mappings received", Kind::Counter),
    (
        "DSSNoMatchTCP",
        "Data mappings that did not fit the TCP sequence numbers",
        Kind::Counter,
    ),
    ("DataCsumErr", "Data checksum failures", Kind::Counter),
    (
        "OFOQueueTail",
        "Segments added at the tail of the out-of-order queue",
        Kind::Counter,
    ),
    (
        "OFOQueue",
        "Segments added to the out-of-order queue",
        Kind::Counter,
    ),
    (
        "OFOMerge",
        "Segments merged in the out-of-order queue",
        Kind::Counter,
    ),
    (
        "NoDSSInWindow",
        "Segments outside the MPTCP receive window",
        Kind::Counter,
    ),
    (
        "DuplicateData",
        "Segments dropped because their data was already received",
        Kind::Counter,
    ),
    ("AddAddr", "ADD_ADDR announcements received", Kind::Counter),
    ("AddAddrTx", "ADD_ADDR announcements sent", Kind::Counter),
    (
        "AddAddrTxDrop",
        "ADD_ADDR announcements not sent for lack of resources",
        Kind::Counter,
    ),
    ("EchoAdd", "ADD_ADDR echoes received", Kind::Counter),
    ("EchoAddTx", "ADD_ADDR echoes sent", Kind::Counter),
    (
        "EchoAddTxDrop",
        "ADD_ADDR echoes not sent for lack of resources",
        Kind::Counter,
    ),
    (
        "PortAdd",
        "ADD_ADDR announcements received with a port",
        Kind::Counter,
    ),
    (
        "AddAddrDrop",
        "ADD_ADDR announcements received and dropped",
        Kind::Counter,
    ),
    (
        "MPJoinPortSynRx",
        "MP_JOIN SYNs received on an announced port",
        Kind::Counter,
    ),
    (
        "MPJoinPortSynAckRx",
        "MP_JOIN SYN/ACKs received from an announced port",
        Kind::Counter,
    ),
    (
        "MPJoinPortAckRx",
        "MP_JOIN ACKs received on an announced port",
        Kind::Counter,
    ),
    (
        "MismatchPortSynRx",
        "MP_JOIN SYNs received on a port that was not announced",
        Kind::Counter,
    ),
    (
        "MismatchPortAckRx",
        "MP_JOIN ACKs received on a port that was not announced",
        Kind::Counter,
    ),
    ("RmAddr", "RM_ADDR withdrawals received", Kind::Counter),
    (
        "RmAddrDrop",
        "RM_ADDR withdrawals received and dropped",
        Kind::Counter,
    ),
    ("RmAddrTx", "RM_ADDR withdrawals sent", Kind::Counter),
    (
        "RmAddrTxDrop",
        "RM_ADDR withdrawals not sent for lack of resources",
        Kind::Counter,
    ),
    ("RmSubflow", "Subflows removed", Kind::Counter),
    (
        "MPPrioTx",
        "MP_PRIO (backup flag changes) sent",
        Kind::Counter,
    ),
    (
        "MPPrioRx",
        "MP_PRIO (backup flag changes) received",
        Kind::Counter,
    ),
    ("MPFailTx", "MP_FAIL sent", Kind::Counter),
    ("MPFailRx", "MP_FAIL received", Kind::Counter),
    ("MPFastcloseTx", "MP_FASTCLOSE sent", Kind::Counter),
    ("MPFastcloseRx", "MP_FASTCLOSE received", Kind::Counter),
    (
        "MPRstTx",
        "MP_TCPRST (subflow resets with a reason) sent",
        Kind::Counter,
    ),
    (
        "MPRstRx",
        "MP_TCPRST (subflow resets with a reason) received",
        Kind::Counter,
    ),
    (
        "RcvPruned",
        "Incoming packets dropped for lack of memory",
        Kind::Counter,
    ),
    (
        "SubflowStale",
        "Subflows that became stale (no progress)",
        Kind::Counter,
    ),
    (
        "SubflowRecover",
        "Stale subflows that became active again",
        Kind::Counter,
    ),
    (
        "SndWndShared",
        "Times a subflow's send window was replaced by the connection's",
        Kind::Counter,
    ),
    (
        "RcvWndShared",
        "Times a subflow's receive window was replaced by the connection's",
        Kind::Counter,
    ),
    (
        "RcvWndConflictUpdate",
        "Receive window replacements after a conflict between subflows",
        Kind::Counter,
    ),
    (
        "RcvWndConflict",
        "Conflicts between subflows while updating the receive window",
        Kind::Counter,
    ),
    (
        "MPCurrEstab",
        "MPTCP connections established now",
        Kind::Gauge,
    ),
    (
        "Blackhole",
        "Blackholes detected (a path dropping MPTCP options)",
        Kind::Counter,
    ),
    (
        "MPCapableDataFallback",
        "Fallbacks: the first data packet came without a mapping",
        Kind::Counter,
    ),
    (
        "MD5SigFallback",
        "Fallbacks: a conflicting TCP option (MD5 signature) was on",
        Kind::Counter,
    ),
    (
        "DssFallback",
        "Fallbacks: a bad or missing data mapping",
        Kind::Counter,
    ),
    (
        "SimultConnectFallback",
        "Fallbacks: a simultaneous connect",
        Kind::Counter,
    ),
    (
        "FallbackFailed",
        "Fallbacks that the connection's state did not allow",
        Kind::Counter,
    ),
    (
        "WinProbe",
        "MPTCP-level zero window probes sent",
        Kind::Counter,
    ),
];

/// How a kernel counter is exported: metric name, help text, kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MibMetric {
    /// The metric name: `mptcp_mib_` and the snake_case kernel name (a counter's
    /// samples add `_total`).
    pub name: String,
    /// The help text, ending with the kernel's name (`(MPTcpExt MPJoinAckRx)`).
    pub help: String,
    /// Counter or gauge.
    pub kind: Kind,
}

/// The metric for kernel counter `kernel_name`.
pub fn metric(kernel_name: &str) -> MibMetric {
    let (text, kind) = TABLE
        .iter()
        .find(|(n, _, _)| *n == kernel_name)
        .map_or(("MPTCP MIB counter", Kind::Counter), |(_, h, k)| (*h, *k));
    let mut name = format!("mptcp_mib_{}", snake_case(kernel_name));
    if kind == Kind::Counter {
        name.push_str("_total");
    }
    MibMetric {
        name,
        help: format!("{text} (MPTcpExt {kernel_name})."),
        kind,
    }
}

/// `MPJoinSynAckHMacFailure` -> `mp_join_syn_ack_hmac_failure`, `MPCapableSYNRX` ->
/// `mp_capable_synrx`: a word starts at an upper-case letter after a lower-case one or
/// a digit, and at the last upper-case letter of a run followed by a lower-case one; a
/// one-letter word joins the next (`HMac` is `hmac`, not `h_mac`, which Prometheus
/// lint would read as hours). Anything but ASCII letters and digits splits words.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            continue;
        }
        if c.is_ascii_uppercase() && i > 0 && !word.is_empty() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                words.push(std::mem::take(&mut word));
            }
        }
        word.push(c.to_ascii_lowercase());
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut out = String::with_capacity(name.len() + 8);
    let mut glue = false;
    for (i, w) in words.iter().enumerate() {
        if i > 0 && !glue {
            out.push('_');
        }
        out.push_str(w);
        glue = w.len() == 1 && i + 1 < words.len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_snake_case_and_unique() {
        assert_eq!(snake_case("MPCapableSYNRX"), "mp_capable_synrx");
        assert_eq!(
            snake_case("MPJoinSynAckHMacFailure"),
            "mp_join_syn_ack_hmac_failure"
        );
        assert_eq!(snake_case("Rm-Addr"), "rm_addr");
        assert_eq!(snake_case("MPTCPRetrans"), "mptcp_retrans");
        assert_eq!(snake_case("OFOQueueTail"), "ofo_queue_tail");
        assert_eq!(snake_case("MPCurrEstab"), "mp_curr_estab");
        let mut names: Vec<String> = TABLE.iter().map(|(n, _, _)| metric(n).name).collect();
        let all = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all, "two counters share a metric name");
        for n in &names {
            assert!(
                n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{n}"
            );
        }
    }

    #[test]
    fn unknown_counters_get_a_generic_help() {
        let m = metric("SomethingNew");
        assert_eq!(m.name, "mptcp_mib_something_new_total");
        assert_eq!(m.help, "MPTCP MIB counter (MPTcpExt SomethingNew).");
        assert_eq!(metric("MPCurrEstab").kind, Kind::Gauge);
        assert_eq!(metric("MPCurrEstab").name, "mptcp_mib_mp_curr_estab");
    }
}
