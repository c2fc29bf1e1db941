"""The QMP client against a fake QEMU monitor on a Unix socket."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest

from banger.core.errors import HostError
from banger.host.vmm.qmp import qmp_command


async def _serve_qmp(path: Path) -> asyncio.AbstractServer:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b'{"QMP": {"version": {}, "capabilities": []}}\n')
        while line := await reader.readline():
            request = json.loads(line)
            answer = {"status": "running"} if request["execute"] == "query-status" else {}
            writer.write(json.dumps({"return": answer}).encode() + b"\n")
            await writer.drain()
        writer.close()

    return await asyncio.start_unix_server(handle, str(path))


async def test_command_returns_the_answer(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    server = await _serve_qmp(path)
    async with server:
        assert await qmp_command(path, "query-status") == {"status": "running"}


async def test_a_socket_bound_but_not_yet_listening_is_retried(tmp_path: Path) -> None:
    # QEMU binds the socket file a moment before it listens on it.
    path = tmp_path / "control.sock"
    early = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    early.bind(str(path))

    async def listen_later() -> asyncio.AbstractServer:
        await asyncio.sleep(0.2)
        early.close()
        path.unlink()
        return await _serve_qmp(path)

    task = asyncio.ensure_future(listen_later())
    assert await qmp_command(path, "query-status") == {"status": "running"}
    (await task).close()


async def test_no_monitor_is_a_host_error(tmp_path: Path) -> None:
    with pytest.raises(HostError, match="QMP query-status failed"):
        await qmp_command(tmp_path / "absent.sock", "query-status")
