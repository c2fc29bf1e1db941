"""`/v1/vms/{name}/processes` through the real client, to the real agent run on this host
(tests/support/perlagent.py) standing in for the guest's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from banger.core import guestapi as wire
from banger.core.errors import (
    GuestAgentFailed,
    InvalidInput,
    InvalidState,
    ProcessNotFound,
    ResourceBusy,
)
from banger.daemon import guestprocs
from tests.support.api import Api, serve_with_agent


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serve_with_agent(tmp_path) as served:
        yield served


async def start(api: Api, **fields: Any) -> wire.ProcessInfo:
    return await api.call(api.client.start_process, "dev", api_start(**fields))


def api_start(**fields: Any) -> wire.StartProcess:
    return wire.StartProcess(**fields)


async def attach(api: Api, pid: int) -> tuple[bytes, bytes, wire.ExecResult]:
    out: list[bytes] = []
    err: list[bytes] = []
    result = await api.call(api.client.attach_process, "dev", pid, out.append, err.append)
    return b"".join(out), b"".join(err), result


async def test_a_process_runs_and_is_attached_to(api: Api) -> None:
    info = await start(api, command="echo $$; echo oops >&2; exit 3", tag="build",
                       env={"A": "1"})
    assert (info.tag, info.env, info.running, info.pty) == ("build", {"A": "1"}, True, False)
    assert info.started_at.endswith("Z")
    out, err, result = await attach(api, info.pid)
    assert (out, err) == (f"{info.pid}\n".encode(), b"oops\n")
    assert result == wire.ExecResult(exit_code=3, signal=None, timed_out=False)
    # Seen to its end: forgotten.
    assert await api.call(api.client.list_processes, "dev") == []
    with pytest.raises(ProcessNotFound, match=f"no process {info.pid}"):
        await attach(api, info.pid)


async def test_a_process_is_started_and_attached_to_in_one_request(api: Api) -> None:
    pids: list[int] = []
    out: list[bytes] = []
    body = wire.StartProcess(command="echo $$; exit 4").body()
    result = await api.call(api.client.start_attached, "dev", body, pids.append, out.append)
    assert result == {"exit_code": 4, "signal": None, "timed_out": False}
    assert out == [f"{pids[0]}\n".encode()]  # the pid came first, and is the guest's
    assert await api.call(api.client.list_processes, "dev") == []


async def test_an_ended_process_is_listed_until_attached(api: Api) -> None:
    info = await start(api, argv=["sh", "-c", "echo done; kill -TERM $$"])
    for _ in range(100):
        [listed] = await api.call(api.client.list_processes, "dev")
        if not listed.running:
            break
        await asyncio.sleep(0.05)
    assert (listed.pid, listed.running, listed.signal) == (info.pid, False, 15)
    assert await attach(api, info.pid) == (b"done\n", b"", wire.ExecResult(None, 15))


async def test_output_is_kept_while_nobody_is_attached(api: Api) -> None:
    info = await start(api, command="echo one; read x; echo two", stdin=True)
    seen: list[bytes] = []

    def leave_after_first(data: bytes) -> None:
        seen.append(data)
        raise KeyboardInterrupt  # the client goes away

    with pytest.raises(KeyboardInterrupt):
        await api.call(api.client.attach_process, "dev", info.pid, leave_after_first)
    assert seen == [b"one\n"]
    await api.call(api.client.send_stdin, "dev", info.pid, b"go\n")
    await asyncio.sleep(0.3)
    out, _, result = await attach(api, info.pid)
    assert (out, result.exit_code) == (b"two\n", 0)


async def test_stdin_in_pieces_then_closed(api: Api) -> None:
    info = await start(api, argv=["cat"], stdin=True)
    outcome = asyncio.create_task(attach(api, info.pid))
    for piece in (b"a", b"b" * 300_000, b"c"):
        await api.call(api.client.send_stdin, "dev", info.pid, piece)
    await api.call(api.client.close_stdin, "dev", info.pid)
    out, _, result = await outcome
    assert (out, result.exit_code) == (b"a" + b"b" * 300_000 + b"c", 0)


async def test_signal_timeout_and_refusals(api: Api) -> None:
    info = await start(api, argv=["sleep", "30"])
    with pytest.raises(InvalidState, match=r"stdin of process \d+ is closed"):
        await api.call(api.client.send_stdin, "dev", info.pid, b"x")
    with pytest.raises(InvalidInput, match="no PTY"):
        await api.call(api.client.resize_process, "dev", info.pid, 80, 24)
    with pytest.raises(InvalidInput, match="not a signal"):
        await api.call(api.client.signal_process, "dev", info.pid, 99)
    await api.call(api.client.signal_process, "dev", info.pid, 2)
    assert (await attach(api, info.pid))[2] == wire.ExecResult(None, 2)
    timed = await start(api, argv=["sleep", "30"], timeout=0.3)
    assert (await attach(api, timed.pid))[2] == wire.ExecResult(None, 9, timed_out=True)
    with pytest.raises(ProcessNotFound):
        await api.call(api.client.signal_process, "dev", 999_999, 15)


async def test_a_pty_process_sees_its_terminal_and_resizes(api: Api) -> None:
    if not Path("/dev/ptmx").exists():
        pytest.skip("no /dev/ptmx")
    info = await start(api, command="tty; stty size; read x; stty size",
                       pty=wire.PtySize(cols=90, rows=20), stdin=True)
    assert info.pty
    outcome = asyncio.create_task(attach(api, info.pid))
    await asyncio.sleep(0.3)
    await api.call(api.client.resize_process, "dev", info.pid, 132, 43)
    await api.call(api.client.send_stdin, "dev", info.pid, b"\n")
    out, err, result = await outcome
    lines = out.decode().replace("\r\n", "\n").splitlines()
    assert lines[0].startswith("/dev/pts/") and lines[1:] == ["20 90", "", "43 132"]
    assert (err, result.exit_code) == (b"", 0)


async def test_a_new_attach_takes_over(api: Api) -> None:
    info = await start(api, command="sleep 0.5; echo late")
    first = asyncio.create_task(attach(api, info.pid))
    await asyncio.sleep(0.2)
    second = await attach(api, info.pid)
    assert second[0] == b"late\n"
    with pytest.raises(ResourceBusy, match="another client attached"):
        await first


async def test_unattached_output_beyond_the_buffer_is_dropped_and_counted(
    api: Api, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(guestprocs, "BUFFER_BYTES", 200_000)
    monkeypatch.setattr(guestprocs, "FIRST_ATTACH_GRACE", 0.0)
    info = await start(api, command="head -c 1000000 /dev/zero; echo end >&2")
    for _ in range(100):
        if not (await api.call(api.client.list_processes, "dev"))[0].running:
            break
        await asyncio.sleep(0.05)
    dropped: list[int] = []
    out: list[bytes] = []
    err: list[bytes] = []
    await api.call(api.client.attach_process, "dev", info.pid, out.append, err.append,
                   dropped.append)
    kept = len(b"".join(out))
    assert kept <= 200_000 and sum(dropped) + kept == 1_000_000
    assert b"".join(err) == b"end\n"  # the newest output is what stays


async def test_on_the_wire(api: Api) -> None:
    async with api.session() as session:
        async with session.post("http://bangerd/v1/vms/dev/processes",
                                json={"argv": ["printf", "x"], "pty": None}) as response:
            assert response.status == 201
            pid = (await response.json())["process"]["pid"]
        async with session.get(f"http://bangerd/v1/vms/dev/processes/{pid}/output") as response:
            lines = [json.loads(line) for line in (await response.read()).splitlines()]
        assert lines == [{"stdout": "eA=="},
                         {"result": {"exit_code": 0, "signal": None, "timed_out": False}}]
        async with session.post("http://bangerd/v1/vms/dev/processes",
                                json={"argv": ["true"], "pty": {"cols": 0}}) as response:
            assert response.status == 400
        async with session.get("http://bangerd/v1/vms/dev/processes/12/output") as response:
            assert response.status == 404
            assert (await response.json())["error"]["code"] == "process_not_found"



async def test_an_agent_that_dies_fails_its_processes_and_the_daemon_carries_on(
    api: Api,
) -> None:
    info = await start(api, argv=["sleep", "3"])
    await start(api, command="kill -9 $PPID")  # the stand-in agent is its parent
    with pytest.raises(GuestAgentFailed, match=r"the guest agent.* channel"):
        await attach(api, info.pid)
    [listed] = [p for p in await api.call(api.client.list_processes, "dev")
                if p.pid != info.pid]
    assert not listed.running and listed.exit_code is None
    assert (await api.call(api.client.get_vm, "dev")).name == "dev"
