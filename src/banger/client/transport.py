"""How the client reaches bangerd: `Transport.send` takes one request and gives back its
`Response`. `UnixSocketTransport` speaks HTTP/1.1 over the daemon's socket;
`MemoryTransport` answers from a function, for tests (and SDK users' tests) that want the
real client without a daemon, as httpx's MockTransport does.

The HTTP/1.1 here is small on purpose: `http.client` drags in the `email` package (~15 ms
per CLI call), and banger's daemon only ever answers with Content-Length or chunked bodies,
so this handles exactly those. For the same reason these are plain classes (no `typing`,
no `dataclasses`): the module is on the path of every `banger` call."""

from __future__ import annotations

import json
import socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any


class Response:
    """One answer: its status, and its body read whole or line by line."""

    status: int
    reason: str

    def read(self) -> bytes:
        raise NotImplementedError

    def readline(self) -> bytes:
        raise NotImplementedError

    def read_piece(self) -> bytes:
        """The next piece of the body as it arrives, b"" at its end (a stream's)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class Transport:
    def send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str],
        timeout: float | None,
    ) -> Response:
        """Send one request. A daemon that is not there raises FileNotFoundError or
        ConnectionRefusedError (the client then starts one, if it may)."""
        raise NotImplementedError

    def send_stream(
        self, method: str, path: str, body: Iterable[bytes], headers: dict[str, str],
        timeout: float | None,
    ) -> Response:
        """Send a body of any size, piece by piece (by default: joined, then sent)."""
        return self.send(method, path, b"".join(body), headers, timeout)


class HTTPResponse(Response):
    """An answer read off the socket; closing it closes the connection."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
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
                if not size_line:  # a daemon that failed mid-answer: not a clean end
                    raise ConnectionResetError("bangerd ended its answer early")
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self._file.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    self._eof = True
                    return b""
                self._chunk_left = size
            data = self._file.read1(self._chunk_left)
            if not data:  # the connection ended inside a chunk
                raise ConnectionResetError("bangerd ended its answer early")
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

    def read_piece(self) -> bytes:
        if self._buffer:
            piece, self._buffer = self._buffer, b""
            return piece
        return self._next_piece()

    def close(self) -> None:
        self._file.close()
        self._sock.close()


class UnixSocketTransport(Transport):
    def __init__(self, path: str) -> None:
        self.path = path

    def send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str],
        timeout: float | None,
    ) -> Response:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(self.path)
            sock.sendall(request_bytes(method, path, body, headers))
            return HTTPResponse(sock)
        except BaseException:
            sock.close()
            raise

    def send_stream(
        self, method: str, path: str, body: Iterable[bytes], headers: dict[str, str],
        timeout: float | None,
    ) -> Response:
        """The body chunked, each piece sent as it comes (sendall blocks while bangerd
        does not read: back-pressure). A daemon that answers before it read all of it (an
        error) closes the connection: its answer is read all the same."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(self.path)
            send_chunked(sock, method, path, body, headers)
            return HTTPResponse(sock)
        except BaseException:
            sock.close()
            raise


def send_chunked(
    sock: socket.socket, method: str, path: str, body: Iterable[bytes], headers: dict[str, str],
) -> None:
    """A request whose body goes out chunked, piece by piece; a daemon that stopped reading
    (it answered early, with an error) ends the body quietly: its answer is read next."""
    lines = [f"{method} {path} HTTP/1.1", "Host: bangerd", "Connection: close",
             "Transfer-Encoding: chunked", *(f"{k}: {v}" for k, v in headers.items())]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    try:
        for piece in body:
            if piece:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass


def request_bytes(method: str, path: str, body: bytes | None, headers: dict[str, str]) -> bytes:
    """One HTTP/1.1 request with its whole body (the connection closes after the answer)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: bangerd", "Connection: close"]
    for name, value in headers.items():
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(body or b'')}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


class MemoryResponse(Response):
    """A canned answer: a JSON value, or NDJSON lines for a long operation's stream."""

    def __init__(
        self, status: int = 200, *, json_body: Any = None,
        ndjson: list[dict[str, Any]] | None = None, content: bytes | None = None,
    ) -> None:
        self.status = status
        self.reason = "OK" if status < 400 else "Error"
        if content is None:
            content = (
                b"".join(json.dumps(line).encode() + b"\n" for line in ndjson)
                if ndjson is not None else json.dumps(json_body).encode()
            )
        self._lines = content.splitlines(keepends=True)

    def read(self) -> bytes:
        data, self._lines = b"".join(self._lines), []
        return data

    def readline(self) -> bytes:
        return self._lines.pop(0) if self._lines else b""

    def read_piece(self) -> bytes:
        return self.readline()

    def close(self) -> None:
        self._lines = []


class MemoryTransport(Transport):
    """Answers each request with `handler(method, path, body)`, the body as decoded JSON
    (None without one)."""

    def __init__(self, handler: Callable[[str, str, Any], MemoryResponse]) -> None:
        self._handler = handler

    def send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str],
        timeout: float | None,
    ) -> Response:
        return self._handler(method, path, json.loads(body) if body else None)
