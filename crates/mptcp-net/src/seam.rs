//! Test seam, compiled only with the `test-seam` feature: not part of the
//! public API, no stability promise.
//!
//! It lets tests make `socket(..., IPPROTO_MPTCP)` fail with errors this
//! host's kernel cannot produce (`EPROTONOSUPPORT`, `EINVAL`, `EACCES`), and
//! count the attempts.

use std::cell::Cell;

pub use crate::status::Detection;

thread_local! {
    static INJECT: Cell<Option<i32>> = const { Cell::new(None) };
    static ATTEMPTS: Cell<u64> = const { Cell::new(0) };
}

/// Makes every MPTCP `socket()` on this thread fail with `errno` (`None`
/// stops it).
pub fn inject_mptcp_socket_error(errno: Option<i32>) {
    INJECT.with(|c| c.set(errno));
    // An injected ENOPROTOOPT is remembered like a real one; a new injection
    // starts from a clean slate.
    crate::support::forget_disabled();
}

/// MPTCP `socket()` attempts made on this thread so far (injected failures
/// included).
pub fn mptcp_socket_attempts() -> u64 {
    ATTEMPTS.with(|c| c.get())
}

/// Forgets a cached "never on this kernel" answer.
pub fn forget_support_cache() {
    crate::support::forget();
}

/// Forces a status detection method (`None`: choose again on next use).
pub fn force_detection(method: Option<Detection>) {
    crate::status::force(method);
}

/// Called by `sys::mptcp_socket`: counts, and returns the errno to inject.
pub(crate) fn on_mptcp_socket() -> Option<i32> {
    ATTEMPTS.with(|c| c.set(c.get() + 1));
    INJECT.with(|c| c.get())
}

/// Forces `subflows()` to use the 5.16-6.4 calls (`Some(true)`), the 6.5+
/// call (`Some(false)`), or to find out again (`None`).
pub fn force_legacy_subflows(legacy: Option<bool>) {
    crate::introspect::force_legacy(legacy);
}
