#!/usr/bin/env bash
# socket() per second under `mptcp run`, traced and preloaded vs untraced:
#
#   perf/mptcp-run/run.sh [COUNT] [ROUNDS] [REPEATS]   (default 20000 7 3)
#
# Builds `mptcp` and libmptcp_preload.so in release mode, the loop
# (socket_loop.c) static and dynamic, then runs each configuration REPEATS
# times (in turn, so drift hits all alike); each run prints the median of
# ROUNDS rounds of COUNT socket()+close(). Prints the median over the repeats,
# in sockets per second, and the protocol the sockets really had.
# No network traffic: sockets are only created and closed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
count=${1:-20000}
rounds=${2:-7}
repeats=${3:-3}

cargo build --quiet --release --manifest-path "$root/Cargo.toml" -p mptcp-cli -p mptcp-preload
mptcp="$root/target/release/mptcp"
out="$root/target/mptcp-run-perf"
mkdir -p "$out"
cc -O2 -static -o "$out/socket_loop_static" "$here/socket_loop.c"
cc -O2 -o "$out/socket_loop_dynamic" "$here/socket_loop.c"
s="$out/socket_loop_static"
d="$out/socket_loop_dynamic"

configs=(
    "untraced TCP|$s tcp"
    "untraced MPTCP (asks for 262)|$s mptcp"
    "trace: TCP made MPTCP|$mptcp run --mode trace -- $s tcp"
    "untraced TCP, dynamic build|$d tcp"
    "preload: TCP made MPTCP (dynamic build)|$mptcp run --mode preload -- $d tcp"
    "untraced UDP|$s udp"
    "trace: UDP (filter lets it through)|$mptcp run --mode trace -- $s udp"
)
declare -A results
for ((r = 0; r < repeats; r++)); do
    for c in "${configs[@]}"; do
        name=${c%%|*}
        read -r _ rate proto < <(${c#*|} "$count" "$rounds")
        results[$name]+="$rate "
        results[$name.proto]=$proto
    done
done
printf '%-40s %14s %8s  %s\n' configuration "socket()/s" protocol "runs"
for c in "${configs[@]}"; do
    name=${c%%|*}
    median=$(tr ' ' '\n' <<<"${results[$name]}" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    printf '%-40s %14s %8s  %s\n' "$name" "$median" "${results[$name.proto]}" "${results[$name]}"
done
echo "($count sockets x $rounds rounds per run, $repeats runs; $(uname -r), $(nproc) CPUs)"
