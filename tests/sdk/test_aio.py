"""AsyncSandbox: the same calls, awaited; callbacks on the loop's thread."""

from __future__ import annotations

import asyncio
import threading

from banger.sdk.aio import AsyncSandbox
from tests.sdk.fakeclient import FakeClient


async def test_create_exec_files_and_delete() -> None:
    client = FakeClient()
    loop_thread = threading.get_ident()
    threads: set[int] = set()

    def on_stdout(line: str) -> None:
        threads.add(threading.get_ident())

    async with await AsyncSandbox.create(name="a", client=client) as sb:  # type: ignore[arg-type]
        results = await asyncio.gather(*(sb.exec(f"echo {n}", on_stdout=on_stdout)
                                         for n in range(5)))
        assert [r.stdout for r in results] == [f"echo {n}" for n in range(5)]
        await sb.files.write("/x", b"hi")
        assert await sb.files.read("/x") == b"hi"
        assert [s.name for s in await AsyncSandbox.list(client=client)] == ["a"]  # type: ignore[arg-type]
    assert threads == {loop_thread}
    assert "a" not in client.vms


async def test_a_background_process_awaited() -> None:
    client = FakeClient()
    sb = await AsyncSandbox.create(name="b", client=client)  # type: ignore[arg-type]
    p = await sb.exec("sleep 100", background=True)
    assert [q.pid for q in await sb.processes()] == [p.pid]
    await p.send_stdin(b"x")
    await p.close_stdin()
    await p.kill()
    result = await p.wait()
    assert (result.signal, result.stdout) == (9, "out\n")
    await sb.files.mkdir("/d")
    assert await sb.files.exists("/d")
