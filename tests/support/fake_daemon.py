"""A stand-in for bangerd on a Unix socket: canned answers by path (JSON, or raw bytes such
as NDJSON streams), whatever the method; or, silent, a daemon that accepts connections and
never answers."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any

VMS = [{"name": "box"}, {"name": "bold-otter"}, {"name": "web"}]
IMAGES = [{"name": "debian-bookworm"}, {"name": "alpine"}]
KERNELS = [{"name": "generic-6.1", "local": True}]


class FakeDaemon:
    """Answers the list routes on a Unix socket, like bangerd; or never answers at all."""

    def __init__(
        self, path: Path, *, silent: bool = False, routes: dict[str, Any] | None = None
    ) -> None:
        self.path = path
        self.silent = silent
        self.routes = routes or {"/v1/vms": VMS, "/v1/images": IMAGES, "/v1/kernels": KERNELS}
        self.requests: list[str] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(path))
        self._sock.listen(16)
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            if self.silent:
                self._held.append(conn)  # accepted, never answered
                continue
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                path = data.split(b" ", 2)[1].decode()
                self.requests.append(path)
                answer = self.routes.get(path, {"error": {"code": "not_found"}})
                body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
                )

    def close(self) -> None:
        self._sock.close()
        for conn in self._held:
            conn.close()
