#!/usr/bin/env bash
# Hostile clients against `mptcp proxy` (relay), its gateway roles (SOCKS5, HTTP
# CONNECT, the RFC 8803 converter) and `mptcp exporter`, on loopback only.
# As root. Writes perf/hostile/RESULTS.md and results.json.
#   perf/hostile/run.sh [--idle N] [--seconds S] [--attacker-cpu N] [--good N]
# The attackers run on one core (default the last; -1: anywhere), as if on
# another host; the daemons, the upstream and the good client (a process of its
# own, see hostile.py) on the other cores, in both phases.
# MPTCP_BIN: the mptcp binary to test (default: build it in release mode).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
idle=5000 seconds=30 attacker_cpu=$(( $(nproc) - 1 )) good=1000
while [ $# -gt 0 ]; do
    case $1 in
        --idle) idle=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --attacker-cpu) attacker_cpu=$2; shift 2 ;;
        --good) good=$2; shift 2 ;;
        *) echo "usage: $0 [--idle N] [--seconds S] [--attacker-cpu N] [--good N]" >&2; exit 2 ;;
    esac
done
if [ "$attacker_cpu" -ge 0 ] && [ "$(nproc)" -gt 1 ]; then
    server_cpus=$(seq -s, 0 $(( $(nproc) - 1 )) | tr ',' '\n' | grep -vx "$attacker_cpu" | paste -sd,)
else
    server_cpus=$(seq -s, 0 $(( $(nproc) - 1 )))
fi
[ "$(id -u)" = 0 ] || { echo "run as root (the daemons raise their descriptor limit)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is missing" >&2; exit 1; }
if [ -z "${MPTCP_BIN:-}" ]; then
    (cd "$root" && cargo build --release -p mptcp-cli)
    MPTCP_BIN="${CARGO_TARGET_DIR:-$root/target}/release/mptcp"
fi
ulimit -n "$(ulimit -Hn)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
# The upstream: a tokio echo server (a Python one was the bottleneck the good
# client's requests queued in while the relay dialled it for every storm connection).
(cd "$root" && cargo build --release -q -p mptcp-proxy --example loadgen)
taskset -c "$server_cpus" "${CARGO_TARGET_DIR:-$root/target}/release/examples/loadgen" echo 127.0.0.1:0 > "$here/.echo-port" & pids+=($!)
for _ in $(seq 50); do [ -s "$here/.echo-port" ] && break; sleep 0.1; done
echo_port=$(cat "$here/.echo-port"); rm -f "$here/.echo-port"
base=$((20000 + RANDOM % 20000))
relay=$base socks=$((base + 1)) http=$((base + 2)) conv=$((base + 3)) exp=$((base + 4))
taskset -c "$server_cpus" "$MPTCP_BIN" proxy --listen 127.0.0.1:$relay --to 127.0.0.1:$echo_port --metrics 127.0.0.1:$((base + 5)) 2>/dev/null >/dev/null & relay_pid=$!; pids+=($relay_pid)
taskset -c "$server_cpus" "$MPTCP_BIN" proxy --socks5 127.0.0.1:$socks --http-connect 127.0.0.1:$http --metrics 127.0.0.1:$((base + 6)) 2>/dev/null >/dev/null & gw_pid=$!; pids+=($gw_pid)
taskset -c "$server_cpus" "$MPTCP_BIN" proxy --convert 127.0.0.1:$conv --allow 127.0.0.0/8 --metrics 127.0.0.1:$((base + 7)) 2>/dev/null >/dev/null & conv_pid=$!; pids+=($conv_pid)
taskset -c "$server_cpus" "$MPTCP_BIN" exporter --listen 127.0.0.1:$exp 2>/dev/null & exp_pid=$!; pids+=($exp_pid)
sleep 2
out="$here/results.json"
: > "$out"
run() { # kind port pid
    python3 "$here/hostile.py" 127.0.0.1:$2 "$1" "$3" --idle "$idle" --seconds "$seconds" --attacker-cpu "$attacker_cpu" --good-cpus "$server_cpus" --good "$good" --echo 127.0.0.1:$echo_port | tee -a "$out"
    sleep "$((seconds / 3 + 6))"  # let idle connections time out before the next target
}
run relay $relay $relay_pid
run socks5 $socks $gw_pid
run http_connect $http $gw_pid
run convert $conv $conv_pid
run exporter $exp $exp_pid
refusals() { curl -s "127.0.0.1:$1/metrics" | grep '^mptcp_proxy_errors_total' | awk '$2 > 0' | sed 's/^mptcp_proxy_errors_total//' | tr '\n' ' '; }
{
    echo "# Hostile clients: figures"
    echo
    echo "\`perf/hostile/run.sh --idle $idle --seconds $seconds --attacker-cpu $attacker_cpu --good $good\` on $(uname -r), $(nproc) cores, $(date -u +%Y-%m-%d), binary \`$MPTCP_BIN\`."
    echo "Per target: $idle idle connections (never send), 100 clients sending their request one byte a second,"
    echo "garbage and oversized messages and SO_LINGER-0 connect-and-reset storms for ${seconds} s (the exporter also"
    echo "scraped in a tight loop); meanwhile a well-behaved client (a process of its own, blocking sockets) makes"
    echo "$good requests per phase. The attackers run on CPU $attacker_cpu (-1: anywhere); the daemons, the upstream and the"
    echo "good client on CPUs $server_cpus, in both phases (as if the attackers were another host). RSS and descriptors of the daemon"
    echo "sampled from /proc every second."
    echo
    echo "| target | idle conns | junk+reset conns | good p99 idle server | good p99 under attack | ratio | good failed | RSS start -> peak | fds start -> peak |"
    echo "|---|---|---|---|---|---|---|---|---|"
    python3 - "$out" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(f"| {r['kind']} | {r['idle_conns']} | {r['junk_and_reset_conns']} | {r['p99_idle_ms']} ms | {r['p99_attack_ms']} ms | {r['p99_ratio']}x | {r['good_failed_attack']}/{r['good_requests']} | {r['rss_kib_start']//1024} -> {r['rss_kib_peak']//1024} MiB | {r['fds_start']} -> {r['fds_peak']} |")
PY
    echo
    echo "Refusals counted by the daemons (\`mptcp_proxy_errors_total\` by route and kind):"
    echo
    echo "- relay: $(refusals $((base + 5)))"
    echo "- socks5 + http_connect: $(refusals $((base + 6)))"
    echo "- convert: $(refusals $((base + 7)))"
} > "$here/RESULTS.md"
cat "$here/RESULTS.md"
