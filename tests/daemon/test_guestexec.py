"""`POST /v1/vms/{name}/exec` through the real client, to the real agent run on this host
(tests/support/perlagent.py) standing in for the guest's."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from banger.core.agentframe import HELLO
from banger.core.errors import (
    GuestAgentFailed,
    GuestAgentStopped,
    GuestAgentUnavailable,
    GuestPathNotFound,
    InvalidInput,
    InvalidState,
)
from tests.support.api import Api, serve, serve_with_agent
from tests.support.daemon_env import Env, make_env
from tests.support.fakes import FakeTemplateVMM
from tests.support.host_fakes import FakeAgentChannel


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serve_with_agent(tmp_path) as served:
        yield served


async def test_exec_streams_stdout_and_stderr_and_returns_the_status(api: Api) -> None:
    out: list[bytes] = []
    err: list[bytes] = []
    result = await api.call(
        api.client.exec_vm, "dev", command='echo "$A"; echo oops >&2; exit 3', env={"A": "1"},
        on_stdout=out.append, on_stderr=err.append,
    )
    assert result == {"exit_code": 3, "signal": None, "timed_out": False}
    assert (b"".join(out), b"".join(err)) == (b"1\n", b"oops\n")


async def test_exec_passes_stdin_and_kills_at_the_timeout(api: Api) -> None:
    out: list[bytes] = []
    result = await api.call(api.client.exec_vm, "dev", ["cat"], stdin=b"hello",
                            on_stdout=out.append)
    assert (result["exit_code"], b"".join(out)) == (0, b"hello")
    result = await api.call(api.client.exec_vm, "dev", ["sleep", "30"], timeout=0.3)
    assert result == {"exit_code": None, "signal": 9, "timed_out": True}


async def test_exec_on_the_wire(api: Api) -> None:
    async with api.session() as session, session.post(
        "http://bangerd/v1/vms/dev/exec", json={"argv": ["printf", "x"]}
    ) as response:
        assert response.headers["Content-Type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in (await response.read()).splitlines()]
    assert lines == [{"stdout": "eA=="},
                     {"result": {"exit_code": 0, "signal": None, "timed_out": False}}]


async def test_exec_refuses_bad_requests_and_stopped_vms(api: Api) -> None:
    with pytest.raises(InvalidInput, match="exactly one"):
        await api.call(api.client.exec_vm, "dev", ["true"], command="true")
    with pytest.raises(GuestAgentFailed, match="no user"):
        await api.call(api.client.exec_vm, "dev", ["true"], user="nobody-at-all")
    await api.call(api.client.stop_vm, "dev")
    with pytest.raises(InvalidState, match="not running") as info:
        await api.call(api.client.exec_vm, "dev", ["true"])
    assert info.value.hint == "banger vm start dev"


async def test_files_written_then_read_back(api: Api, tmp_path: Path) -> None:
    target = tmp_path / "dir" / "file.bin"
    target.parent.mkdir()
    data = bytes(range(256)) * 1000
    await api.call(api.client.write_file, "dev", str(target), data, 0o600)
    assert target.read_bytes() == data
    assert await api.call(api.client.read_file, "dev", str(target)) == data
    (target.parent / "empty").touch()
    assert await api.call(api.client.read_file, "dev", str(target.parent / "empty")) == b""


async def test_file_errors(api: Api, tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(GuestPathNotFound, match=f"cannot read {missing}"):
        await api.call(api.client.read_file, "dev", str(missing))
    with pytest.raises(GuestPathNotFound, match=f"cannot write {missing}/f"):
        await api.call(api.client.write_file, "dev", str(missing / "f"), b"x")
    with pytest.raises(InvalidInput, match="absolute"):
        await api.call(api.client.read_file, "dev", "relative/path")


Opener = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


@contextlib.asynccontextmanager
async def vm_with_agent(tmp_path: Path, opener: Opener) -> AsyncIterator[Api]:
    """A daemon whose VM "dev" is up (sshd answered), its agent channel opened by
    `opener`."""
    channel = FakeAgentChannel()
    channel.exec_agent = opener

    def with_agent(runtime: Path) -> Env:
        return make_env(tmp_path, runtime_dir=runtime, hypervisor=FakeTemplateVMM(),
                        agent=channel)

    async with serve(tmp_path, make=with_agent) as served:
        await served.env.keys.make_ed25519(served.env.paths.default_ssh_key, "banger")
        vm = await served.call(served.client.create_vm, name="dev", ready="agent")
        assert vm.state == "running"
        yield served


async def test_an_agent_that_stops_during_an_exec_fails_the_next_at_once(
    tmp_path: Path,
) -> None:
    """The exec in flight fails (agent_failed: it may have run, so `vm run` must not run it
    again over ssh); the next is told at once that the agent stopped (agent_stopped: nothing
    ran), without a 10 s wait for a HELLO that cannot come."""
    peers: list[socket.socket] = []

    def agent(theirs: socket.socket) -> None:
        """Greets, and dies once the exec has come: its stop script's line."""
        theirs.sendall(HELLO)
        hello = b""
        while len(hello) < len(HELLO):
            hello += theirs.recv(len(HELLO) - len(hello))
        theirs.recv(1)  # the exec
        theirs.sendall(b"ERR banger-agent stopped (signal, exit status KILL)\n")

    async def dying_agent() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        ours, theirs = socket.socketpair()
        peers.append(theirs)
        threading.Thread(target=agent, args=(theirs,), daemon=True).start()
        return await asyncio.open_unix_connection(sock=ours)

    async with vm_with_agent(tmp_path, dying_agent) as served:
        with pytest.raises(GuestAgentFailed, match="agent stopped") as failed:
            await served.call(served.client.exec_vm, "dev", ["sleep", "60"])
        assert not isinstance(failed.value, GuestAgentUnavailable)
        with pytest.raises(GuestAgentStopped, match="stopped \\(signal"):
            await served.call(served.client.exec_vm, "dev", ["true"])
    assert len(peers) == 1  # no second connection was tried
    for peer in peers:
        peer.close()


async def test_an_agent_that_stopped_fails_each_exec_at_once(tmp_path: Path) -> None:
    """An image without perl: its agent's unit says so on the port once; every exec then
    fails at once with GuestAgentUnavailable (nothing ran: `vm run` takes ssh instead)."""
    peers: list[socket.socket] = []

    async def stopped_agent() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        ours, theirs = socket.socketpair()
        theirs.sendall(b"ERR banger-agent cannot start: the image has no /usr/bin/perl\n")
        peers.append(theirs)
        return await asyncio.open_unix_connection(sock=ours)

    async with vm_with_agent(tmp_path, stopped_agent) as served:
        for _ in range(2):
            with pytest.raises(GuestAgentUnavailable, match="no /usr/bin/perl"):
                await served.call(served.client.exec_vm, "dev", ["true"])
    assert len(peers) == 1
    for peer in peers:
        peer.close()
