//! What the kernel answers: the MPTCP generic netlink family (requests, replies, events,
//! framing), `sock_diag` replies, and `MPTCP_INFO` / the subflow socket options.
//!
//! Their parsers are private to their crates; each crate keeps a hidden entry that runs
//! them and checks their invariants, shared with its own unit tests.

/// The `mptcp_pm` generic netlink codec: the first byte is the command or event number,
/// the rest the attributes; parsed messages, events and addresses survive `to_bytes`;
/// the whole input also goes through the netlink framing and status parsers
/// (`mptcp_netlink::codec::fuzz_genl`).
pub fn netlink_codec(data: &[u8]) {
    mptcp_netlink::codec::fuzz_genl(data);
}

/// `sock_diag` replies: `struct inet_diag_msg` with its attributes, the MPTCP ULP nest,
/// `struct mptcp_info` (`mptcp_netlink::codec::fuzz_sock_diag`).
pub fn sock_diag(data: &[u8]) {
    mptcp_netlink::codec::fuzz_sock_diag(data);
}

/// `MPTCP_INFO`, `TCP_INFO`, `MPTCP_TCPINFO`, `MPTCP_SUBFLOW_ADDRS` and `MPTCP_FULL_INFO`
/// (`mptcp_net::info::wire::fuzz_parsers`): no reply yields more subflows than the
/// kernel reported, lengths are the lengths given.
pub fn mptcp_info(data: &[u8]) {
    mptcp_net::info::wire::fuzz_parsers(data);
}
