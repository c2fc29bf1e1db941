"""Starting a VMM process, the same for every backend: its own session, output to a log,
its own cgroup, and a wait until it is ready to be driven."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from banger.core.confine import CgroupLimits
from banger.core.errors import BootFailed, HostError
from banger.host.cgroups import VMCgroups
from banger.host.vmmuser import FixedVMMUids, VMMUids

_POLL = 0.02


@dataclass(frozen=True)
class Confinement:
    """What a backend puts its VMM processes in: a cgroup each (None: the host has no
    cgroup hierarchy banger can use, or the daemon is not root) and the uid each runs as."""

    cgroups: VMCgroups | None = None
    uids: VMMUids = field(default_factory=lambda: FixedVMMUids(None))


@dataclass(frozen=True)
class CgroupPlacement:
    cgroups: VMCgroups
    name: str
    limits: CgroupLimits


async def start_vmm(
    argv: list[str], *, log_path: Path, children: dict[int, subprocess.Popen[bytes]],
    what: str, ready: Callable[[], Awaitable[bool]], timeout: float, cwd: Path | None = None,
    cgroup: CgroupPlacement | None = None,
) -> tuple[int, bool]:
    """Start the VMM in a session of its own (it outlives a crashed daemon, which re-adopts
    it) and in its `cgroup`, and wait until `ready()`: returns its PID and whether it became
    ready in `timeout`. A VMM that exits first raises BootFailed with the last line of its
    output."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True, cwd=cwd,
        )
    children[proc.pid] = proc
    if cgroup is not None:
        # Moved before it has allocated its guest RAM (it is still starting up): what it
        # charges from here on counts against its limit.
        try:
            cgroup.cgroups.confine(cgroup.name, proc.pid, cgroup.limits)
        except HostError as exc:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
            children.pop(proc.pid, None)
            raise BootFailed(f"{what} could not be confined: {exc.message}",
                             hint=exc.hint) from None
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
