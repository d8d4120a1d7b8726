#!/usr/bin/env bash
# mptcp proxy side by side with the other relays, on loopback in a fresh network
# namespace, MPTCP on both legs (LEGS=tcp: plain TCP on both legs):
#
#   direct        no relay (the ceiling)
#   mptcp         mptcp proxy as it runs by default (copy through a 1 MiB bulk buffer)
#   mptcp-splice  mptcp proxy --splice (splice(2) between plain TCP sockets only: on
#                 MPTCP legs it copies as the default does)
#   haproxy       Debian's HAProxy 2.6, TCP mode, under `mptcpize run` (MPTCP legs)
#   socat         socat TCP-LISTEN,fork under `mptcpize run` (MPTCP legs)
#   shadowsocks   sslocal (tunnel) + ssserver, --tcp-multipath (MPTCP), method "none"
#
# Like with like: with LOGS=off (the default) neither relay writes a line per
# connection (the proxy runs with --no-connection-log; HAProxy has no log
# directive); with LOGS=on both do (the proxy's default lines; HAProxy `option
# tcplog` to stdout), both to /dev/null.
# RELAYS="direct mptcp haproxy" picks the rows; THREADS=N runs the proxy
# with --threads N and HAProxy with nbthread N (socat and shadowsocks as they are).
#
# Per relay and round: one bulk connection for SECS seconds (`mptcp bench`), and the
# connection rate of WORKERS loops of (dial, 1 KiB request, 1 KiB reply, close) for
# SECS seconds (the `loadgen` example). The relay's CPU time (its processes,
# children included) gives CPU seconds per GB and per 10k connections. Every relay
# runs on one thread. Figures: median [min-max] over ROUNDS rounds, odd rounds in
# reverse order. A benchmark: it asserts nothing; it prints a Markdown table.
#
#   perf/proxy/compare.sh                 # 3 rounds of 3 s
#   ROUNDS=5 SECS=5 perf/proxy/compare.sh > perf/proxy/RESULTS.md
#   LEGS=tcp THREADS=2 RELAYS="direct mptcp haproxy" perf/proxy/compare.sh
#   JSON_OUT=FILE ...                    # also writes every round's figures as JSON
#                                        # (perf/run.sh reads them)
#
# Needs root, python3, mptcpize (Debian package mptcpd), haproxy and socat
# (installed when missing), and shadowsocks-rust's sslocal/ssserver on PATH or
# under SS_ROOT/bin: when missing they are built with `cargo install` into
# SS_ROOT (a few minutes, once); SKIP_SS=1 leaves that row out instead.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-3}
WORKERS=${WORKERS:-16}
LEGS=${LEGS:-mptcp}
THREADS=${THREADS:-1}
LOGS=${LOGS:-off}
case $LOGS in
off) PROXY_LOG=(--no-connection-log); HAPROXY_LOG="" ;;
on) PROXY_LOG=(); HAPROXY_LOG="    log stdout format raw local0 info" ;;
*) echo "LOGS must be on or off" >&2; exit 2 ;;
esac
case $LEGS in
mptcp) MPTCPIZE=(mptcpize run); SS_MPTCP=(--tcp-multipath) ;;
# mptcp-net's process-wide switch: the proxy, bench and loadgen use plain TCP.
tcp) export MPTCP_NET=0; MPTCPIZE=(); SS_MPTCP=() ;;
*) echo "LEGS must be mptcp or tcp" >&2; exit 2 ;;
esac
SS_ROOT=${SS_ROOT:-/tmp/ss-root}
PATH=$PATH:$SS_ROOT/bin

missing=()
command -v haproxy >/dev/null || missing+=(haproxy)
command -v socat >/dev/null || missing+=(socat)
command -v mptcpize >/dev/null || missing+=(mptcpd)
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
cargo build --release -q -p mptcp-cli
cargo build --release -q -p mptcp-proxy --example loadgen
M=target/release/mptcp
L=target/release/examples/loadgen
relays=(direct mptcp mptcp-splice haproxy socat)
if [ -n "${RELAYS:-}" ]; then
    read -ra relays <<<"$RELAYS"
    SKIP_SS=1
fi
if [ -z "${SKIP_SS:-}" ] && ! command -v sslocal >/dev/null; then
    cargo install --locked --root "$SS_ROOT" shadowsocks-rust --no-default-features \
        --features "local local-tunnel server multi-threaded aead-cipher"
fi
if [ -z "${RELAYS:-}" ] && command -v sslocal >/dev/null && command -v ssserver >/dev/null; then
    relays+=(shadowsocks)
