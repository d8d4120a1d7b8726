#!/usr/bin/env bash
# Once an MPTCP connection has sent its DATA_FIN, the kernel refuses every new
# subflow of it (Linux 6.18): bytes written just before the FIN, over a path
# that failed meanwhile, cannot be repaired over another path.
#
# Why the relay holds an MPTCP leg's end of stream until the peer acknowledged
# the bytes before it (crates/mptcp-proxy/src/relay.rs, `await_delivery`; the
# test `proxy_answer_then_close_reaches_the_client_over_a_path_opened_later`
# in crates/mptcp-proxy/tests/chain.rs proves it through the relay).
#
# As root; no Rust involved (two Python sockets). Two namespaces joined by two
# veth paths (198.18.1.0/24, 198.18.2.0/24); the client connects over path 1
# and asks; path 1 goes dark (iptables DROP on the server); the server answers
# 9 bytes, then either shuts its write side down at once (`fin`) or first
# waits until the answer is acknowledged (`settle`, SIOCOUTQ == 0); 2 s later
# the client adds an endpoint on path 2, and the in-kernel path manager opens
# a subflow over it. Prints, per mode, whether the answer arrived and the join
# counters of both ends.
#   perf/proxy/data_fin_join.sh [fin|settle ...]      (default: fin settle)
# Measured on 6.18: fin -> nothing within 15 s (the server counts the join's
# SYN, MPJoinAckRx stays 0: the join's third ACK is refused); settle -> the
# answer 0.0 s after the new path was added, over the joined subflow.
set -euo pipefail
# shellcheck source=perf/two-path-netns.sh
. "$(dirname "$0")/../two-path-netns.sh"
two_path_needs python3 iptables nstat
modes=("$@"); [ ${#modes[@]} -gt 0 ] || modes=(fin settle)
run() {
    local mode=$1 c=dfjc$$ s=dfjs$$
    # shellcheck disable=SC2064
    trap "ip netns del $c 2>/dev/null || true; ip netns del $s 2>/dev/null || true" RETURN
    two_path_netns "$c" "$s"
    ip netns exec "$s" python3 - "$mode" <<'PY' &
import fcntl, socket, struct, sys, termios, time
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)  # IPPROTO_MPTCP
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("0.0.0.0", 5000))
listener.listen()
listener.settimeout(10)
conn, _ = listener.accept()
assert conn.recv(2) == b"go"
time.sleep(1.0)  # the client takes path 1 away meanwhile
conn.sendall(b"123456789")
if sys.argv[1] == "settle":
    start = time.time()
    while time.time() - start < 30:  # SIOCOUTQ: written, not yet acknowledged
        if struct.unpack("i", fcntl.ioctl(conn.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0] == 0:
            break
        time.sleep(0.05)
conn.shutdown(socket.SHUT_WR)
time.sleep(20)
PY
    local server=$!
    sleep 0.5
    ip netns exec "$c" python3 - "$mode" "$s" <<'PY'
import socket, subprocess, sys, time
mode, s = sys.argv[1], sys.argv[2]
conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
conn.connect(("198.18.1.2", 5000))
conn.sendall(b"go")
for chain, way in (("INPUT", "-i"), ("OUTPUT", "-o")):
    subprocess.run(["ip", "netns", "exec", s, "iptables", "-w", "-A", chain, way, "s1", "-j", "DROP"], check=True)
time.sleep(2.0)  # the server answers (and, with fin, shuts down) into the dark path
subprocess.run(["ip", "mptcp", "endpoint", "add", "198.18.2.1", "dev", "c2", "subflow"], check=True)
start = time.time()
conn.settimeout(15)
try:
    got = conn.recv(9)
    print(f"{mode}: got {got!r} {time.time() - start:.1f} s after the new path was added")
except socket.timeout:
    print(f"{mode}: nothing within 15 s of the new path")
def counters(prefix, names):
    out = subprocess.run(prefix + ["nstat", "-az"] + names, capture_output=True, text=True, check=True).stdout
    return ", ".join(f"{l.split()[0].removeprefix('MPTcpExt')} {l.split()[1]}" for l in out.splitlines() if l.startswith("MPTcp"))
print("  client:", counters([], ["MPTcpExtMPJoinSynTx", "MPTcpExtMPJoinSynAckRx", "MPTcpExtMPRstRx"]))
print("  server:", counters(["ip", "netns", "exec", s], ["MPTcpExtMPJoinSynRx", "MPTcpExtMPJoinAckRx", "MPTcpExtMPRstTx"]))
PY
    kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true
}
for mode in "${modes[@]}"; do
    case $mode in fin|settle) run "$mode" ;; *) echo "unknown mode $mode (fin or settle)" >&2; exit 2 ;; esac
done
