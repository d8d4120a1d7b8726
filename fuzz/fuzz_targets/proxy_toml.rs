//! libFuzzer target `proxy_toml`: see `mptcp_fuzz::config::proxy_toml` for the input and the
//! invariants checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mptcp_fuzz::config::proxy_toml(data));
