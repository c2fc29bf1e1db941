"""The host end of banger-agent's channel (see banger.core.agent for the protocol): QEMU
exposes the guest's virtio-serial port as a Unix socket in the VM dir; Firecracker exposes
the guest's vsock as one, where each connection first asks for the agent's port."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from banger.core import agent
from banger.core import firecracker as fc
from banger.core.errors import BootFailed

# How often the template builder asks again while the guest is still booting.
_PING_INTERVAL = 2.0
# How long Firecracker may take to say the guest accepted a vsock connection.
_VSOCK_ACK_TIMEOUT = 5.0
_EXITED = "the VM exited before its agent answered"


class AgentChannel(Protocol):
    async def wait_ready(self, socket: Path, timeout: float, alive: Callable[[], bool]) -> None:
        """Until the template's agent says its boot has settled."""
        ...

    async def send_identity(
        self, socket: Path, identity: agent.Identity, timeout: float,
        alive: Callable[[], bool],
    ) -> None:
        """Hand a restored VM its identity; return once the agent applied it."""
        ...

    async def open(
        self, socket: Path, timeout: float, alive: Callable[[], bool]
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A byte stream to the agent, for its exec channel (host/agentsession.py)."""
        ...


class _LineChannel:
    """The line protocol over a byte stream; subclasses open the stream."""

    # What the end of the stream means while the VMM runs.
    _closed = _EXITED  # QEMU closes the chardev only when it exits

    async def _open(
        self, socket: Path, deadline: float, alive: Callable[[], bool]
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        raise NotImplementedError

    async def open(
        self, socket: Path, timeout: float, alive: Callable[[], bool]
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await self._open(socket, time.monotonic() + timeout, alive)

    async def wait_ready(self, socket: Path, timeout: float, alive: Callable[[], bool]) -> None:
        deadline = time.monotonic() + timeout
        reader, writer = await self._open(socket, deadline, alive)
        try:
            while True:
                try:
                    writer.write(f"{agent.PING}\n".encode())
                    await writer.drain()
                except ConnectionError as exc:
                    raise BootFailed("the template VM exited while booting") from exc
                line = await _read_line(
                    reader, min(_PING_INTERVAL, _left(deadline)), alive, self._closed
                )
                if line is not None and line.strip() == agent.READY:
                    return
                reply = agent.parse_reply(line) if line is not None else None
                if reply is not None and not reply.ok:
                    raise BootFailed(
                        f"the template VM's {reply.detail}",
                        hint="its VMs boot cold (a warm template needs banger-agent: perl)",
                    )
                if time.monotonic() >= deadline:
                    raise BootFailed(f"the template's agent did not settle within {timeout:.0f}s")
        finally:
            writer.close()

    async def send_identity(
        self, socket: Path, identity: agent.Identity, timeout: float,
        alive: Callable[[], bool],
    ) -> None:
        deadline = time.monotonic() + timeout
        reader, writer = await self._open(socket, deadline, alive)
        try:
            try:
                writer.write(agent.identity_line(identity).encode())
                await writer.drain()
            except ConnectionError as exc:
                raise BootFailed(_EXITED) from exc
            while True:
                line = await _read_line(reader, _left(deadline), alive, self._closed)
                if line is None:
                    raise BootFailed(f"the guest agent did not answer within {timeout:.0f}s")
                if line.strip() == agent.TIME:
                    try:
                        writer.write(agent.time_line(time.time_ns()).encode())
                        await writer.drain()
                    except ConnectionError as exc:
                        raise BootFailed(_EXITED) from exc
                    continue
                reply = agent.parse_reply(line)
                if reply is None:
                    continue
                if not reply.ok:
                    raise BootFailed(f"the guest agent failed: {reply.detail}")
                return
        finally:
            writer.close()


class SerialAgentChannel(_LineChannel):
    """QEMU: the virtio-serial port's chardev is a Unix socket server."""

    async def _open(
        self, socket: Path, deadline: float, alive: Callable[[], bool]
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await _connect(socket, deadline, alive)


class VsockAgentChannel(_LineChannel):
    """Firecracker: `socket` is the VM's vsock Unix socket. Each connection asks for the
    agent's port (`CONNECT <port>`) and carries the line protocol once Firecracker answers
    `OK <host port>`; until the agent listens, Firecracker closes it instead, and the
    channel asks again."""

    _closed = "the guest agent closed its vsock connection"

    def __init__(self, port: int = agent.VSOCK_PORT) -> None:
        self._port = port

    async def _open(
        self, socket: Path, deadline: float, alive: Callable[[], bool]
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while True:
            reader, writer = await _connect(socket, deadline, alive)
            try:
                writer.write(fc.vsock_connect(self._port))
                await writer.drain()
                ack = await asyncio.wait_for(
                    reader.readline(), max(0.05, min(_VSOCK_ACK_TIMEOUT, _left(deadline)))
                )
            except (ConnectionError, TimeoutError):
                ack = b""
            if fc.parse_vsock_ack(ack) is not None:
                return reader, writer
            writer.close()
            if not alive():
                raise BootFailed(_EXITED)
            if time.monotonic() >= deadline:
                raise BootFailed(
                    f"the guest agent did not accept a connection on vsock port {self._port}"
                )
            await asyncio.sleep(0.1)


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


async def _connect(
    socket: Path, deadline: float, alive: Callable[[], bool]
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    while True:
        try:
            return await asyncio.open_unix_connection(str(socket))
        except OSError as exc:
            if not alive():
                raise BootFailed(_EXITED) from exc
            if time.monotonic() >= deadline:
                raise BootFailed(f"cannot reach the guest agent at {socket}: {exc}") from exc
            await asyncio.sleep(0.05)


async def _read_line(
    reader: asyncio.StreamReader, timeout: float, alive: Callable[[], bool], closed: str
) -> str | None:
    """The next line, or None after `timeout`; raises if the VMM died meanwhile or the
    stream ended (`closed` says why it would while the VMM runs)."""
    with contextlib.suppress(TimeoutError):
        try:
            data = await asyncio.wait_for(reader.readline(), timeout)
        except ConnectionError as exc:  # (not OSError: TimeoutError is one)
            raise BootFailed(closed if alive() else _EXITED) from exc
        if data:
            return data.decode(errors="replace")
        raise BootFailed(closed if alive() else _EXITED)
    if not alive():
        raise BootFailed(_EXITED)
    return None