fi

NS=mptcp-proxy-cmp-$$
TMP=$(mktemp -d)
cleanup() {
    jobs -p | xargs -r kill 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
in_ns() { ip netns exec "$NS" "$@"; }
HZ=$(getconf CLK_TCK)

cat >"$TMP/haproxy.cfg" <<CFG
global
    maxconn 8000
    nbthread $THREADS
$HAPROXY_LOG
defaults
    mode tcp
$( [ "$LOGS" = on ] && printf '    log global\n    option tcplog\n' )
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend relay
    bind 127.0.0.1:5301 backlog 4096
    default_backend upstream
backend upstream
    server s 127.0.0.1:5201
CFG

# Starts relay $1 (listening on 5301, relaying to 5201); sets PIDS.
start_relay() {
    PIDS=()
    case $1 in
    direct) return ;;
    mptcp) ip netns exec "$NS" "$M" proxy --listen 127.0.0.1:5301 --to 127.0.0.1:5201 --threads "$THREADS" \
        --idle-timeout off "${PROXY_LOG[@]}" >/dev/null 2>&1 & PIDS=($!) ;;
    mptcp-splice) ip netns exec "$NS" "$M" proxy --listen 127.0.0.1:5301 --to 127.0.0.1:5201 --threads "$THREADS" \
        --idle-timeout off --splice "${PROXY_LOG[@]}" >/dev/null 2>&1 & PIDS=($!) ;;
    haproxy) ip netns exec "$NS" "${MPTCPIZE[@]}" haproxy -db -f "$TMP/haproxy.cfg" >/dev/null 2>&1 & PIDS=($!) ;;
    socat) ip netns exec "$NS" "${MPTCPIZE[@]}" socat TCP-LISTEN:5301,bind=127.0.0.1,fork,reuseaddr,backlog=4096 \
        TCP:127.0.0.1:5201 >/dev/null 2>&1 & PIDS=($!) ;;
    shadowsocks)
        ip netns exec "$NS" ssserver -s 127.0.0.1:8388 -m none -k x "${SS_MPTCP[@]}" --single-threaded >/dev/null 2>&1 &
        PIDS=($!)
        ip netns exec "$NS" sslocal --protocol tunnel -b 127.0.0.1:5301 -s 127.0.0.1:8388 -m none -k x \
            --forward-addr 127.0.0.1:5201 "${SS_MPTCP[@]}" --single-threaded >/dev/null 2>&1 &
        PIDS+=($!) ;;
    esac
    for _ in $(seq 50); do
        # Listening is enough; a probe connection would reach the bench server.
        [ -n "$(in_ns ss -Hltn 'sport = :5301')" ] && return
        sleep 0.1
    done
    echo "relay $1 did not start" >&2
    exit 1
}

stop_relay() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    sleep 0.2
}

# CPU seconds of the relay's processes so far (their waited-for children too).
relay_cpu() {
    local total=0
    for p in "${PIDS[@]}"; do
        # `ip netns exec` and `mptcpize run` exec the relay, so the pid is the relay's.
        total=$(awk -v hz="$HZ" -v t="$total" '{printf "%.3f", t + ($14+$15+$16+$17)/hz}' \
            "/proc/$p/stat" 2>/dev/null || echo "$total")
    done
    echo "$total"
}

ip netns exec "$NS" "$L" server 127.0.0.1:5201 >/dev/null 2>&1 &
RATE_SERVER=$!
sleep 0.3

