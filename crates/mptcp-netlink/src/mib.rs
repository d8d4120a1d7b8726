//! What each `MPTcpExt` counter means: the one table of counter meanings, read by the
//! exporter (metric help texts) and the doctor (what a non-zero fallback counter says).
//!
//! The meanings follow the comments of the kernel's `net/mptcp/mib.h` (Linux 6.18), in
//! our words. A counter this table does not know (a newer kernel's) has no entry:
//! callers fall back to a generic text.

/// What kind of number a counter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterKind {
    /// Only ever goes up (nearly all of them).
    Counter,
    /// A current value (`MPCurrEstab`), up and down.
    Gauge,
}

/// The known counters: kernel name, help text, kind.
const TABLE: &[(&str, &str, CounterKind)] = &[
    (
        "MPCapableSYNRX",
        "SYNs received with MP_CAPABLE",
        CounterKind::Counter,
    ),
    (
        "MPCapableSYNTX",
        "SYNs sent with MP_CAPABLE",
        CounterKind::Counter,
    ),
    (
        "MPCapableSYNACKRX",
        "SYN/ACKs received with MP_CAPABLE",
        CounterKind::Counter,
    ),
    (
        "MPCapableACKRX",
        "Third ACKs received with MP_CAPABLE",
        CounterKind::Counter,
    ),
    (
        "MPCapableFallbackACK",
        "Server-side handshakes that fell back to TCP: the client's ACK came without MP_CAPABLE",
        CounterKind::Counter,
    ),
    (
        "MPCapableFallbackSYNACK",
        "Client-side handshakes that fell back to TCP: the peer answered without MP_CAPABLE",
        CounterKind::Counter,
    ),
    (
        "MPCapableSYNTXDrop",
        "Client-side fallbacks after an MP_CAPABLE SYN was dropped",
        CounterKind::Counter,
    ),
    (
        "MPCapableSYNTXDisabled",
        "SYNs sent without MP_CAPABLE because earlier drops disabled MPTCP",
        CounterKind::Counter,
    ),
    (
        "MPCapableEndpAttempt",
        "MP_CAPABLE SYNs refused because they reached a port-based endpoint",
        CounterKind::Counter,
    ),
    (
        "MPFallbackTokenInit",
        "Connections that fell back because no token could be set up",
        CounterKind::Counter,
    ),
    (
        "MPTCPRetrans",
        "Segments retransmitted at the MPTCP level",
        CounterKind::Counter,
    ),
    (
        "MPJoinNoTokenFound",
        "MP_JOINs received for a token no connection has",
        CounterKind::Counter,
    ),
    (
        "MPJoinSynRx",
        "SYNs received with MP_JOIN",
        CounterKind::Counter,
    ),
    (
        "MPJoinSynBackupRx",
        "SYNs received with MP_JOIN and the backup flag",
        CounterKind::Counter,
    ),
    (
        "MPJoinSynAckRx",
        "SYN/ACKs received with MP_JOIN",
        CounterKind::Counter,
    ),
    (
        "MPJoinSynAckBackupRx",
        "SYN/ACKs received with MP_JOIN and the backup flag",
        CounterKind::Counter,
    ),
    (
        "MPJoinSynAckHMacFailure",
        "SYN/ACKs with MP_JOIN whose HMAC was wrong",
        CounterKind::Counter,
    ),
    (
        "MPJoinAckRx",
        "ACKs received with MP_JOIN",
        CounterKind::Counter,
    ),
    (
        "MPJoinAckHMacFailure",
        "ACKs with MP_JOIN whose HMAC was wrong",
        CounterKind::Counter,
    ),
    (
        "MPJoinRejected",
        "MP_JOIN requests the path manager refused",
        CounterKind::Counter,
    ),
    (
        "MPJoinSynTx",
        "SYNs sent with MP_JOIN",
        CounterKind::Counter,
    ),
    (
        "MPJoinSynTxCreatSkErr",
        "MP_JOIN SYNs not sent: the subflow socket could not be created",
        CounterKind::Counter,
    ),
    (
        "MPJoinSynTxBindErr",
        "MP_JOIN SYNs not sent: binding the local address failed",
        CounterKind::Counter,
    ),
    (
        "MPJoinSynTxConnectErr",
        "MP_JOIN SYNs not sent: connecting the subflow failed",
        CounterKind::Counter,
    ),
    (
        "DSSNotMatching",
        "Data mappings that contradicted the previous one",
        CounterKind::Counter,
    ),
    (
        "DSSCorruptionFallback",
        "Corrupted data mappings that made the connection fall back",
        CounterKind::Counter,
    ),
    (
        "DSSCorruptionReset",
        "Corrupted data mappings that reset an MP_JOIN subflow",
        CounterKind::Counter,
    ),
    (
        "InfiniteMapTx",
        "Infinite mappings sent (fallback in the middle of a connection)",
        CounterKind::Counter,
    ),
    (
        "InfiniteMapRx",
        "Infinite mappings received",
        CounterKind::Counter,
    ),
    (
        "DSSNoMatchTCP",
        "Data mappings that did not fit the TCP sequence numbers",
        CounterKind::Counter,
    ),
    (
        "DataCsumErr",
        "Data checksum failures",
        CounterKind::Counter,
    ),
    (
        "OFOQueueTail",
        "Segments added at the tail of the out-of-order queue",
        CounterKind::Counter,
    ),
    (
        "OFOQueue",
        "Segments added to the out-of-order queue",
        CounterKind::Counter,
    ),
    (
        "OFOMerge",
        "Segments merged in the out-of-order queue",
        CounterKind::Counter,
    ),
    (
        "NoDSSInWindow",
        "Segments outside the MPTCP receive window",
        CounterKind::Counter,
    ),
    (
        "DuplicateData",
        "Segments dropped because their data was already received",
        CounterKind::Counter,
    ),
    (
        "AddAddr",
        "ADD_ADDR announcements received",
        CounterKind::Counter,
    ),
    (
        "AddAddrTx",
        "ADD_ADDR announcements sent",
        CounterKind::Counter,
    ),
    (
        "AddAddrTxDrop",
        "ADD_ADDR announcements not sent for lack of resources",
        CounterKind::Counter,
    ),
    ("EchoAdd", "ADD_ADDR echoes received", CounterKind::Counter),
    ("EchoAddTx", "ADD_ADDR echoes sent", CounterKind::Counter),
    (
        "EchoAddTxDrop",
        "ADD_ADDR echoes not sent for lack of resources",
        CounterKind::Counter,
    ),
    (
        "PortAdd",
        "ADD_ADDR announcements received with a port",
        CounterKind::Counter,
    ),
    (
        "AddAddrDrop",
        "ADD_ADDR announcements received and dropped",
        CounterKind::Counter,
    ),
    (
        "MPJoinPortSynRx",
        "MP_JOIN SYNs received on an announced port",
        CounterKind::Counter,
    ),
    (
        "MPJoinPortSynAckRx",
        "MP_JOIN SYN/ACKs received from an announced port",
        CounterKind::Counter,
    ),
    (
        "MPJoinPortAckRx",
        "MP_JOIN ACKs received on an announced port",
        CounterKind::Counter,
    ),
    (
        "MismatchPortSynRx",
        "MP_JOIN SYNs received on a port that was not announced",
        CounterKind::Counter,
    ),
    (
        "MismatchPortAckRx",
        "MP_JOIN ACKs received on a port that was not announced",
        CounterKind::Counter,
    ),
    (
        "RmAddr",
        "RM_ADDR withdrawals received",
        CounterKind::Counter,
    ),
    (
        "RmAddrDrop",
        "RM_ADDR withdrawals received and dropped",
        CounterKind::Counter,
    ),
    ("RmAddrTx", "RM_ADDR withdrawals sent", CounterKind::Counter),
    (
        "RmAddrTxDrop",
        "RM_ADDR withdrawals not sent for lack of resources",
        CounterKind::Counter,
    ),
    ("RmSubflow", "Subflows removed", CounterKind::Counter),
    (
        "MPPrioTx",
        "MP_PRIO (backup flag changes) sent",
        CounterKind::Counter,
    ),
    (
        "MPPrioRx",
        "MP_PRIO (backup flag changes) received",
        CounterKind::Counter,
    ),
    ("MPFailTx", "MP_FAIL sent", CounterKind::Counter),
    ("MPFailRx", "MP_FAIL received", CounterKind::Counter),
    ("MPFastcloseTx", "MP_FASTCLOSE sent", CounterKind::Counter),
    (
        "MPFastcloseRx",
        "MP_FASTCLOSE received",
        CounterKind::Counter,
    ),
    (
        "MPRstTx",
        "MP_TCPRST (subflow resets with a reason) sent",
        CounterKind::Counter,
    ),
    (
        "MPRstRx",
        "MP_TCPRST (subflow resets with a reason) received",
        CounterKind::Counter,
    ),
    (
        "RcvPruned",
        "Incoming packets dropped for lack of memory",
        CounterKind::Counter,
    ),
    (
        "SubflowStale",
        "Subflows that became stale (no progress)",
        CounterKind::Counter,
    ),
    (
        "SubflowRecover",
        "Stale subflows that became active again",
        CounterKind::Counter,
    ),
    (
        "SndWndShared",
        "Times a subflow's send window was replaced by the connection's",
        CounterKind::Counter,
    ),
    (
        "RcvWndShared",
        "Times a subflow's receive window was replaced by the connection's",
        CounterKind::Counter,
    ),
    (
        "RcvWndConflictUpdate",
        "Receive window replacements after a conflict between subflows",
        CounterKind::Counter,
    ),
    (
        "RcvWndConflict",
        "Conflicts between subflows while updating the receive window",
        CounterKind::Counter,
    ),
    (
        "MPCurrEstab",
        "MPTCP connections established now",
        CounterKind::Gauge,
    ),
    (
        "Blackhole",
        "Blackholes detected (a path dropping MPTCP options)",
        CounterKind::Counter,
    ),
    (
        "MPCapableDataFallback",
        "Fallbacks: the first data packet came without a mapping",
        CounterKind::Counter,
    ),
    (
        "MD5SigFallback",
        "Fallbacks: a conflicting TCP option (MD5 signature) was on",
        CounterKind::Counter,
    ),
    (
        "DssFallback",
        "Fallbacks: a bad or missing data mapping",
        CounterKind::Counter,
    ),
    (
        "SimultConnectFallback",
        "Fallbacks: a simultaneous connect",
        CounterKind::Counter,
    ),
    (
        "FallbackFailed",
        "Fallbacks that the connection's state did not allow",
        CounterKind::Counter,
    ),
    (
        "WinProbe",
        "MPTCP-level zero window probes sent",
        CounterKind::Counter,
    ),
];

/// What counter `name` (the kernel's exact name) counts, one sentence without a
/// final full stop; `None` for a counter this table does not know.
pub fn help(name: &str) -> Option<&'static str> {
    TABLE
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, h, _)| *h)
}

/// Whether counter `name` only goes up; an unknown one is taken to.
pub fn kind(name: &str) -> CounterKind {
    TABLE
        .iter()
        .find(|(n, _, _)| *n == name)
        .map_or(CounterKind::Counter, |(_, _, k)| *k)
}

/// The names of the counters this table knows, in the kernel's order.
pub fn known() -> impl Iterator<Item = &'static str> {
    TABLE.iter().map(|(n, _, _)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert_eq!(help("MPJoinAckRx"), Some("ACKs received with MP_JOIN"));
        assert_eq!(help("SomethingNew"), None);
        assert_eq!(kind("MPCurrEstab"), CounterKind::Gauge);
        assert_eq!(kind("SomethingNew"), CounterKind::Counter);
        let mut names: Vec<&str> = known().collect();
        let all = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all, "a counter is listed twice");
    }
}
