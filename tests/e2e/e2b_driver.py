"""Drives the unmodified e2b SDK against banger's E2B endpoint, from inside the test
namespace (E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY in the environment). Each scenario
prints one JSON object of what it saw; tests/e2e/test_e2b.py asserts on it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from e2b import (
    AsyncSandbox,
    CommandExitException,
    NotFoundException,
    PtySize,
    Sandbox,
    SandboxQuery,
)

# Creates on a loaded 2-core host with TCG guests can outlast the SDK's default timeout.
CREATE_TIMEOUT = 600


def sync_scenario() -> dict[str, Any]:
    seen: dict[str, Any] = {}
    sandbox = Sandbox.create(metadata={"suite": "e2e-sync"}, timeout=600,
                             request_timeout=CREATE_TIMEOUT)
    seen["id"] = sandbox.sandbox_id
    out: list[str] = []
    err: list[str] = []
    result = sandbox.commands.run("echo hi; echo oops >&2; whoami; pwd",
                                  on_stdout=out.append, on_stderr=err.append)
    seen["run"] = [result.stdout, result.stderr, result.exit_code, "".join(out), "".join(err)]
    try:
        sandbox.commands.run("exit 3")
        seen["exit"] = None
    except CommandExitException as exc:
        seen["exit"] = exc.exit_code
    seen["root"] = sandbox.commands.run("whoami", user="root").stdout
    seen["sudo"] = sandbox.commands.run("sudo -n whoami").stdout
    seen["env_cwd"] = sandbox.commands.run('echo "$GREETING"; pwd', envs={"GREETING": "hi there"},
                                           cwd="/tmp").stdout
    background = sandbox.commands.run("sleep 600", background=True)
    seen["listed_pids"] = [p.pid for p in sandbox.commands.list()]
    seen["background_pid"] = background.pid
    seen["killed"] = sandbox.commands.kill(background.pid)
    seen["after_kill_pids"] = [p.pid for p in sandbox.commands.list()]
    cat = sandbox.commands.run("cat", background=True, stdin=True)
    sandbox.commands.send_stdin(cat.pid, "piped in")
    sandbox.commands.close_stdin(cat.pid)
    seen["stdin"] = cat.wait().stdout
    typed: list[bytes] = []
    terminal = sandbox.pty.create(PtySize(rows=24, cols=80))
    sandbox.pty.resize(terminal.pid, PtySize(rows=40, cols=100))
    sandbox.pty.send_stdin(terminal.pid, b"stty size; exit\n")
    terminal.wait(on_pty=typed.append)
    seen["pty"] = b"".join(typed).decode(errors="replace")
    info = sandbox.files.write("notes/hello.txt", "hello e2b")
    seen["written"] = info.path
    seen["read"] = sandbox.files.read("notes/hello.txt")
    seen["listed"] = sorted(e.name for e in sandbox.files.list("notes"))
    seen["owner"] = sandbox.commands.run("stat -c %U /home/user/notes/hello.txt").stdout
    seen["exists"] = sandbox.files.exists("notes/hello.txt")
    seen["make_dir"] = sandbox.files.make_dir("notes/sub")
    seen["renamed"] = sandbox.files.rename("notes/hello.txt", "notes/sub/moved.txt").path
    seen["deep"] = sorted(e.path for e in sandbox.files.list("notes", depth=2))
    sandbox.files.remove("notes/sub/moved.txt")
    seen["exists_after_remove"] = sandbox.files.exists("notes/sub/moved.txt")
    try:
        sandbox.files.read("/no/such/file")
        seen["missing"] = None
    except NotFoundException:
        seen["missing"] = "NotFoundException"
    paginator = Sandbox.list(query=SandboxQuery(metadata={"suite": "e2e-sync"}))
    seen["list"] = [s.sandbox_id for s in paginator.next_items()]
    seen["state"] = str(sandbox.get_info().state)
    sandbox.set_timeout(900)
    seen["killed_sandbox"] = sandbox.kill()
    seen["list_after"] = [s.sandbox_id for s in Sandbox.list(
        query=SandboxQuery(metadata={"suite": "e2e-sync"})).next_items()]
    return seen


async def async_scenario() -> dict[str, Any]:
    seen: dict[str, Any] = {}
    sandbox = await AsyncSandbox.create(metadata={"suite": "e2e-async"},
                                       request_timeout=CREATE_TIMEOUT)
    result = await sandbox.commands.run("echo async; uname -s")
    seen["run"] = result.stdout
    await sandbox.files.write("/tmp/a.txt", b"bytes")
    seen["read"] = await sandbox.files.read("/tmp/a.txt")
    seen["running"] = await sandbox.is_running()
    await sandbox.pause()
    paused = await AsyncSandbox.get_info(sandbox.sandbox_id)
    seen["paused_state"] = str(paused.state)
    resumed = await AsyncSandbox.connect(sandbox.sandbox_id)
    seen["after_resume"] = (await resumed.commands.run("echo back")).stdout
    await sandbox.kill()
    return seen


def parallel_scenario(count: int) -> dict[str, Any]:
    def one(index: int) -> str:
        sandbox = Sandbox.create(metadata={"suite": "e2e-parallel"},
                                 request_timeout=CREATE_TIMEOUT)
        try:
            return sandbox.commands.run(f"echo {index}").stdout.strip()
        finally:
            sandbox.kill()

    started = time.monotonic()
    with ThreadPoolExecutor(count) as pool:
        outputs = list(pool.map(one, range(count)))
    return {"outputs": outputs, "seconds": time.monotonic() - started}


if __name__ == "__main__":
    scenario = sys.argv[1]
    if scenario == "sync":
        seen = sync_scenario()
    elif scenario == "async":
        seen = asyncio.run(async_scenario())
    else:
        seen = parallel_scenario(int(sys.argv[2]))
    print(json.dumps(seen), flush=True)
    # Skip interpreter teardown: once in CI the async SDK's process aborted there (SIGABRT,
    # no message) after every call had answered and this line was printed. What third-party
    # C extensions do while unloading is not what these scenarios test.
    os._exit(0)
