"""A small HTTP/1.1 client over a Unix socket, for the CLI's hot path.

`http.client` drags in the `email` package (~15 ms per CLI call); banger's daemon only ever
answers with Content-Length or chunked bodies, so this handles exactly those, with the same
connection/response surface the client uses."""

from __future__ import annotations

import socket


class HTTPResponse:
    def __init__(self, sock: socket.socket) -> None:
        self._file = sock.makefile("rb")
        status_line = self._file.readline().decode("latin-1").rstrip("\r\n")
        if not status_line:
            raise ConnectionResetError("bangerd closed the connection without answering")
        parts = status_line.split(" ", 2)
        self.status = int(parts[1])
        self.reason = parts[2] if len(parts) > 2 else ""
        self.headers: dict[str, str] = {}
        while True:
            line = self._file.readline().decode("latin-1").rstrip("\r\n")
            if not line:
                break
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self._chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        length = self.headers.get("content-length")
        self._remaining = int(length) if length is not None else None
        self._chunk_left = 0
        self._buffer = b""
        self._eof = False

    def _next_piece(self) -> bytes:
        """The next slice of the body, b"" at its end."""
        if self._eof:
            return b""
        if self._chunked:
            if self._chunk_left == 0:
                size_line = self._file.readline()
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self._file.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    self._eof = True
                    return b""
                self._chunk_left = size
            data = self._file.read1(self._chunk_left) if self._chunk_left else b""
            if not data:
                self._eof = True
                return b""
            self._chunk_left -= len(data)
            if self._chunk_left == 0:
                self._file.readline()  # CRLF after each chunk
            return data
        if self._remaining is not None:
            if self._remaining == 0:
                self._eof = True
                return b""
            data = self._file.read1(min(self._remaining, 65536))
            self._remaining -= len(data)
        else:
            data = self._file.read1(65536)
        if not data:
            self._eof = True
        return data

    def read(self) -> bytes:
        pieces = [self._buffer]
        self._buffer = b""
        while piece := self._next_piece():
            pieces.append(piece)
        return b"".join(pieces)

    def readline(self) -> bytes:
        while b"\n" not in self._buffer:
            piece = self._next_piece()
            if not piece:
                line, self._buffer = self._buffer, b""
                return line
            self._buffer += piece
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line + b"\n"

    def close(self) -> None:
        self._file.close()


class UnixHTTPConnection:
    def __init__(self, path: str, timeout: float | None) -> None:
        self._path = path
        self._timeout = timeout
        self._sock: socket.socket | None = None
        self._response: HTTPResponse | None = None

    def request(
        self, method: str, path: str, body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self._timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        lines = [f"{method} {path} HTTP/1.1", "Host: bangerd", "Connection: close"]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(body or b'')}")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))

    def getresponse(self) -> HTTPResponse:
        if self._sock is None:
            raise ConnectionError("request() was not called")
        self._response = HTTPResponse(self._sock)
        return self._response

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
