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
        mkfs = [
            "mkfs.ext4", "-q", "-F", "-L", WORK_DISK_LABEL, "-E", "root_owner=0:0",
            "-d", str(staging), str(path),
        ]
        # mkfs copies each file's owner: a daemon that is not root would hand the guest's
        # /root/.ssh to its own uid, which sshd's StrictModes refuses. In a user namespace
        # that maps the daemon's uid to root (as mmdebstrap's unshare mode does), the
        # staged files read as root's.
        await self._run.run(mkfs if self._as_root else ["unshare", "--map-root-user", *mkfs])

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
