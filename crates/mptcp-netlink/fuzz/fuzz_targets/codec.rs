//! Feeds arbitrary bytes to every parser of `mptcp_netlink::codec`: the first byte picks
//! the command/event number, the rest goes to `PmMessage::parse`, `Event::parse`,
//! `AddressAttrs::parse`, the `sock_diag` parsers (`parse_inet_diag_msg`,
//! `parse_subflow_ulp_info`, `parse_mptcp_info`); the whole input also goes through the
//! netlink framing, status (NLMSG_ERROR / extended ack) and generic netlink reply parsers.
//! None may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mptcp_netlink::codec::fuzz_all_parsers(data);
});
