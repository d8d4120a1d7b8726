//! libFuzzer target `convert`: see `mptcp_fuzz::proxy::convert` for the input and the
//! invariants checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mptcp_fuzz::proxy::convert(data));
