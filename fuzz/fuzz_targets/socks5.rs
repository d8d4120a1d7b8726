//! libFuzzer target `socks5`: see `mptcp_fuzz::proxy::socks5` for the input and the
//! invariants checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mptcp_fuzz::proxy::socks5(data));
