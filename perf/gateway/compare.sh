#!/usr/bin/env bash
# One bulk upload through a multipath "router -> server" pair, side by side:
#   - mptcp proxy --socks5 --converter (gateway)  ->  mptcp proxy --convert
#   - sslocal (SOCKS5, --tcp-multipath)           ->  ssserver (--tcp-multipath)
#     with the `none` cipher (transport only) and with aes-256-gcm.
# Three namespaces: c (sender, gateway/sslocal), s (converter/ssserver),
# d (the destination sink), c-s joined by two unshaped veth paths (MPTCP: the
# server announces its second address, the client joins it), s-d by one veth.
# Reports Mbit/s of the upload and CPU seconds per GB of both relay processes.
#
# Needs root, iproute2, python3, a release `mptcp` (cargo build --release -p
# mptcp-cli) and shadowsocks-rust's sslocal/ssserver (SS_BIN, default
# /tmp/ss-root/bin). Usage (as root): perf/gateway/compare.sh [MiB per run] [runs]
# A benchmark, not a test: nothing here asserts.
set -euo pipefail
cd "$(dirname "$0")/../.."
MIB=${1:-1024}
RUNS=${2:-3}
MPTCP=${MPTCP_BIN:-target/release/mptcp}
SS=${SS_BIN:-/tmp/ss-root/bin}
[ -x "$MPTCP" ] || { echo "no $MPTCP: cargo build --release -p mptcp-cli" >&2; exit 1; }
[ -x "$SS/sslocal" ] && [ -x "$SS/ssserver" ] || { echo "no sslocal/ssserver in $SS" >&2; exit 1; }
P=gwcmp$$
C=${P}c S=${P}s D=${P}d
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    for n in $C $S $D; do ip netns del "$n" 2>/dev/null || true; done
}
trap cleanup EXIT
for n in $C $S $D; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip link add ${P}c0 netns $C type veth peer name ${P}s0 netns $S
ip link add ${P}c1 netns $C type veth peer name ${P}s1 netns $S
ip link add ${P}s2 netns $S type veth peer name ${P}d0 netns $D
ip -n $C addr add 198.18.0.1/24 dev ${P}c0; ip -n $S addr add 198.18.0.2/24 dev ${P}s0
ip -n $C addr add 198.18.1.1/24 dev ${P}c1; ip -n $S addr add 198.18.1.2/24 dev ${P}s1
ip -n $S addr add 198.19.100.1/24 dev ${P}s2; ip -n $D addr add 198.19.100.2/24 dev ${P}d0
for l in "$C ${P}c0" "$C ${P}c1" "$S ${P}s0" "$S ${P}s1" "$S ${P}s2" "$D ${P}d0"; do
    set -- $l; ip -n "$1" link set "$2" up
done
ip -n $S mptcp endpoint add 198.18.1.2 dev ${P}s1 signal
ip -n $S mptcp limits set subflows 2 add_addr_accepted 2
ip -n $C mptcp limits set subflows 2 add_addr_accepted 2
sleep 1

cat > /tmp/$P-sink.py <<'EOF'
import socket
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("0.0.0.0", 7000)); l.listen()
while True:
    c, _ = l.accept(); buf = bytearray(1 << 20); n = 0
    while True:
        k = c.recv_into(buf)
        if not k: break
        n += k
    c.sendall(n.to_bytes(8, "big")); c.close()
EOF
cat > /tmp/$P-send.py <<'EOF'
import socket, sys, time
port, mib = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
s.sendall(bytes([5, 1, 0])); assert s.recv(2) == bytes([5, 0])
s.sendall(bytes([5, 1, 0, 1, 198, 19, 100, 2, 0x1b, 0x58]))
r = b""
while len(r) < 10: r += s.recv(10 - len(r))
assert r[1] == 0, r
chunk = bytes(1 << 20); t = time.time()
for _ in range(mib): s.sendall(chunk)
s.shutdown(socket.SHUT_WR)
n = int.from_bytes(s.recv(8), "big"); dt = time.time() - t
assert n == mib << 20, n
print(f"{n * 8 / dt / 1e6:.0f}")
EOF
ip netns exec $D python3 /tmp/$P-sink.py & PIDS+=($!)
sleep 0.5

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

# measure NAME CLIENT_PID SERVER_PID SOCKS_PORT
measure() {
    local name=$1 cpid=$2 spid=$3 port=$4 rates=() c0 s0 c1 s1
    c0=$(cpu "$cpid"); s0=$(cpu "$spid")
    for _ in $(seq "$RUNS"); do
        rates+=("$(ip netns exec $C python3 /tmp/$P-send.py "$port" "$MIB")")
    done
    c1=$(cpu "$cpid"); s1=$(cpu "$spid")
    local gb
    gb=$(python3 -c "print($MIB * $RUNS / 1024)")
    python3 - "$name" "$TICK" "$gb" "$((c1 - c0))" "$((s1 - s0))" "${rates[@]}" <<'EOF'
import statistics, sys
name, tick, gb, c, s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rates = [int(r) for r in sys.argv[6:]]
print(f"| {name} | {statistics.median(rates)} [{min(rates)}-{max(rates)}] | "
      f"{c / tick / gb:.2f} | {s / tick / gb:.2f} |")
EOF
}

echo "| pair | upload Mbit/s, median [min-max] of $RUNS x $MIB MiB | client-side CPU-s/GB | server-side CPU-s/GB |"
echo "|---|---|---|---|"
ip netns exec $S "$MPTCP" proxy --convert 0.0.0.0:5124 --allow 198.18.0.0/16 \
    --allow-private-destinations >/dev/null & SPID=$!; PIDS+=($SPID)
ip netns exec $C "$MPTCP" proxy --socks5 127.0.0.1:1080 --converter 198.18.0.2:5124 \
    >/dev/null & CPID=$!; PIDS+=($CPID)
sleep 1
measure "mptcp gateway + converter" $CPID $SPID 1080
kill $CPID $SPID; wait $CPID $SPID 2>/dev/null || true

for method in none aes-256-gcm; do
    key=$(python3 -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())")
    ip netns exec $S "$SS/ssserver" --tcp-multipath -s 0.0.0.0:8388 -m $method -k "$key" \
        >/dev/null 2>&1 & SPID=$!; PIDS+=($SPID)
    ip netns exec $C "$SS/sslocal" --tcp-multipath -b 127.0.0.1:1081 -s 198.18.0.2:8388 \
        -m $method -k "$key" >/dev/null 2>&1 & CPID=$!; PIDS+=($CPID)
    sleep 1
    measure "sslocal + ssserver ($method)" $CPID $SPID 1081
    kill $CPID $SPID; wait $CPID $SPID 2>/dev/null || true
done
rm -f /tmp/$P-sink.py /tmp/$P-send.py
