"""Test program for `mptcp run`: 4 threads make 100 sockets each at once;
every 25th sets TCP_USER_TIMEOUT (a swap to TCP) and a subprocess makes one
more. Prints the number of sockets that were not what they should be (MPTCP,
or TCP after the swap) and the subprocess's socket protocol."""
import socket
import subprocess
import sys
import threading

wrong = []


def work():
    for i in range(100):
        s = socket.socket()
        if s.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL) != 262:
            wrong.append(("not MPTCP", i))
        if i % 25 == 0:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 1000)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL) != 6:
                wrong.append(("not swapped", i))
        s.close()


threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads:
    t.start()
child = subprocess.run(
    [sys.executable, "-c",
     "import socket; print(socket.socket().getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL))"],
    capture_output=True, text=True, check=True,
).stdout.strip()
for t in threads:
    t.join()
print(f"wrong {len(wrong)} child {child}")
