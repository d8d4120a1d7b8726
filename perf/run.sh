#!/usr/bin/env bash
# Every performance figure of the project in one run, as root (it makes network
# namespaces, sets sysctls and starts daemons):
#
#   perf/run.sh                         # every area, about 25 minutes on 2 cores
#   perf/run.sh --quick                 # every area, short: under 5 minutes once built
#   perf/run.sh --areas proxy,exporter  # some areas only
#
# Writes perf/RESULTS.md and perf/results.json: every target next to its figure (met
# or missed, and why), the machine, and its load average sampled through the run.
# The areas, each with its own entry point (which writes its own, longer report):
#
#   core      mptcp-net against raw sockets, Go, the `mptcp` crate  perf/core/run.sh
#   proxy     mptcp proxy against HAProxy 2.6, MPTCP and TCP legs   perf/proxy/compare.sh
#   gateway   gateway + converter against shadowsocks-rust          perf/gateway/compare.sh
#   exporter  one scrape with 1,000 live MPTCP connections          perf/src/bin/exporter-scrape.rs
#   run       `mptcp run`'s cost per socket()                       perf/mptcp-run/run.sh
#   pm        `mptcp pm run` reacting to a lost link, against mptcpd (the pm failover tests)
#   lb        the balancer fleet: no help, join ports, token steering  perf/lb/run.sh
#
# Benchmarks, not tests: nothing here is part of CI. An area that fails is reported
# as failed (with its log) and the run goes on. Builds are not timed.
set -euo pipefail
perf=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$perf/.." && pwd)

all_areas=(core proxy gateway exporter run pm lb)
areas=("${all_areas[@]}")
quick=0
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1 ;;
    --areas)
        [ $# -ge 2 ] || { echo "perf/run.sh: --areas needs a list, e.g. proxy,exporter" >&2; exit 2; }
        IFS=, read -ra areas <<<"$2"
        for a in "${areas[@]}"; do
            [[ " ${all_areas[*]} " == *" $a "* ]] ||
                { echo "perf/run.sh: unknown area '$a' (areas: ${all_areas[*]})" >&2; exit 2; }
        done
        shift ;;
    -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "perf/run.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ "$(id -u)" -ne 0 ]; then
    echo "perf/run.sh: run it as root (network namespaces, sysctls, daemons)" >&2
    exit 1
fi
for tool in ip tc python3; do
    command -v "$tool" >/dev/null || { echo "perf/run.sh: $tool is missing (apt-get install iproute2 python3)" >&2; exit 1; }
done

out=$(mktemp -d /tmp/mptcp-perf.XXXXXX)
sampler=
cleanup() {
    [ -n "$sampler" ] && kill "$sampler" 2>/dev/null || true
}
trap cleanup EXIT

cd "$root"
echo "== build (not timed)"
cargo build --release --quiet -p mptcp-cli -p mptcp-preload
cargo build --release --quiet -p mptcp-proxy --example loadgen
cargo build --release --quiet -p mptcp-lb --example fleet_bench
cargo build --release --quiet --manifest-path perf/Cargo.toml --bin exporter-scrape
if [[ " ${areas[*]} " == *" pm "* ]]; then
    cargo nextest run --workspace --no-run --cargo-quiet >/dev/null
fi
if [[ " ${areas[*]} " == *" gateway "* ]] && [ $quick = 0 ] && ! [ -x /tmp/ss-root/bin/sslocal ]; then
    echo "== building shadowsocks-rust into /tmp/ss-root (once, a few minutes)"
    cargo install --quiet --locked --root /tmp/ss-root shadowsocks-rust --no-default-features \
        --features "local local-tunnel server multi-threaded aead-cipher"
fi

# The machine's load through the run, every 2 s.
(while true; do cut -d' ' -f1 /proc/loadavg; sleep 2; done) >"$out/load" &
sampler=$!
cut -d' ' -f1-3 /proc/loadavg >"$out/load-before"

# run_area NAME COMMAND...: runs it with its output in $out/NAME.log; records its
# time and exit status.
run_area() {
    local name=$1 t0 rc=0
    shift
    echo "== $name: $*"
    t0=$(date +%s.%N)
    "$@" >"$out/$name.log" 2>&1 || rc=$?
    python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)" \
        >"$out/$name.seconds"
    echo "$rc" >"$out/$name.rc"
    [ "$rc" = 0 ] || echo "   $name failed (exit $rc); its log: $out/$name.log" >&2
}

