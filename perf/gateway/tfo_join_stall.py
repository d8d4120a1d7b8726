#!/usr/bin/env python3
"""MPTCP + TCP Fast Open + a joined subflow: the transfer stalls (Linux 6.18).

Why `mptcp proxy --fastopen` is opt-in (see crates/mptcp-proxy/src/gateway/mod.rs).
No Rust involved: an MPTCP server (TCP_FASTOPEN) sends 3 MiB per connection to an
MPTCP client (TCP_FASTOPEN_CONNECT, 24 bytes in the SYN once it has a cookie).

Run on a 2-path network whose client opens a second subflow (mptcp-testnet's
default endpoints), net.ipv4.tcp_fastopen=1 on the client, 3 on the server:
    ip netns exec SERVER python3 tfo_join_stall.py server - tfo
    ip netns exec CLIENT python3 tfo_join_stall.py client SERVER_ADDR tfo
and the same with `plain` instead of `tfo` on both sides.

Measured on Linux 6.18 (2 unshaped veth paths): plain 2-206 ms per transfer;
tfo 5 ms for the first (no cookie yet: no data in the SYN), then 12.9-19.0 s
for each of the next five. With one subflow per connection, or on loopback,
tfo is as fast as plain.
"""
import socket
import sys
import time

IPPROTO_MPTCP = 262
TCP_FASTOPEN = 23
TCP_FASTOPEN_CONNECT = 30
N = 3 << 20

role, addr, mode = sys.argv[1], sys.argv[2], sys.argv[3]
if role == "server":
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if mode == "tfo":
        listener.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN, 16)
    listener.bind(("0.0.0.0", 7777))
    listener.listen()
    print("ready", flush=True)
    while True:
        conn, _ = listener.accept()
        conn.recv(24)
        conn.sendall(b"x" * N)
        conn.close()
else:
    for i in range(6):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
        s.settimeout(30)
        started = time.time()
        if mode == "tfo":
            s.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 1)
        s.connect((addr, 7777))
        s.send(b"a" * 24)
        got = 0
        while True:
            b = s.recv(1 << 16)
            if not b:
                break
            got += len(b)
        print(mode, i, got, round(time.time() - started, 3), flush=True)
        s.close()
