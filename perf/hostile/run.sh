#!/usr/bin/env bash
# Hostile clients against `mptcp proxy` (relay), its gateway roles (SOCKS5, HTTP
# CONNECT, the RFC 8803 converter) and `mptcp exporter`, on loopback only, with
# HAProxy beside the relay for reference. As root. Writes
# perf/hostile/RESULTS.md and results.json.
#   perf/hostile/run.sh [--idle N] [--seconds S] [--attacker-cpu N] [--good N]
#                       [--rounds N] [--targets "LIST"]
# Targets (default: relay haproxy socks5 http_connect convert exporter):
#   relay         mptcp proxy --listen --to: MPTCP sockets on both sides (the
#                 clients and the upstream are plain TCP: fallback)
#   relay_tcp     the same with --listen-tcp --to-tcp (plain TCP sockets)
#   haproxy       HAProxy 2.6 in TCP mode under `mptcpize run` (MPTCP sockets,
#                 as the relay; as perf/proxy/compare.sh runs it)
#   haproxy_tcp   HAProxy with plain TCP sockets
#   socks5 http_connect convert exporter
# HAProxy gets the relay's attack (kind relay), one thread on the daemons' core,
# the same backlog and idle timeout. Each round runs every target once; with
# several rounds the table gives each target's median and every round's ratio
# (one round's p99 moves by about half a millisecond, most of an idle figure).
# The attackers run on one core (default the last; -1: anywhere), as if on
# another host; the daemons, the upstream and the good client (a process of its
# own, see hostile.py) on the other cores, in both phases.
# MPTCP_BIN: the mptcp binary to test (default: build it in release mode);
# RELAY_ARGS: more arguments for the relay and relay_tcp (e.g. "--threads 1").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
idle=5000 seconds=30 attacker_cpu=$(( $(nproc) - 1 )) good=1000 rounds=1
targets="relay haproxy socks5 http_connect convert exporter"
usage="usage: $0 [--idle N] [--seconds S] [--attacker-cpu N] [--good N] [--rounds N] [--targets LIST]"
while [ $# -gt 0 ]; do
    case $1 in
        --idle) idle=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --attacker-cpu) attacker_cpu=$2; shift 2 ;;
        --good) good=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --targets) targets=$2; shift 2 ;;
        *) echo "$usage" >&2; exit 2 ;;
    esac
done
want() { [[ " $targets " == *" $1 "* ]]; }
for t in $targets; do
    case $t in
        relay|relay_tcp|haproxy|haproxy_tcp|socks5|http_connect|convert|exporter) ;;
        *) echo "unknown target $t; $usage" >&2; exit 2 ;;
    esac
done
if [ "$attacker_cpu" -ge 0 ] && [ "$(nproc)" -gt 1 ]; then
    server_cpus=$(seq -s, 0 $(( $(nproc) - 1 )) | tr ',' '\n' | grep -vx "$attacker_cpu" | paste -sd,)
else
    server_cpus=$(seq -s, 0 $(( $(nproc) - 1 )))
fi
[ "$(id -u)" = 0 ] || { echo "run as root (the daemons raise their descriptor limit)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is missing" >&2; exit 1; }
if { want haproxy || want haproxy_tcp; } && ! command -v haproxy >/dev/null; then
    echo "haproxy is missing (a reference row): apt-get install haproxy, or leave it out of --targets" >&2; exit 1
fi
if want haproxy && ! command -v mptcpize >/dev/null; then
    echo "mptcpize is missing (the haproxy row runs under it): apt-get install mptcpd, or pick haproxy_tcp" >&2; exit 1
fi
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
declare -A port pid metrics
port=([relay]=$base [socks5]=$((base + 1)) [http_connect]=$((base + 2)) [convert]=$((base + 3))
      [exporter]=$((base + 4)) [relay_tcp]=$((base + 8)) [haproxy]=$((base + 9)) [haproxy_tcp]=$((base + 10)))
metrics=([relay]=$((base + 5)) [socks5]=$((base + 6)) [convert]=$((base + 7)) [relay_tcp]=$((base + 11)))
metrics[http_connect]=${metrics[socks5]}
start() { # name command...
    local name=$1; shift
    taskset -c "$server_cpus" "$@" >/dev/null 2>"$here/.$name.err" & pid[$name]=$!; pids+=($!)
}
want relay && start relay "$MPTCP_BIN" proxy --listen 127.0.0.1:${port[relay]} --to 127.0.0.1:$echo_port \
    --metrics 127.0.0.1:${metrics[relay]} ${RELAY_ARGS:-}
want relay_tcp && start relay_tcp "$MPTCP_BIN" proxy --listen 127.0.0.1:${port[relay_tcp]} --to 127.0.0.1:$echo_port \
    --listen-tcp --to-tcp --metrics 127.0.0.1:${metrics[relay_tcp]} ${RELAY_ARGS:-}
if want socks5 || want http_connect; then
    start socks5 "$MPTCP_BIN" proxy --socks5 127.0.0.1:${port[socks5]} --http-connect 127.0.0.1:${port[http_connect]} \
        --metrics 127.0.0.1:${metrics[socks5]}
    pid[http_connect]=${pid[socks5]}
fi
want convert && start convert "$MPTCP_BIN" proxy --convert 127.0.0.1:${port[convert]} --allow 127.0.0.0/8 \
    --metrics 127.0.0.1:${metrics[convert]}
