//! libFuzzer target `http_connect`: see `mptcp_fuzz::proxy::http_connect` for the input and the
//! invariants checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mptcp_fuzz::proxy::http_connect(data));
