#!/usr/bin/env bash
# TCP_DEFER_ACCEPT on an MPTCP listener delays every MP_JOIN (Linux 6.18).
#
# Why the converter's listener does not get TCP_DEFER_ACCEPT, though it would
# keep connect-and-reset storms away from accept() (see
# crates/mptcp-proxy/src/gateway/mod.rs): the kernel drops a bare third ACK
# while the defer period runs, and the third ACK of an MP_JOIN handshake is
# one. The server takes the join only after its SYN-ACK retransmissions reach
# the defer count (5 s: three, 1 + 2 + 4 s), so every additional subflow
# starts about 7 s late; the initial subflow is not delayed, since its client
# speaks first.
#
# As root; no Rust involved (two Python sockets). Builds two namespaces
# joined by two veth paths (198.18.1.0/24, 198.18.2.0/24), the server
# signalling its second address, and prints per defer value how long the
# server took to list the joined subflow as established.
#   perf/gateway/defer_accept_join.sh [SECONDS...]     (default: 0 1 5)
# Measured on 6.18 (unshaped veths): 0 -> 0.0 s, 1 -> 1.1 s, 5 -> 7.2-7.4 s.
set -euo pipefail
# shellcheck source=perf/two-path-netns.sh
. "$(dirname "$0")/../two-path-netns.sh"
two_path_needs python3
defers=("$@"); [ ${#defers[@]} -gt 0 ] || defers=(0 1 5)
c=dajc$$ s=dajs$$
cleanup() { ip netns del "$c" 2>/dev/null || true; ip netns del "$s" 2>/dev/null || true; }
trap cleanup EXIT
two_path_netns "$c" "$s"
ip netns exec "$s" ip mptcp endpoint add 198.18.2.2 dev s2 signal
for defer in "${defers[@]}"; do
    ip netns exec "$s" python3 - "$defer" <<'PY' & server=$!
import socket, sys, threading
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)  # IPPROTO_MPTCP
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if int(sys.argv[1]):
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, int(sys.argv[1]))
listener.bind(("0.0.0.0", 5000))  # the join arrives at the second address
listener.listen()
def echo(conn):
    while data := conn.recv(65536):
        conn.sendall(data)
while True:
    conn, _ = listener.accept()
    threading.Thread(target=echo, args=(conn,), daemon=True).start()
PY
    sleep 0.5
    ip netns exec "$c" python3 - "$defer" "$s" <<'PY'
import socket, subprocess, sys, time
conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
start = time.time()
conn.connect(("198.18.1.2", 5000))
conn.sendall(b"hello")
assert conn.recv(5) == b"hello", "no echo"
while time.time() - start < 20:
    ss = ["ip", "netns", "exec", sys.argv[2], "ss", "-tnH", "state", "established", "src", "198.18.2.2"]
    if subprocess.run(ss, capture_output=True, text=True, check=True).stdout.strip():
        print(f"TCP_DEFER_ACCEPT {sys.argv[1]} s: the join established on the server after {time.time() - start:.1f} s")
        break
    time.sleep(0.05)
else:
    print(f"TCP_DEFER_ACCEPT {sys.argv[1]} s: no join within 20 s")
PY
    kill "$server"; wait "$server" 2>/dev/null || true
done
