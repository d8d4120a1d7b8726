#!/usr/bin/env bash
# mptcp proxy on loopback: one bulk connection through the relay, in its three
# ways of moving bytes: copy (the default: 64 KiB, then a 1 MiB bulk buffer),
# copy64k (--bulk-buffer 0: 64 KiB reads and writes throughout), splice (--splice;
# used only between TCP sockets, so on MPTCP legs it copies like the default),
# and nolowat (the default without TCP_NOTSENT_LOWAT: --notsent-lowat 0);
# with MPTCP on both legs and plain TCP on both legs.
# Prints median [min-max] throughput and the proxy's CPU seconds per GB relayed.
#
#   perf/proxy/splice_vs_copy.sh            # 5 rounds of 3 s per mode
#   ROUNDS=9 SECS=5 perf/proxy/splice_vs_copy.sh
#
# Needs root (a fresh network namespace), python3, and a release build of the
# `mptcp` binary (built here if missing). A benchmark: it asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-5}
SECS=${SECS:-3}
M=${M:-target/release/mptcp}
[ -x "$M" ] || cargo build --release -p mptcp-cli
NS=mptcp-proxy-bench-$$
ip netns add "$NS"
trap 'ip netns del "$NS"' EXIT
ip -n "$NS" link set lo up
HZ=$(getconf CLK_TCK)
OUT=$(mktemp)

cpu() { awk -v hz="$HZ" '{printf "%.3f", ($14+$15)/hz}' "/proc/$1/stat"; }

# run FAMILY MODE: one bench client through (or around) the proxy; appends
# "family mode mbit cpu_per_gb" to $OUT.
run() {
    local family=$1 mode=$2 tcp=() ptcp=() extra=() target=127.0.0.1:5201 p=
    if [ "$family" = tcp ]; then tcp=(--tcp); ptcp=(--listen-tcp --to-tcp); fi
    "$M" --netns "$NS" --json bench server --listen 127.0.0.1:5201 --count 1 "${tcp[@]}" >/dev/null &
    local s=$!
    sleep 0.3
    if [ "$mode" != direct ]; then
        [ "$mode" = copy64k ] && extra=(--bulk-buffer 0)
        [ "$mode" = splice ] && extra=(--splice)
        [ "$mode" = nolowat ] && extra=(--notsent-lowat 0)
        "$M" --netns "$NS" proxy --listen 127.0.0.1:5301 --to 127.0.0.1:5201 --threads 1 \
            "${ptcp[@]}" "${extra[@]}" >/dev/null 2>&1 &
        p=$!
        sleep 0.3
        target=127.0.0.1:5301
    fi
    local c0=0 c1=0 summary
    [ -n "$p" ] && c0=$(cpu "$p")
    summary=$("$M" --netns "$NS" --json bench client "$target" --time "$SECS" "${tcp[@]}" | grep '"summary"')
    [ -n "$p" ] && c1=$(cpu "$p")
    if [ -n "$p" ]; then kill -TERM "$p"; wait "$p" || true; fi
    wait "$s" || true
    python3 - "$family" "$mode" "$c0" "$c1" "$summary" >>"$OUT" <<'PY'
import json, sys
family, mode, c0, c1, summary = sys.argv[1:]
d = json.loads(summary)
gb = d["bytes"] / 1e9
print(family, mode, "%.0f" % d["mbit_per_s"], "%.3f" % ((float(c1) - float(c0)) / gb))
PY
}

for round in $(seq "$ROUNDS"); do
    for family in mptcp tcp; do
        modes=(direct splice copy64k nolowat copy)
        # Odd rounds in reverse order, so drift hits every mode alike.
        [ $((round % 2)) = 1 ] && modes=(copy nolowat copy64k splice direct)
        for mode in "${modes[@]}"; do run "$family" "$mode"; done
    done
done

python3 - "$OUT" "$ROUNDS" "$SECS" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
print(f"loopback, one connection, {sys.argv[3]} s x {sys.argv[2]} rounds, median [min-max]")
print(f"{'legs':6} {'mode':7} {'Mbit/s':>22} {'proxy CPU-s per GB':>26}")
for family in ("mptcp", "tcp"):
    for mode in ("direct", "splice", "copy64k", "nolowat", "copy"):
        r = [x for x in rows if x[0] == family and x[1] == mode]
        mb = [float(x[2]) for x in r]
        cpu = [float(x[3]) for x in r]
        c = "-" if mode == "direct" else f"{statistics.median(cpu):.2f} [{min(cpu):.2f}-{max(cpu):.2f}]"
        print(f"{family:6} {mode:7} {statistics.median(mb):>8.0f} [{min(mb):.0f}-{max(mb):.0f}] {c:>26}")
PY
rm -f "$OUT"
