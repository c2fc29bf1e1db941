"""VM disks: a qcow2 overlay over the shared read-only base (never a copy of it) and the
persistent ext4 work disk built from a staging directory with `mkfs.ext4 -d` (no mounts)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from banger.core.errors import InvalidInput
from banger.core.guest import WORK_DISK_LABEL
from banger.host import hostinfo
from banger.host.processes import CommandRunner


class DiskAdapter(Protocol):
    async def create_overlay(self, base: Path, overlay: Path) -> None: ...
    async def create_work_disk(self, path: Path, size_bytes: int, staging: Path) -> None: ...
    async def grow_work_disk(self, path: Path, size_bytes: int) -> None: ...
    def free_bytes(self, path: Path) -> int:
        """Free space on the filesystem that holds `path` (or would, once made)."""
        ...


class HostDisks:
    def __init__(self, runner: CommandRunner, *, as_root: bool | None = None) -> None:
        self._run = runner
        self._as_root = os.geteuid() == 0 if as_root is None else as_root

    def free_bytes(self, path: Path) -> int:
        return hostinfo.free_bytes(path)

    async def create_overlay(self, base: Path, overlay: Path) -> None:
        await self._run.run([
            "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw",
            "-b", str(base.resolve()), str(overlay),
        ])

    async def create_work_disk(self, path: Path, size_bytes: int, staging: Path) -> None:
        with open(path, "wb") as f:
            f.truncate(size_bytes)  # sparse: costs only what is written
        await self._run.run([
            "mkfs.ext4", "-q", "-F", "-L", WORK_DISK_LABEL, "-E", "root_owner=0:0",
            "-d", str(staging), str(path),
        ])
        if not self._as_root:
            await self._give_to_root(path, staging)

    async def _give_to_root(self, path: Path, staging: Path) -> None:
        """`mkfs.ext4 -d` copies the staged files' owner: an ordinary user's daemon would
        give the guest's root a /root/.ssh that sshd refuses. The guest sees them as root's."""
        script = "".join(
            f'sif "/{entry.relative_to(staging)}" {field} 0\n'
            for entry in sorted(staging.rglob("*")) for field in ("uid", "gid")
        )
        if script:
            await self._run.run(["debugfs", "-w", "-f", "-", str(path)], input=script.encode())

    async def grow_work_disk(self, path: Path, size_bytes: int) -> None:
        current = path.stat().st_size
        if size_bytes < current:
            raise InvalidInput(
                "shrinking the work disk is not supported",
                hint=f"the disk is {current} bytes; pass a larger --disk-size",
            )
        if size_bytes == current:
            return
        os.truncate(path, size_bytes)
        await self._run.run(["e2fsck", "-f", "-y", str(path)], check=False)
        await self._run.run(["resize2fs", str(path)])
