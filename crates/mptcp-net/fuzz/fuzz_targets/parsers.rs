//! Feeds arbitrary bytes to every parser of `mptcp_net::info::wire`: `parse_mptcp_info`,
//! `parse_tcp_info`, `parse_sockaddr`, `parse_subflow_data`, `parse_tcpinfo_reply`,
//! `parse_subflow_addrs_reply`, and `parse_full_info` (its three buffers split from the input
//! at two points given by the input's first four bytes). The parsers must never panic; the
//! harness also checks that no reply yields more subflows than the kernel reported.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mptcp_net::info::wire::fuzz_parsers(data);
});
