#!/usr/bin/env bash
# An MPTCP connection whose third ACK and first data are lost for a moment becomes
# plain TCP (Linux 6.18): the server's kernel completes the handshake from the
# first later segment that lacks MP_CAPABLE and falls back (MPCapableFallbackACK),
# and the client's follows when the server's first plain segment arrives
# (MPCapableDataFallback). The connection is then on one path for life.
#
# Why a relay's record says `upstream_fell_back_later` when such a connection fails
# (crates/mptcp-proxy/src/lib.rs, "Connections that fall back after the handshake";
# the test `a_dial_that_falls_back_after_the_handshake_is_recorded_when_it_fails` in
# crates/mptcp-proxy/tests/chain.rs), and why the chaos soak counts those failures
# apart.
#
# As root; no Rust involved (two Python sockets). Two namespaces joined by two veth
# paths (perf/two-path-netns.sh); the server drops everything but SYNs from the
# client for HOLD seconds from before the dial, so the SYN and SYN-ACK pass and the
# client's next packets (third ACK, 24 bytes of data, their retransmissions) are
# lost; then the path is clean again. Prints, per HOLD, what each side reports and
# the MPTCP counters that moved.
#   perf/proxy/late_fallback.sh [HOLD ...]        (seconds; default: 1 3 6)
# Measured on 6.18: see the end of this file.
set -euo pipefail
# shellcheck source=perf/two-path-netns.sh
. "$(dirname "$0")/../two-path-netns.sh"
two_path_needs python3 iptables nstat
holds=("$@"); [ ${#holds[@]} -gt 0 ] || holds=(1 3 6)
run() {
    local hold=$1 c=lfbc$$ s=lfbs$$
    # shellcheck disable=SC2064
    trap "ip netns del $c 2>/dev/null || true; ip netns del $s 2>/dev/null || true" RETURN EXIT
    two_path_netns "$c" "$s"
    local rule=(INPUT -p tcp --dport 5000 ! --syn -j DROP)
    ip netns exec "$s" iptables -w -A "${rule[@]}"
    local out; out=$(mktemp)
    ip netns exec "$s" python3 - >"$out" <<'PY' &
import socket
l = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)  # IPPROTO_MPTCP
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("0.0.0.0", 5000)); l.listen()
c, _ = l.accept(); c.settimeout(10)
got = b""
try:
    while len(got) < 24:
        b = c.recv(64)
        if not b:
            break
        got += b
    c.send(b"answer")
except OSError:
    pass
print("  server: read %d bytes, TCP_IS_MPTCP %d" % (len(got), c.getsockopt(6, 43)))
PY
    sleep 0.3
    ip netns exec "$c" python3 - <<'PY' &
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
s.connect(("198.18.1.2", 5000))
first = s.getsockopt(6, 43)
s.send(b"0123456789abcdefghijklmn")
s.settimeout(12)
try:
    answer = s.recv(64)
except OSError as e:
    answer = repr(e).encode()
print("  client: TCP_IS_MPTCP %d after connect, %d after the answer (%r)" % (first, s.getsockopt(6, 43), answer))
PY
    sleep "$hold"
    ip netns exec "$s" iptables -w -D "${rule[@]}"
    wait
    cat "$out"; rm -f "$out"
    local host
    for host in "$c" "$s"; do
        echo "  counters ($([ "$host" = "$c" ] && echo client || echo server)): $(ip netns exec "$host" nstat -az \
            | awk '/^MPTcpExt(MPCapable|Fallback|DssFallback)/ && $2 > 0 {printf "%s %s  ", substr($1, 9), $2}')"
    done
}
for h in "${holds[@]}"; do
    echo "== the client's packets after its SYN lost for $h s"
    run "$h"
done
# Measured on 6.18 (2026-12-07):
#   1 s and 3 s: the server reads the 24 bytes as plain TCP (MPCapableFallbackACK), the
#     client is MPTCP after connect() and plain TCP once the answer came
#     (MPCapableDataFallback).
#   6 s: the first segment through carries MP_CAPABLE (MPCapableACKRX): MPTCP on both.