want exporter && start exporter "$MPTCP_BIN" exporter --listen 127.0.0.1:${port[exporter]}
# As `mptcp proxy --listen` is run; as many connections as the descriptor limit
# allows (two descriptors each).
haproxy_cfg() { # port
    "$here/../haproxy-relay.cfg.sh" "$1" "$echo_port" $(( $(ulimit -n) / 2 - 100 ))
}
if want haproxy; then
    haproxy_cfg "${port[haproxy]}" > "$here/.haproxy.cfg"
    start haproxy mptcpize run haproxy -db -f "$here/.haproxy.cfg"
fi
if want haproxy_tcp; then
    haproxy_cfg "${port[haproxy_tcp]}" > "$here/.haproxy-tcp.cfg"
    start haproxy_tcp haproxy -db -f "$here/.haproxy-tcp.cfg"
fi
sleep 2
rm -f "$here/.haproxy.cfg" "$here/.haproxy-tcp.cfg"
for t in $targets; do
    kill -0 "${pid[$t]}" 2>/dev/null || { echo "$t did not start: $(cat "$here/.$t.err" 2>/dev/null)" >&2; exit 1; }
done
rm -f "$here"/.*.err
out="$here/results.json"
: > "$out"
for round in $(seq "$rounds"); do
    echo "round $round of $rounds" >&2
    for t in $targets; do
        case $t in relay_tcp|haproxy|haproxy_tcp) kind=relay ;; *) kind=$t ;; esac
        python3 "$here/hostile.py" 127.0.0.1:${port[$t]} "$kind" "${pid[$t]}" --idle "$idle" --seconds "$seconds" \
            --attacker-cpu "$attacker_cpu" --good-cpus "$server_cpus" --good "$good" --echo 127.0.0.1:$echo_port \
            --label "$t" | tee -a "$out"
        sleep "$((seconds / 3 + 6))"  # let idle connections time out before the next target
    done
done
refusals() { curl -s "127.0.0.1:$1/metrics" | grep '^mptcp_proxy_errors_total' | awk '$2 > 0' | sed 's/^mptcp_proxy_errors_total//' | tr '\n' ' '; }
{
    echo "# Hostile clients: figures"
    echo
    echo "\`perf/hostile/run.sh --idle $idle --seconds $seconds --attacker-cpu $attacker_cpu --good $good --rounds $rounds --targets \"$targets\"\`"
    echo "${RELAY_ARGS:+(RELAY_ARGS=\"$RELAY_ARGS\") }on $(uname -r), $(nproc) cores, $(date -u +%Y-%m-%d), binary \`$MPTCP_BIN\`."
    echo "Per target: $idle idle connections (never send), 100 clients sending their request one byte a second,"
    echo "garbage and oversized messages and SO_LINGER-0 connect-and-reset storms for ${seconds} s (the exporter also"
    echo "scraped in a tight loop); meanwhile a well-behaved client (a process of its own, blocking sockets) makes"
    echo "$good requests per phase. The attackers run on CPU $attacker_cpu (-1: anywhere); the daemons, the upstream and the"
    echo "good client on CPUs $server_cpus, in both phases (as if the attackers were another host). RSS and descriptors of the daemon"
    echo "sampled from /proc every second. \`haproxy\`: HAProxy $(haproxy -v 2>/dev/null | awk 'NR==1{print $3}') in TCP mode, one thread on the"
    echo "same core and upstream, under \`mptcpize run\` (MPTCP sockets, as the relay); \`haproxy_tcp\` and \`relay_tcp\`: plain"
    echo "TCP sockets (\`--listen-tcp --to-tcp\`); all under the relay's attack. With $rounds round(s): the median of each"
    echo "column over the rounds (junk+reset: the median count; RSS and fds: the highest peak), and each round's ratio."
    echo
    echo "| target | idle conns | junk+reset conns | good p99 idle server | good p99 under attack | ratio | each round | good failed | daemon CPU under attack | RSS start -> peak | fds start -> peak |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    python3 - "$out" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows.setdefault(r.get("target", r["kind"]), []).append(r)
med = lambda rs, k: statistics.median(r[k] for r in rs)
for name, rs in rows.items():
    each = " / ".join(f"{r['p99_ratio']}x" for r in rs)
    failed = sum(r["good_failed_attack"] for r in rs)
    print(f"| {name} | {rs[0]['idle_conns']} | {int(med(rs, 'junk_and_reset_conns'))} | {med(rs, 'p99_idle_ms'):.2f} ms "
          f"| {med(rs, 'p99_attack_ms'):.2f} ms | {med(rs, 'p99_ratio'):.2f}x | {each} | {failed}/{rs[0]['good_requests'] * len(rs)} "
          f"| {med(rs, 'daemon_cpu_s_attack'):.1f} s "
          f"| {rs[0]['rss_kib_start']//1024} -> {max(r['rss_kib_peak'] for r in rs)//1024} MiB "
          f"| {rs[0]['fds_start']} -> {max(r['fds_peak'] for r in rs)} |")
PY
    echo
    echo "Refusals counted by the daemons (\`mptcp_proxy_errors_total\` by route and kind):"
    echo
    for t in relay relay_tcp socks5 convert; do
        want "$t" || { [ "$t" = socks5 ] && want http_connect; } || continue
        echo "- $t$([ "$t" = socks5 ] && echo ' + http_connect'): $(refusals "${metrics[$t]}")"
    done
} > "$here/RESULTS.md"
cat "$here/RESULTS.md"
