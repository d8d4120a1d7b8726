#!/usr/bin/env bash
# System calls per relayed connection: `mptcp proxy` and HAProxy 2.6 side by side,
# counted by `strace -c -f` attached to each relay while the `loadgen` example makes
# WORKERS loops of (dial, 1 KiB request, 1 KiB reply, close) through it for SECS
# seconds, on loopback in a fresh network namespace, MPTCP on both legs (HAProxy under
# `mptcpize run`), one relay thread, no per-connection log lines (as compare.sh).
# strace slows both relays about tenfold; the counts stay exact, and they are divided
# by the connections the load generator completed.
#
#   perf/proxy/syscalls.sh                # 3 s, 8 loops
#   SECS=5 WORKERS=16 perf/proxy/syscalls.sh
#   JSON_OUT=FILE perf/proxy/syscalls.sh  # also the per-connection counts as JSON
#
# A benchmark: it asserts nothing; it prints a Markdown table (calls per connection,
# the most frequent first). Needs root, strace, haproxy and mptcpize (Debian packages
# strace, haproxy, mptcpd; installed when missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${SECS:-3}
WORKERS=${WORKERS:-8}

missing=()
command -v strace >/dev/null || missing+=(strace)
command -v haproxy >/dev/null || missing+=(haproxy)
command -v mptcpize >/dev/null || missing+=(mptcpd)
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
cargo build --release -q -p mptcp-cli
cargo build --release -q -p mptcp-proxy --example loadgen
target_dir=${CARGO_TARGET_DIR:-target}
M=$target_dir/release/mptcp
L=$target_dir/release/examples/loadgen

NS=mptcp-proxy-sys-$$
TMP=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
in_ns() { ip netns exec "$NS" "$@"; }

perf/haproxy-relay.cfg.sh 5301 5201 8000 >"$TMP/haproxy.cfg"

ip netns exec "$NS" "$L" server 127.0.0.1:5201 >/dev/null 2>&1 &
pids+=($!)

wait_listening() { # port
    for _ in $(seq 50); do
        [ -n "$(in_ns ss -Hltn "sport = :$1")" ] && return
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    exit 1
}
wait_listening 5201

for relay in mptcp haproxy; do
    case $relay in
    mptcp) ip netns exec "$NS" "$M" proxy --listen 127.0.0.1:5301 --to 127.0.0.1:5201 --threads 1 \
        --idle-timeout off --no-connection-log >/dev/null 2>&1 & ;;
    haproxy) ip netns exec "$NS" mptcpize run haproxy -db -f "$TMP/haproxy.cfg" >/dev/null 2>&1 & ;;
    esac
    # `ip netns exec` and `mptcpize run` exec the relay: the pid is the relay's
    # (started without a shell function in between, which would be a subshell).
    relay_pid=$!
    pids+=("$relay_pid")
    wait_listening 5301
    strace -c -f -p "$relay_pid" -o "$TMP/$relay.strace" 2>"$TMP/$relay.strace.err" &
    strace_pid=$!
    sleep 0.5
    kill -0 "$strace_pid" 2>/dev/null || { echo "strace -p $relay_pid: $(cat "$TMP/$relay.strace.err")" >&2; exit 1; }
    in_ns "$L" rate 127.0.0.1:5301 "$SECS" "$WORKERS" >"$TMP/$relay.rate"
    sleep 0.3
    kill -INT "$strace_pid"
    wait "$strace_pid" 2>/dev/null || true
    kill -TERM "$relay_pid"
    wait "$relay_pid" 2>/dev/null || true
    echo "$relay: $(cat "$TMP/$relay.rate")" >&2
    sleep 0.3
done

python3 - "$TMP" "$SECS" "$WORKERS" "$(uname -r)" "${JSON_OUT:-}" <<'PY'
import json, sys
tmp, secs, workers, kernel, json_out = sys.argv[1:]
relays = ("mptcp", "haproxy")
per_conn, conns = {}, {}
for relay in relays:
    rate = json.load(open(f"{tmp}/{relay}.rate"))
    n = rate["connections"]
    if n == 0:
        sys.exit(f"{relay}: the load generator completed no connection ({rate})")
    conns[relay] = n
    counts = {}
    for line in open(f"{tmp}/{relay}.strace"):
        fields = line.split()
        # "% time seconds usecs/call calls [errors] syscall"; the header, rules and
        # the total line are skipped.
        if len(fields) not in (5, 6) or fields[-1] == "total" or not fields[3].isdigit():
            continue
        counts[fields[-1]] = int(fields[3])
    per_conn[relay] = {name: calls / n for name, calls in counts.items()}
names = sorted(set().union(*per_conn.values()),
               key=lambda s: -max(per_conn[r].get(s, 0) for r in relays))
print(f"System calls per connection (dial, 1 KiB request, 1 KiB reply, close), MPTCP legs, "
      f"one relay thread, Linux {kernel}; {workers} loops for {secs} s under strace: "
      f"mptcp proxy {conns['mptcp']} connections, HAProxy {conns['haproxy']}.\n")
print("| system call | mptcp proxy | HAProxy |")
print("|---|---|---|")
def fmt(v):
    return "0" if v == 0 else f"{v:.2f}"
for name in names:
    m, h = per_conn["mptcp"].get(name, 0), per_conn["haproxy"].get(name, 0)
    if max(m, h) < 0.005:
        continue
    print(f"| {name} | {fmt(m)} | {fmt(h)} |")
print(f"| **total** | **{sum(per_conn['mptcp'].values()):.1f}** | "
      f"**{sum(per_conn['haproxy'].values()):.1f}** |")
if json_out:
    json.dump({"secs": float(secs), "workers": int(workers), "connections": conns,
               "per_connection": per_conn}, open(json_out, "w"), indent=1)
PY
