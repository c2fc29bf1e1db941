"""One cgroup per VMM process, under banger's own: its memory ceiling, thread ceiling and CPU
weight (banger.core.confine), and what it uses for `vm stats`.

cgroup v2 where the host's unified hierarchy has the memory controller, v1 (one hierarchy per
controller under /sys/fs/cgroup/<controller>) otherwise. A VM's cgroup is left behind empty
when its VMM exits; the next VMM start removes empty ones (a cgroup with a process in it
cannot be removed, so this never touches a running VM's).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Protocol

from banger.core.confine import CgroupLimits
from banger.core.errors import HostError
from banger.core.stats import CgroupFigures

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "banger"
# An empty cgroup younger than this may be one another daemon just made and is about to
# move its VMM into.
_PRUNE_AGE = 60.0


class VMCgroups(Protocol):
    version: str  # "v1" | "v2"

    def confine(self, name: str, pid: int, limits: CgroupLimits) -> None:
        """Make the cgroup `name` (again) with `limits` and move `pid` into it."""
        ...

    def usage(self, name: str) -> CgroupFigures | None:
        """None if there is no such cgroup."""
        ...

    def prepare_parent(self) -> str:
        """Make banger's own cgroup, ready for VM cgroups that someone else makes in it
        (Firecracker's jailer); its path relative to the hierarchy's root."""
        ...


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as exc:
        raise HostError(f"cannot write {value.strip()!r} to {path}: {exc.strerror}") from exc


def _read_int(path: Path) -> int | None:
    """A cgroup file's number; None for "max" or a limit so large it means none."""
    try:
        text = path.read_text().split()[0]
    except (OSError, IndexError):
        return None
    if text == "max":
        return None
    value = int(text)
    return None if value >= 1 << 62 else value


def _prune(parent: Path) -> None:
    try:
        children = [entry for entry in parent.iterdir() if entry.is_dir()]
    except OSError:
        return
    now = time.time()
    for child in children:
        with contextlib.suppress(OSError):
            if now - child.stat().st_mtime > _PRUNE_AGE:
                child.rmdir()  # refused (EBUSY) while a process is in it


def _remake(group: Path) -> None:
    with contextlib.suppress(OSError):
        group.rmdir()  # a stale one of an earlier start: its limits may differ
    _make(group)


def _make(group: Path) -> None:
    try:
        group.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HostError(f"cannot make cgroup {group}: {exc.strerror}",
                        hint="bangerd needs root to confine VMMs in cgroups") from exc


class CgroupV1:
    """Separate hierarchies: memory, pids and cpu each get `banger/<name>`."""

    version = "v1"

    def __init__(self, root: Path = CGROUP_ROOT, parent: str = PARENT) -> None:
        self._root = root
        self._parent = parent

    def _group(self, controller: str, name: str) -> Path:
        return self._root / controller / self._parent / name

    def prepare_parent(self) -> str:
        for controller in ("memory", "pids", "cpu"):
            _prune(self._root / controller / self._parent)
            _make(self._root / controller / self._parent)
        return self._parent

    def confine(self, name: str, pid: int, limits: CgroupLimits) -> None:
        settings = {
            "memory": {"memory.limit_in_bytes": limits.memory_bytes},
            "pids": {"pids.max": limits.pids},
            "cpu": {"cpu.shares": limits.cpu_shares},
        }
        for controller, files in settings.items():
            _prune(self._root / controller / self._parent)
            group = self._group(controller, name)
            _remake(group)
            for file, value in files.items():
                _write(group / file, f"{value}\n")
            _write(group / "cgroup.procs", f"{pid}\n")

    def usage(self, name: str) -> CgroupFigures | None:
        memory, pids = self._group("memory", name), self._group("pids", name)
        if not memory.is_dir():
            return None
        return CgroupFigures(
            memory_bytes=_read_int(memory / "memory.usage_in_bytes") or 0,
            memory_limit=_read_int(memory / "memory.limit_in_bytes"),
            pids=_read_int(pids / "pids.current") or 0,
            pids_limit=_read_int(pids / "pids.max"),
        )


class CgroupV2:
    """The unified hierarchy: `banger/<name>` with memory, pids and cpu enabled for it."""

    version = "v2"
    _CONTROLLERS = ("memory", "pids", "cpu")

    def __init__(self, root: Path = CGROUP_ROOT, parent: str = PARENT) -> None:
        self._root = root
        self._parent = root / parent

    def _group(self, name: str) -> Path:
        return self._parent / name

    def prepare_parent(self) -> str:
        enable = " ".join(f"+{c}" for c in self._CONTROLLERS) + "\n"
        _write(self._root / "cgroup.subtree_control", enable)
        _make(self._parent)
        _write(self._parent / "cgroup.subtree_control", enable)
        _prune(self._parent)
        return self._parent.name

    def confine(self, name: str, pid: int, limits: CgroupLimits) -> None:
        self.prepare_parent()
        group = self._group(name)
        _remake(group)
        _write(group / "memory.max", f"{limits.memory_bytes}\n")
        _write(group / "pids.max", f"{limits.pids}\n")
        _write(group / "cpu.weight", f"{limits.cpu_weight}\n")
        _write(group / "cgroup.procs", f"{pid}\n")

    def usage(self, name: str) -> CgroupFigures | None:
        group = self._group(name)
        if not group.is_dir():
            return None
        return CgroupFigures(
            memory_bytes=_read_int(group / "memory.current") or 0,
            memory_limit=_read_int(group / "memory.max"),
            pids=_read_int(group / "pids.current") or 0,
            pids_limit=_read_int(group / "pids.max"),
        )


def detect_cgroups(root: Path = CGROUP_ROOT) -> VMCgroups | None:
    """v2 if the unified hierarchy at `root` offers the memory controller, else v1 if
    `root` holds a memory hierarchy; None if neither (or the daemon is not root: it could
    not make cgroups there)."""
    if os.geteuid() != 0:
        return None
    try:
        controllers = (root / "cgroup.controllers").read_text().split()
    except OSError:
        controllers = []
    if "memory" in controllers:
        return CgroupV2(root)
    if (root / "memory" / "memory.limit_in_bytes").exists():
        return CgroupV1(root)
    return None

