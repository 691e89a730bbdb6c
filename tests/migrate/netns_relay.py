"""Run a command inside a fresh network namespace, with PostgreSQL still reachable.

Used by test_offline.py as `unshare -n -- python netns_relay.py SOCKET PORT -- CMD…`: it
brings the namespace's own loopback up, relays 127.0.0.1:PORT to the PostgreSQL unix socket
(a file, so reachable from any network namespace) and runs CMD. Nothing else is reachable:
the namespace has no other interface, so the npm registry is not.
"""

from __future__ import annotations

import contextlib
import fcntl
import socket
import struct
import subprocess
import sys
import threading

_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sh22x", b"lo", 0)
        flags = struct.unpack("16sh22x", fcntl.ioctl(s, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", flags | _IFF_UP))


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def _serve(listener: socket.socket, unix_path: str) -> None:
    while True:
        client, _ = listener.accept()
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.connect(unix_path)
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def main(argv: list[str]) -> int:
    socket_dir, port, sep, *command = argv
    assert sep == "--" and command, "usage: netns_relay.py SOCKET_DIR PORT -- CMD..."
    loopback_up()
    listener = socket.create_server(("127.0.0.1", int(port)))
    unix_path = f"{socket_dir}/.s.PGSQL.{port}"
    threading.Thread(target=_serve, args=(listener, unix_path), daemon=True).start()
    return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
