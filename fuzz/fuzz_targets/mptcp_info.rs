//! libFuzzer target `mptcp_info`: see `mptcp_fuzz::kernel::mptcp_info` for the input and the
//! invariants checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mptcp_fuzz::kernel::mptcp_info(data));