for round in $(seq "$ROUNDS"); do
    order=("${relays[@]}")
    if [ $((round % 2)) = 1 ]; then
        order=()
        for ((i = ${#relays[@]} - 1; i >= 0; i--)); do order+=("${relays[i]}"); done
    fi
    for relay in "${order[@]}"; do
        target=5301
        [ "$relay" = direct ] && target=5202
        # Throughput: the bench server on 5202 for direct, else behind the relay on 5201
        # (the loadgen server is moved aside meanwhile).
        kill "$RATE_SERVER"; wait "$RATE_SERVER" 2>/dev/null || true
        port=5201
        [ "$relay" = direct ] && port=5202
        ip netns exec "$NS" "$M" --json bench server --listen 127.0.0.1:$port --count 1 >/dev/null &
        bench=$!
        sleep 0.3
        start_relay "$relay"
        c0=$(relay_cpu)
        summary=$(in_ns "$M" --json bench client 127.0.0.1:$target --time "$SECS" | grep '"summary"')
        sleep 0.3
        c1=$(relay_cpu)
        wait "$bench" || true
        stop_relay
        # Connection rate.
        port=5201
        ip netns exec "$NS" "$L" server 127.0.0.1:5201 >/dev/null 2>&1 &
        RATE_SERVER=$!
        sleep 0.3
        [ "$relay" = direct ] && target=5201
        start_relay "$relay"
        c2=$(relay_cpu)
        rate=$(in_ns "$L" rate 127.0.0.1:$target "$SECS" "$WORKERS")
        c3=$(relay_cpu)
        stop_relay
        python3 - "$relay" "$summary" "$rate" "$c0" "$c1" "$c2" "$c3" >>"$TMP/rows" <<'PY'
import json, sys
relay, summary, rate, c0, c1, c2, c3 = sys.argv[1:]
s, r = json.loads(summary), json.loads(rate)
gb = s["bytes"] / 1e9
print(relay, "%.0f" % s["mbit_per_s"], "%.3f" % ((float(c1) - float(c0)) / gb),
      r["per_s"], r["errors"], "%.3f" % ((float(c3) - float(c2)) / max(r["connections"], 1) * 1e4))
PY
        echo "round $round: $(tail -1 "$TMP/rows")" >&2
    done
done

python3 - "$TMP/rows" "$ROUNDS" "$SECS" "$WORKERS" "$(uname -r)" "$(cut -d' ' -f1-3 /proc/loadavg)" \
    "${relays[*]}" "$LEGS" "$THREADS" "${JSON_OUT:-}" "$LOGS" <<'PY'
import json, statistics as st, sys
path, rounds, secs, workers, kernel, load, relays, legs, threads, json_out, logs = sys.argv[1:]
relays = relays.split()
rows = [l.split() for l in open(path)]
if json_out:
    # Every round's figures, by relay: perf/run.sh takes medians and ratios from them.
    keys = ["mbit_per_s", "cpu_s_per_gb", "conns_per_s", "errors", "cpu_s_per_10k_conns"]
    by_relay = {r: {k: [float(x[i + 1]) for x in rows if x[0] == r] for i, k in enumerate(keys)}
                for r in relays}
    json.dump({"legs": legs, "threads": int(threads), "rounds": int(rounds), "secs": float(secs),
               "workers": int(workers), "logs": logs, "load_at_end": load, "relays": by_relay},
              open(json_out, "w"), indent=1)
def col(relay, i):
    return [float(x[i]) for x in rows if x[0] == relay]
def med(relay, i):
    return st.median(col(relay, i))
def fmt(v, d=0):
    return f"{st.median(v):.{d}f} [{min(v):.{d}f}-{max(v):.{d}f}]"
print(f"Loopback, {legs.upper() if legs == 'tcp' else 'MPTCP'} on both legs, {threads} relay "
      f"thread(s), a line per connection: {logs}; Linux {kernel}, load average {load} at the end; "
      f"{rounds} rounds, {secs} s per measurement, {workers} connection loops; median [min-max].\n")
print("| relay | throughput Mbit/s | relay CPU-s per GB | connections/s | errors | relay CPU-s per 10k conns |")
print("|---|---|---|---|---|---|")
for relay in relays:
    if relay == "direct":
        cpu_gb = cpu_c = "-"
    else:
        cpu_gb, cpu_c = fmt(col(relay, 2), 2), fmt(col(relay, 5), 2)
    print(f"| {relay} | {fmt(col(relay, 1))} | {cpu_gb} | {fmt(col(relay, 3))} | "
          f"{int(sum(col(relay, 4)))} | {cpu_c} |")
print()
# Ratios of medians; CPU ratios below 1 mean less CPU than the other relay.
for mine in ("mptcp", "mptcp-splice"):
    if mine not in relays:
        continue
    if "direct" in relays:
        print(f"- {mine} / direct (the limit): throughput {med(mine, 1) / med('direct', 1):.2f}x, "
              f"connection rate {med(mine, 3) / med('direct', 3):.2f}x")
    for other in ("haproxy", "socat", "shadowsocks"):
        if other in relays:
            print(f"- {mine} / {other}: throughput {med(mine, 1) / med(other, 1):.2f}x, "
                  f"connection rate {med(mine, 3) / med(other, 3):.2f}x, "
                  f"CPU per GB {med(mine, 2) / med(other, 2):.2f}x, "
                  f"CPU per connection {med(mine, 5) / med(other, 5):.2f}x")
PY
