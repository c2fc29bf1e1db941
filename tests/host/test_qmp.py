"""The QMP client against a fake QEMU monitor on a Unix socket."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from pathlib import Path

import pytest

from banger.core.errors import HostError
from banger.host.vmm.qmp import qmp_command, qmp_command_with_fd


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


async def test_a_file_is_handed_over_before_the_command_that_names_it(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    seen: list[str] = []

    def monitor() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(b'{"QMP": {"version": {}, "capabilities": []}}\n')
            for _ in range(3):
                data, fds, _, _ = socket.recv_fds(conn, 4096, 1)
                request = json.loads(data)
                seen.append(request["execute"])
                if fds:  # what QEMU's migration would write its state to
                    with open(fds[0], "wb") as state:
                        state.write(b"device state")
                conn.sendall(b'{"return": {}}\n')

    served = asyncio.get_running_loop().run_in_executor(None, monitor)
    state = tmp_path / "state"
    fd = os.open(state, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        await qmp_command_with_fd(path, fd, "state", "migrate", {"uri": "fd:state"})
    finally:
        os.close(fd)
    await served
    listener.close()
    assert seen == ["qmp_capabilities", "getfd", "migrate"]
    assert state.read_bytes() == b"device state"


async def test_handing_over_a_file_to_no_monitor_is_a_host_error(tmp_path: Path) -> None:
    with pytest.raises(HostError):
        await qmp_command_with_fd(tmp_path / "none.sock", 0, "x", "migrate", {})
