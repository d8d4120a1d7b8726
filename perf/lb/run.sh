#!/usr/bin/env bash
# The fleet benchmark (issue 21, item 7), as root: the same fleet (a client with two
# 50 Mbit/s paths, a balancer, three backends) side by side with no help, with join
# ports (C flag + VIP:port, `mptcp pm` + `mptcp lb`) and with token steering.
#
#   perf/lb/run.sh          # route (ECMP anycast) balancer, about a minute
#   perf/lb/run.sh --nat    # and the nat balancer, about two minutes
#
# Writes perf/lb/RESULTS.md (the table) and perf/lb/results.json. Run it on an idle
# machine: the CPU columns are the whole host's.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
if [ "$(id -u)" -ne 0 ]; then
    echo "perf/lb/run.sh: needs root (network namespaces, nftables, tc)" >&2
    exit 1
fi
cd "$root"
cargo build --release -q -p mptcp-lb --example fleet_bench
{
    echo "# Fleet benchmark ($(date -u +%Y-%m-%d), $(uname -r), $(nproc) CPUs)"
    echo
    echo "Reproduce: \`perf/lb/run.sh $*\` (root)."
    echo
    target/release/examples/fleet_bench --json "$here/results.json" "$@"
    sed -n '/^How to read it/,$p' "$here/NOTES.md"
} | tee "$here/RESULTS.md.new"
mv "$here/RESULTS.md.new" "$here/RESULTS.md"
