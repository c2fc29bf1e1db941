"""A writable root for VMMs that cannot stack a qcow2 on the base image (Firecracker), without
copying the base:

- `reflink`: `cp --reflink=always` of the base (btrfs, xfs, bcachefs...): the copy shares
  every block with the base until the guest writes it; a raw disk the VM owns.
- `overlay`: elsewhere (ext4...), the base itself as a read-only drive plus a sparse ext4
  overlay disk of the VM's own; the guest combines them into an overlayfs `/` in its
  initramfs (see banger.core.guest, "Root overlay").

The chosen layout is written to `root.json` in the VM dir, so a start after a daemon restart
boots the same disks.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from banger.core.errors import HostError
from banger.core.guest import OVERLAY_DISK_LABEL
from banger.host.processes import CommandRunner

LAYOUT_FILE = "root.json"
ROOT_COPY = "root.ext4"
OVERLAY_DISK = "overlay.ext4"
MODES = ("auto", "reflink", "overlay")


@dataclass(frozen=True)
class RootLayout:
    mode: str  # "reflink" | "overlay"
    base: str
    root: str  # the root drive: the reflinked copy, or the base itself (read-only)
    overlay: str | None = None

    @property
    def root_read_only(self) -> bool:
        return self.mode == "overlay"


def read_layout(vm_dir: Path) -> RootLayout:
    try:
        data = json.loads((vm_dir / LAYOUT_FILE).read_text())
        return RootLayout(**data)
    except (OSError, ValueError, TypeError) as exc:
        raise HostError(
            f"{vm_dir / LAYOUT_FILE} is missing or unreadable: {exc}",
            hint="this VM was not created for Firecracker; create a new one with --backend",
        ) from exc


class RootDisks:
    def __init__(self, runner: CommandRunner, mode: str = "auto") -> None:
        if mode not in MODES:
            raise ValueError(f"unknown root disk mode {mode!r}")
        self._run = runner
        self._mode = mode

    async def create(self, base: Path, vm_dir: Path, size_bytes: int) -> RootLayout:
        layout = None
        if self._mode in ("auto", "reflink"):
            layout = await self._reflink(base.resolve(), vm_dir)
            if layout is None and self._mode == "reflink":
                raise HostError(
                    f"cannot reflink {base} into {vm_dir}: the filesystem does not share blocks",
                    hint="keep the state dir on btrfs or xfs (reflink=1), or use mode auto",
                )
        if layout is None:
            layout = await self._overlay(base.resolve(), vm_dir, size_bytes)
        (vm_dir / LAYOUT_FILE).write_text(json.dumps(asdict(layout)) + "\n")
        return layout

    async def clone(self, source_dir: Path, vm_dir: Path) -> RootLayout:
        """`vm_dir` gets the root layout of `source_dir` (a warm template's): the same mode
        and base, and its own copy of what the source wrote there (the reflinked root, or the
        overlay disk; `cp` keeps it sparse and shares blocks where it can)."""
        source = read_layout(source_dir)
        name = ROOT_COPY if source.mode == "reflink" else OVERLAY_DISK
        target = vm_dir / name
        await self._run.run(["cp", "--reflink=auto", str(source_dir / name), str(target)])
        if source.mode == "reflink":
            layout = RootLayout("reflink", source.base, str(target))
        else:
            layout = RootLayout("overlay", source.base, source.base, str(target))
        (vm_dir / LAYOUT_FILE).write_text(json.dumps(asdict(layout)) + "\n")
        return layout

    async def _reflink(self, base: Path, vm_dir: Path) -> RootLayout | None:
        target = vm_dir / ROOT_COPY
        result = await self._run.run(
            ["cp", "--reflink=always", str(base), str(target)], check=False
        )
        if result.returncode != 0:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
            return None
        return RootLayout("reflink", str(base), str(target))

    async def _overlay(self, base: Path, vm_dir: Path, size_bytes: int) -> RootLayout:
        disk = vm_dir / OVERLAY_DISK
        with open(disk, "wb") as f:
            f.truncate(size_bytes)  # sparse: costs what the guest writes, plus ext4 metadata
        await self._run.run([
            "mkfs.ext4", "-q", "-F", "-L", OVERLAY_DISK_LABEL, "-E", "root_owner=0:0", str(disk),
        ])
        return RootLayout("overlay", str(base), str(base), str(disk))
