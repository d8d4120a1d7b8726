//! libFuzzer target `sock_diag`: see `mptcp_fuzz::kernel::sock_diag` for the input and the
//! invariants checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mptcp_fuzz::kernel::sock_diag(data));
