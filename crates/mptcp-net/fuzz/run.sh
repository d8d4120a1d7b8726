#!/usr/bin/env bash
# Fuzzes the sans-I/O parsers of mptcp_net::info::wire (target `parsers`) for a bounded time.
# Run it by hand, like a benchmark; it is not part of CI. The stable unit test
# `info::tests::parsers_never_panic` covers the same ground deterministically in `cargo test`.
#
# cargo-fuzz needs nightly-only rustc flags (-Zsanitizer=..., sanitizer coverage). Only the
# stable toolchain is installed here and no other can be fetched, so RUSTC_BOOTSTRAP=1 lets
# stable rustc accept them.
#
# Usage: crates/mptcp-net/fuzz/run.sh                  # 60 s with AddressSanitizer
#        SECONDS_ARG=600 crates/mptcp-net/fuzz/run.sh   # longer
#        SANITIZER=none crates/mptcp-net/fuzz/run.sh    # faster, without ASan
# Extra arguments go to libFuzzer (e.g. -jobs=2 -workers=2). Crashes land in artifacts/parsers/.
set -euo pipefail
cd "$(dirname "$0")"

if ! cargo fuzz --help >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
mkdir -p corpus/parsers
exec cargo fuzz run --sanitizer "${SANITIZER:-address}" parsers corpus/parsers -- \
    -max_total_time="${SECONDS_ARG:-60}" "$@"
