"""Starting a VMM process, the same for every backend: its own session, output to a log,
and a wait until it is ready to be driven."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from banger.core.errors import BootFailed

_POLL = 0.02


async def start_vmm(
    argv: list[str], *, log_path: Path, children: dict[int, subprocess.Popen[bytes]],
    what: str, ready: Callable[[], Awaitable[bool]], timeout: float, cwd: Path | None = None,
) -> tuple[int, bool]:
    """Start the VMM in a session of its own (it outlives a crashed daemon, which re-adopts
    it) and wait until `ready()`: returns its PID and whether it became ready in `timeout`.
    A VMM that exits first raises BootFailed with the last line of its output."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True, cwd=cwd,
        )
    children[proc.pid] = proc
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            children.pop(proc.pid, None)
            words = log_path.read_text(errors="replace").strip().splitlines()
            raise BootFailed(
                f"{what} exited at start: {words[-1] if words else f'exit {proc.returncode}'}",
                hint=f"full output in {log_path}",
            )
        if await ready():
            return proc.pid, True
        await asyncio.sleep(_POLL)
    return proc.pid, False
