"""The unprivileged user VMMs run as when bangerd runs as root (config `vmm_user`): a system
user with no login shell and no home, made on first use. One user for every VM; the VMM
opens its disks, TAP, console and sockets as root and only then drops to it, so the files
stay root's and one VM's VMM cannot open another VM's files after an escape."""

from __future__ import annotations

import asyncio
import os
import pwd
from typing import Protocol

from banger.core.confine import RunAs
from banger.host.processes import CommandRunner

DEFAULT_USER = "banger-vmm"


class VMMUser(Protocol):
    async def run_as(self) -> RunAs | None:
        """Whom VMMs run as; None: as the daemon itself (it is not root, or confinement by
        user is off)."""
        ...


class SystemVMMUser:
    def __init__(self, name: str, runner: CommandRunner) -> None:
        self._name = name
        self._runner = runner
        self._lock = asyncio.Lock()

    async def run_as(self) -> RunAs | None:
        if not self._name or os.geteuid() != 0:
            return None
        async with self._lock:
            try:
                entry = pwd.getpwnam(self._name)
            except KeyError:
                await self._runner.run([
                    "useradd", "--system", "--user-group", "--no-create-home",
                    "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                    "--comment", "banger VMM processes", self._name,
                ])
                entry = pwd.getpwnam(self._name)
        return RunAs(entry.pw_uid, entry.pw_gid)


class FixedVMMUser:
    """A given answer (unit tests; `None` for a daemon that does not drop privileges)."""

    def __init__(self, run_as: RunAs | None) -> None:
        self._run_as = run_as

    async def run_as(self) -> RunAs | None:
        return self._run_as
