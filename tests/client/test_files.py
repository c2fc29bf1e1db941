"""The client's GuestFiles half: the requests it sends and how it reads their answers
(against an in-memory transport), and the streamed upload and download over a socket."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from banger.client.transport import MemoryResponse, UnixSocketTransport
from banger.core.errors import DaemonUnavailable, GuestPathNotFound
from banger.core.guestapi import FileEntry
from banger.core.paths import Paths
from tests.client.test_client import Daemon, client_for

ENTRY = {"name": "f", "path": "/root/f", "type": "file", "size": 3, "mode": 0o644, "uid": 0,
         "gid": 0, "owner": "root", "group": "root", "mtime": 1.0, "target": None}


def test_requests_and_answers(tmp_path: Path) -> None:
    daemon = Daemon({
        ("GET", "/v1/vms/dev/files/entries?path=%2Froot&depth=2"):
            MemoryResponse(json_body={"entries": [ENTRY]}),
        ("GET", "/v1/vms/dev/files/stat?path=%2Froot%2Ff"):
            MemoryResponse(json_body={"entry": ENTRY}),
        ("POST", "/v1/vms/dev/files/mkdir"): MemoryResponse(json_body={"entry": ENTRY}),
        ("POST", "/v1/vms/dev/files/remove"): MemoryResponse(204, content=b""),
        ("POST", "/v1/vms/dev/files/rename"): MemoryResponse(json_body={"entry": ENTRY}),
    })
    client = client_for(daemon, tmp_path)
    assert client.list_files("dev", "/root", depth=2) == [FileEntry(**ENTRY)]
    assert client.stat_file("dev", "/root/f") == FileEntry(**ENTRY)
    client.make_dir("dev", "/root/d")
    client.remove_file("dev", "/root/d", recursive=True)
    client.rename_file("dev", "/a", "/b")
    assert [body for _, _, body in daemon.requests] == [
        None, None, {"path": "/root/d", "mode": 0o755}, {"path": "/root/d", "recursive": True},
        {"source": "/a", "destination": "/b"},
    ]


def test_a_missing_path_raises_its_error(tmp_path: Path) -> None:
    error = {"code": "guest_path_missing", "message": "cannot stat /x: No such file or directory"}
    daemon = Daemon({("GET", "/v1/vms/dev/files/stat?path=%2Fx"):
                     MemoryResponse(404, json_body={"error": error})})
    with pytest.raises(GuestPathNotFound, match="cannot stat /x"):
        client_for(daemon, tmp_path).stat_file("dev", "/x")


class OneAnswer:
    """A Unix socket server that reads one request whole, then sends `answer`."""

    def __init__(self, path: Path, answer: bytes) -> None:
        self.request = b""
        self._server = socket.socket(socket.AF_UNIX)
        self._server.bind(str(path))
        self._server.listen(1)
        self._answer = answer
        self._thread = threading.Thread(target=self._serve)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self._server.accept()
        with conn:
            # A GET ends with its headers, the chunked upload with its last chunk.
            while not self.request.endswith((b"0\r\n\r\n", b"Content-Length: 0\r\n\r\n")):
                data = conn.recv(65536)
                if not data:
                    break
                self.request += data
            conn.sendall(self._answer)

    def close(self) -> None:
        self._thread.join(5)
        self._server.close()


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bgr-", dir="/tmp") as path:
        yield Path(path)


def _client(path: Path) -> Any:
    from banger.client import Client

    paths = Paths(path / "c", path / "s", path / "k", path / "r")
    return Client(paths, autostart=False, transport=UnixSocketTransport(str(path / "sock")))


def test_upload_is_sent_chunked_as_it_comes(short_tmp: Path) -> None:
    server = OneAnswer(short_tmp / "sock", b"HTTP/1.1 204 No Content\r\n\r\n")
    pieces = (bytes([n]) * 1000 for n in range(3))
    _client(short_tmp).upload_tar("dev", "/root/d", pieces)
    server.close()
    head, _, body = server.request.partition(b"\r\n\r\n")
    assert head.startswith(b"PUT /v1/vms/dev/files/tar?path=%2Froot%2Fd HTTP/1.1")
    assert b"Transfer-Encoding: chunked" in head
    assert body == b"".join(b"3e8\r\n" + bytes([n]) * 1000 + b"\r\n" for n in range(3)) + (
        b"0\r\n\r\n")


def test_a_download_cut_short_is_an_error_not_an_end(short_tmp: Path) -> None:
    server = OneAnswer(short_tmp / "sock", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                                           b"\r\n5\r\nhello\r\n")
    pieces = []
    with pytest.raises(DaemonUnavailable, match="cut short"):
        for piece in _client(short_tmp).download_tar("dev", "/root/d"):
            pieces.append(piece)
    server.close()
    assert pieces == [b"hello"]


def test_a_download_cut_inside_a_chunk_is_an_error_too(short_tmp: Path) -> None:
    server = OneAnswer(short_tmp / "sock", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                                           b"\r\n10\r\nhello")
    with pytest.raises(DaemonUnavailable, match="cut short"):
        b"".join(_client(short_tmp).download_tar("dev", "/root/d"))
    server.close()
