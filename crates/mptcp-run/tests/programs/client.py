"""Test client for `mptcp run`: dials 127.0.0.1:PORT, sends an HTTP/1.0
request, prints the reply. With `user-timeout`, sets TCP_USER_TIMEOUT before
connect (an option MPTCP sockets refuse with ENOPROTOOPT on Linux 6.18)."""
import socket
import sys

port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
if len(sys.argv) > 2 and sys.argv[2] == "user-timeout":
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 5000)
s.settimeout(10)
s.connect(("127.0.0.1", port))
s.sendall(b"GET / HTTP/1.0\r\n\r\n")
reply = b""
while True:
    chunk = s.recv(512)
    if not chunk:
        break
    reply += chunk
sys.stdout.write(reply.decode())
