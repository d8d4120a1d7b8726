//! libFuzzer target `netlink_codec`: see `mptcp_fuzz::kernel::netlink_codec` for the input and the
//! invariants checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mptcp_fuzz::kernel::netlink_codec(data));