for area in "${areas[@]}"; do
    case $area in
    core)
        if [ $quick = 1 ]; then run_area core perf/core/run.sh --quick --quiet-wait 10; else run_area core perf/core/run.sh; fi
        cp perf/core/results.json "$out/core.json" 2>/dev/null || true ;;
    proxy)
        if [ $quick = 1 ]; then
            run_area proxy env LEGS=mptcp ROUNDS=1 SECS=1 RELAYS="direct mptcp haproxy" \
                JSON_OUT="$out/proxy-mptcp.json" perf/proxy/compare.sh
        else
            run_area proxy bash -c "
                LEGS=mptcp ROUNDS=5 SECS=3 RELAYS='direct mptcp haproxy' JSON_OUT='$out/proxy-mptcp.json' perf/proxy/compare.sh &&
                LEGS=tcp ROUNDS=5 SECS=3 RELAYS='direct mptcp haproxy' JSON_OUT='$out/proxy-tcp.json' perf/proxy/compare.sh &&
                LEGS=mptcp LOGS=on ROUNDS=3 SECS=3 RELAYS='mptcp haproxy' JSON_OUT='$out/proxy-mptcp-logs.json' perf/proxy/compare.sh &&
                LEGS=mptcp THREADS=2 ROUNDS=3 SECS=3 RELAYS='mptcp haproxy' JSON_OUT='$out/proxy-threads2.json' perf/proxy/compare.sh"
        fi ;;
    gateway)
        if ! [ -x /tmp/ss-root/bin/sslocal ]; then
            echo "shadowsocks-rust is not built (the full run builds it into /tmp/ss-root)" >"$out/gateway.skipped"
            continue
        fi
        if [ $quick = 1 ]; then run_area gateway perf/gateway/compare.sh 128 1
        else run_area gateway perf/gateway/compare.sh 512 3; fi ;;
    exporter)
        if [ $quick = 1 ]; then n=1000 k=10; else n=1000 k=50; fi
        run_area exporter perf/target/release/exporter-scrape --connections $n --scrapes $k ;;
    run)
        if [ $quick = 1 ]; then run_area run perf/mptcp-run/run.sh 5000 3 1
        else run_area run perf/mptcp-run/run.sh 20000 7 3; fi ;;
    pm)
        repeats=3
        [ $quick = 1 ] && repeats=1
        run_area pm bash -c "for i in \$(seq $repeats); do
            cargo nextest run --workspace --no-capture --cargo-quiet \
                -E 'test(=pm_failover_no_carrier_during_a_transfer) | test(=pm_failover_side_by_side_with_mptcpd)' \
                2>&1 | grep -E '^(mptcp pm run|mptcpd addr_adv): ' || exit 1
        done" ;;
    lb)
        run_area lb perf/lb/run.sh
        cp perf/lb/results.json "$out/lb.json" 2>/dev/null || true ;;
    esac
done

kill "$sampler" 2>/dev/null || true
sampler=
cut -d' ' -f1-3 /proc/loadavg >"$out/load-after"
mode=full
[ $quick = 1 ] && mode=quick
python3 "$perf/combine.py" --dir "$out" --mode "$mode" --areas "${areas[*]}" \
    --markdown "$perf/RESULTS.md" --json "$perf/results.json"
echo "== written: perf/RESULTS.md, perf/results.json (logs in $out)"
