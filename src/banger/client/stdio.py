"""`banger daemon stdio`: this process's stdin and stdout relayed to bangerd's socket, the
remote end of banger.client.sshtransport (as `docker system dial-stdio` is docker's)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading


def relay(socket_path: str, stdin_fd: int = 0, stdout_fd: int = 1) -> None:
    """Until bangerd closes the connection; a client that goes away (stdin at its end)
    closes it too, so the daemon sees the disconnect as it would locally."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(socket_path)

    def upstream() -> None:
        try:
            while data := os.read(stdin_fd, 65536):
                sock.sendall(data)
        except OSError:
            pass
        # The client's side is gone (it never half-closes while it waits for an answer).
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    threading.Thread(target=upstream, daemon=True).start()
    try:
        while data := sock.recv(65536):
            view = memoryview(data)
            while view:
                view = view[os.write(stdout_fd, view):]
    except OSError:
        pass
    finally:
        sock.close()
