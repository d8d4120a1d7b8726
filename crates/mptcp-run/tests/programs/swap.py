"""Test program for `mptcp run`'s swap to TCP: sets options on a fresh socket,
binds it, then sets TCP_USER_TIMEOUT (refused by MPTCP) and prints, as JSON,
what the socket is before and after: protocol, descriptor, address, options,
flags."""
import json
import socket

s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 100000)
rcvbuf = s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
s.setblocking(False)
s.bind(("127.0.0.1", 0))
before = {
    "protocol": s.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL),
    "fd": s.fileno(),
    "address": s.getsockname(),
}
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 1000)
after = {
    "protocol": s.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL),
    "fd": s.fileno(),
    "address": s.getsockname(),
    "nodelay": s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
    "reuseaddr": s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR),
    "rcvbuf_kept": s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == rcvbuf,
    "blocking": s.getblocking(),
    "inheritable": s.get_inheritable(),
    "user_timeout": s.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
}
s.listen(1)
after["listening"] = s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
print(json.dumps({"before": before, "after": after}))
