"""A minimal QMP (QEMU Machine Protocol) client over the VM's control socket."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

from banger.core.errors import HostError

# QEMU creates the socket file (bind) a moment before it listens; on a loaded host a client
# can land in between and be refused.
_REFUSED_RETRIES = 40
_REFUSED_PAUSE = 0.025


async def _connect(socket_path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    for _ in range(_REFUSED_RETRIES):
        try:
            return await asyncio.open_unix_connection(str(socket_path))
        except ConnectionRefusedError:
            await asyncio.sleep(_REFUSED_PAUSE)
    return await asyncio.open_unix_connection(str(socket_path))


def _request(execute: str, args: dict[str, Any] | None) -> bytes:
    message: dict[str, Any] = {"execute": execute}
    if args:
        message["arguments"] = args
    return json.dumps(message).encode() + b"\n"


def _reply(line: bytes, execute: str) -> dict[str, Any] | None:
    """The answer to `execute` in `line`, or None for an event to skip."""
    if not line:
        raise HostError(f"QMP closed the connection during {execute}")
    reply: dict[str, Any] = json.loads(line)
    if "event" in reply:
        return None
    if "error" in reply:
        raise HostError(f"QMP {execute}: {reply['error'].get('desc')}")
    return reply


async def qmp_command(
    socket_path: Path, command: str, arguments: dict[str, Any] | None = None,
    *, timeout: float = 5.0,
) -> Any:
    async def exchange() -> Any:
        reader, writer = await _connect(socket_path)
        try:
            await reader.readline()  # greeting
            for execute, args in (("qmp_capabilities", None), (command, arguments)):
                writer.write(_request(execute, args))
                await writer.drain()
                reply = None
                while reply is None:
                    reply = _reply(await reader.readline(), execute)
                result = reply.get("return")
            return result
        finally:
            writer.close()

    try:
        return await asyncio.wait_for(exchange(), timeout)
    except (OSError, TimeoutError) as exc:
        raise HostError(f"QMP {command} failed: {exc}") from exc


def _command_with_fd(
    socket_path: Path, fd: int, fdname: str, command: str, arguments: dict[str, Any],
    timeout: float,
) -> Any:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(socket_path))
        replies = sock.makefile("rb")
        replies.readline()  # greeting

        def call(
            execute: str, args: dict[str, Any] | None = None, fds: list[int] | None = None
        ) -> Any:
            data = _request(execute, args)
            if fds:
                socket.send_fds(sock, [data], fds)
            else:
                sock.sendall(data)
            reply = None
            while reply is None:
                reply = _reply(replies.readline(), execute)
            return reply.get("return")

        call("qmp_capabilities")
        call("getfd", {"fdname": fdname}, [fd])
        return call(command, arguments)


async def qmp_command_with_fd(
    socket_path: Path, fd: int, fdname: str, command: str, arguments: dict[str, Any],
    *, timeout: float = 5.0,
) -> Any:
    """Hand QEMU the open file `fd` under `fdname` (QMP `getfd`, over SCM_RIGHTS), then run
    `command`, which can name it (a migration to `fd:<fdname>`). The VMM opens no files of
    its own once it runs: it dropped its privileges and may not spawn programs."""
    try:
        return await asyncio.to_thread(
            _command_with_fd, socket_path, fd, fdname, command, arguments, timeout
        )
    except OSError as exc:
        raise HostError(f"QMP {command} failed: {exc}") from exc
