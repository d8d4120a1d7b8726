#!/usr/bin/env bash
# Fuzzes the sans-I/O codec of mptcp_netlink (target `codec`) for a bounded time.
# Run it by hand; it is not part of CI. The stable unit test
# `codec::tests::parsers_never_panic` covers the same ground deterministically in `cargo test`.
#
# cargo-fuzz needs nightly-only rustc flags (-Zsanitizer=..., sanitizer coverage). Only the
# stable toolchain is installed here, so RUSTC_BOOTSTRAP=1 lets stable rustc accept them.
#
# Usage: crates/mptcp-netlink/fuzz/run.sh                  # 60 s with AddressSanitizer
#        SECONDS_ARG=600 crates/mptcp-netlink/fuzz/run.sh   # longer
#        SANITIZER=none crates/mptcp-netlink/fuzz/run.sh    # faster, without ASan
# Extra arguments go to libFuzzer (e.g. -jobs=2 -workers=2). Crashes land in artifacts/codec/.
set -euo pipefail
cd "$(dirname "$0")"

if ! cargo fuzz --help >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
mkdir -p corpus/codec
exec cargo fuzz run --sanitizer "${SANITIZER:-address}" codec corpus/codec -- \
    -max_total_time="${SECONDS_ARG:-60}" "$@"
