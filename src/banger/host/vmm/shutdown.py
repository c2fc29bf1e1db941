"""Stopping a VMM process, the same for every backend: ask the guest, wait, then signals."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable

from banger.core.errors import HostError
from banger.host.processes import pid_alive, pid_cmdline


def send_signal(pid: int, signal_number: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal_number)


async def wait_exit(running: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not running():
            return True
        await asyncio.sleep(0.1)
    return not running()


async def shut_down(
    pid: int, *, running: Callable[[], bool], ask_guest: Callable[[], Awaitable[object]],
    timeout: float,
) -> bool:
    """Ask the guest to power off; after `timeout`, SIGTERM, then SIGKILL. True if the guest
    went down by itself."""
    if not running():
        return True
    with contextlib.suppress(HostError):
        await ask_guest()
    if await wait_exit(running, timeout):
        return True
    send_signal(pid, signal.SIGTERM)
    if not await wait_exit(running, 5.0):
        send_signal(pid, signal.SIGKILL)
        await wait_exit(running, 5.0)
    return False


def vmm_alive(
    children: dict[int, subprocess.Popen[bytes]], pid: int | None, marker: str
) -> bool:
    """True if `pid` is alive and its command line names `marker` (the VM's own path).
    Children we started and that exited are reaped here, so none lingers as a zombie."""
    if pid is None:
        return False
    child = children.get(pid)
    if child is not None and child.poll() is not None:
        children.pop(pid, None)
        return False
    if not pid_alive(pid):
        return False
    return any(marker in part for part in pid_cmdline(pid))
