"""The agent channels against stand-ins for QEMU's chardev socket, Firecracker's vsock socket
and banger-agent."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from banger.core.agent import Identity
from banger.core.errors import BootFailed
from banger.host.agent import SerialAgentChannel, VsockAgentChannel

IDENTITY = Identity("172.16.0.5/24", "172.16.0.1", "172.16.0.1", "one", "02:aa:bb:cc:dd:ee",
                    1_795_733_868_000_000_000, b"\x01" * 64)
Guest = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(tmp_path: Path, guest: Guest) -> tuple[Path, asyncio.Server]:
    socket = tmp_path / "agent.sock"
    server = await asyncio.start_unix_server(guest, str(socket))
    return socket, server


async def test_wait_ready_pings_until_the_boot_settled(tmp_path: Path) -> None:
    pings = 0

    async def guest(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal pings
        while line := await reader.readline():
            assert line == b"PING\n"
            pings += 1
            if pings == 2:  # still booting at the first ping: no answer
                writer.write(b"READY\n")
                await writer.drain()

    socket, server = await serve(tmp_path, guest)
    async with server:
        channel = SerialAgentChannel()
        import banger.host.agent as module

        module._PING_INTERVAL = 0.05
        try:
            await channel.wait_ready(socket, 5, alive=lambda: True)
        finally:
            module._PING_INTERVAL = 2.0
    assert pings == 2


async def test_wait_ready_stops_at_the_agents_error(tmp_path: Path) -> None:
    async def guest(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"ERR banger-agent cannot start: the image has no /usr/bin/perl\n")
        await writer.drain()
        await reader.read()  # and stays up: only the line may end the wait

    socket, server = await serve(tmp_path, guest)
    async with server:
        with pytest.raises(BootFailed, match="no /usr/bin/perl") as raised:
            await SerialAgentChannel().wait_ready(socket, 30, alive=lambda: True)
    assert "banger-agent" in raised.value.message and "perl" in raised.value.hint


async def test_identity_skips_stale_ready_lines_and_returns_on_ok(tmp_path: Path) -> None:
    received: list[bytes] = []

    async def guest(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"READY\n")  # answering a ping queued in the template
        received.append(await reader.readline())
        writer.write(b"OK\n")
        await writer.drain()

    socket, server = await serve(tmp_path, guest)
    async with server:
        await SerialAgentChannel().send_identity(socket, IDENTITY, 5, alive=lambda: True)
    assert received[0].startswith(b"IDENTITY ip=172.16.0.5/24 ")


async def test_identity_error_is_reported(tmp_path: Path) -> None:
    async def guest(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"ERR no work disk labelled banger-work\n")
        await writer.drain()

    socket, server = await serve(tmp_path, guest)
    async with server:
        with pytest.raises(BootFailed, match="no work disk"):
            await SerialAgentChannel().send_identity(socket, IDENTITY, 5, alive=lambda: True)


async def test_vmm_exit_is_reported(tmp_path: Path) -> None:
    async def guest(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()  # QEMU closes the chardev only when it exits

    socket, server = await serve(tmp_path, guest)
    async with server:
        with pytest.raises(BootFailed, match="exited"):
            await SerialAgentChannel().send_identity(socket, IDENTITY, 5, alive=lambda: True)


async def test_no_socket_and_a_dead_vmm_fails_fast(tmp_path: Path) -> None:
    with pytest.raises(BootFailed, match="exited"):
        await SerialAgentChannel().send_identity(
            tmp_path / "missing.sock", IDENTITY, 30, alive=lambda: False
        )


async def test_silence_times_out(tmp_path: Path) -> None:
    async def guest(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        await asyncio.sleep(5)

    socket, server = await serve(tmp_path, guest)
    async with server:
        with pytest.raises(BootFailed, match="did not answer"):
            await SerialAgentChannel().send_identity(socket, IDENTITY, 0.3, alive=lambda: True)


async def test_the_agent_gets_the_host_clock_on_request(tmp_path: Path) -> None:
    import time

    answers: list[int] = []

    async def guest(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"TIME\n")
        answer = await reader.readline()
        answers.append(int(answer.split()[1]))
        writer.write(b"OK\n")
        await writer.drain()

    socket, server = await serve(tmp_path, guest)
    async with server:
        await SerialAgentChannel().send_identity(socket, IDENTITY, 5, alive=lambda: True)
    assert abs(answers[0] - time.time_ns()) < 5 * 10**9


# VsockAgentChannel against a stand-in for Firecracker's vsock socket: each connection asks
# for a port with `CONNECT <port>`; Firecracker answers `OK <host port>` once the guest
# accepted, or closes the connection while nothing listens there.


def vsock(agent: Guest, refusals: int = 0,
          ports: list[bytes] | None = None) -> Guest:
    """A Firecracker vsock socket in front of `agent`, refusing the first `refusals`
    connections (the agent does not listen yet); `ports` records what was asked for."""
    seen = ports if ports is not None else []

    async def device(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readline())
        if len(seen) <= refusals or seen[-1] != b"CONNECT 1024\n":
            writer.close()
            return
        writer.write(b"OK 1073741824\n")
        await writer.drain()
        await agent(reader, writer)

    return device


async def test_vsock_identity_after_the_connect_handshake(tmp_path: Path) -> None:
    received: list[bytes] = []

    async def agent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readline())
        writer.write(b"OK\n")
        await writer.drain()

    ports: list[bytes] = []
    socket, server = await serve(tmp_path, vsock(agent, ports=ports))
    async with server:
        await VsockAgentChannel().send_identity(socket, IDENTITY, 5, alive=lambda: True)
    assert ports == [b"CONNECT 1024\n"]
    assert received[0].startswith(b"IDENTITY ip=172.16.0.5/24 ")


async def test_vsock_asks_again_until_the_agent_listens(tmp_path: Path) -> None:
    pings = 0

    async def agent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal pings
        while await reader.readline():
            pings += 1
            writer.write(b"READY\n")
            await writer.drain()

    ports: list[bytes] = []
    socket, server = await serve(tmp_path, vsock(agent, refusals=2, ports=ports))
    async with server:
        await VsockAgentChannel().wait_ready(socket, 10, alive=lambda: True)
    assert ports == [b"CONNECT 1024\n"] * 3 and pings == 1


async def test_vsock_without_a_listening_agent_gives_up(tmp_path: Path) -> None:
    async def agent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise AssertionError("never reached")

    socket, server = await serve(tmp_path, vsock(agent, refusals=1000))
    async with server:
        with pytest.raises(BootFailed, match="did not accept a connection on vsock port 1024"):
            await VsockAgentChannel().send_identity(socket, IDENTITY, 0.5, alive=lambda: True)
        with pytest.raises(BootFailed, match="exited"):
            await VsockAgentChannel().send_identity(socket, IDENTITY, 5, alive=lambda: False)


async def test_vsock_agent_closing_its_connection_is_reported(tmp_path: Path) -> None:
    async def agent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.close()

    socket, server = await serve(tmp_path, vsock(agent))
    async with server:
        with pytest.raises(BootFailed, match="closed its vsock connection"):
            await VsockAgentChannel().send_identity(socket, IDENTITY, 5, alive=lambda: True)
