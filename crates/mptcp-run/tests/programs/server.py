"""Test server for `mptcp run`: listens on 127.0.0.1 (a free port, printed on
the first line of stdout), answers one connection with "ok" and exits."""
import socket

s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(8)
print(s.getsockname()[1], flush=True)
s.settimeout(20)
c, _ = s.accept()
c.settimeout(10)
c.recv(512)
c.sendall(b"ok")
c.close()
