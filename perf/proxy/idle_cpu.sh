#!/usr/bin/env bash
# CPU of a relay holding many idle connections: N clients connect through it to
# a tokio echo server, send one byte, get it back, then say nothing; the relay's
# CPU time (utime + stime from /proc) is read over SECS seconds. Loopback only.
#   perf/proxy/idle_cpu.sh [N] [SECS]        (default 5000 connections, 20 s)
# Rows: `mptcp proxy` (MPTCP sockets, the default) and HAProxy 2.6 in TCP mode
# (perf/haproxy-relay.cfg.sh: one thread, 5 min timeouts) when installed. MPTCP_BIN: the mptcp binary
# (default: build it in release mode).
# Measured 2026-12-07 (2 cores, 6.18), 5,000 connections, 20 s: mptcp proxy 0.01-0.02 s
# (0.1 % of a core), HAProxy 0.01 s; 0.66 s (3.3 %) before the relay's idle-timeout watchdog dozed
# (it woke once a second per connection).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
n=${1:-5000} secs=${2:-20}
command -v python3 >/dev/null || { echo "python3 is missing" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $((n * 3 + 100)) ] || { echo "the descriptor limit $(ulimit -n) is too low for $n connections" >&2; exit 1; }
if [ -z "${MPTCP_BIN:-}" ]; then
    (cd "$root" && cargo build --release -q -p mptcp-cli)
    MPTCP_BIN="${CARGO_TARGET_DIR:-$root/target}/release/mptcp"
fi
(cd "$root" && cargo build --release -q -p mptcp-proxy --example loadgen)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
"${CARGO_TARGET_DIR:-$root/target}/release/examples/loadgen" echo 127.0.0.1:0 > "$here/.idle-echo-port" & pids+=($!)
for _ in $(seq 50); do [ -s "$here/.idle-echo-port" ] && break; sleep 0.1; done
echo_port=$(cat "$here/.idle-echo-port"); rm -f "$here/.idle-echo-port"
port=$((20000 + RANDOM % 20000))

measure() { # name pid port
    python3 - "$1" "$2" "$3" "$n" "$secs" <<'PY'
import os, socket, sys, time
name, pid, port, n, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
def cpu():
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
conns = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"x")
    conns.append(s)
for s in conns:
    assert s.recv(1) == b"x", "no echo through the relay"
time.sleep(3)
before = cpu()
time.sleep(secs)
used = cpu() - before
print(f"{name}: {n} idle relayed connections, {used:.2f} CPU-s in {secs:.0f} s ({used / secs * 100:.1f} % of a core)")
PY
}

"$MPTCP_BIN" proxy --listen 127.0.0.1:$port --to 127.0.0.1:$echo_port --no-connection-log >/dev/null 2>&1 & pids+=($!)
sleep 1
measure "mptcp proxy" "$!" "$port"
if command -v haproxy >/dev/null; then
    "$here/../haproxy-relay.cfg.sh" $((port + 1)) "$echo_port" $((n + 1000)) > "$here/.idle-haproxy.cfg"
    haproxy -db -f "$here/.idle-haproxy.cfg" >/dev/null 2>&1 & pids+=($!)
    sleep 1
    rm -f "$here/.idle-haproxy.cfg"
    measure "haproxy" "$!" "$((port + 1))"
else
    echo "haproxy: not installed (apt-get install haproxy for the reference row)"
fi
