//! libFuzzer target `lb_registry`: see `mptcp_fuzz::registry::lb_registry` for the input and the
//! invariants checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mptcp_fuzz::registry::lb_registry(data));
