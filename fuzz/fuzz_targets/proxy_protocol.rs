//! libFuzzer target `proxy_protocol`: see `mptcp_fuzz::proxy::proxy_protocol` for the input and the
//! invariants checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mptcp_fuzz::proxy::proxy_protocol(data));
