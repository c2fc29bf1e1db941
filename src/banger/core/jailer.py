"""Starting Firecracker through its jailer: the command line and the jail's layout. Pure
values; host/vmm/jailer.py stages the jail and host/vmm/firecracker.py runs it.

How the jailer works (Firecracker's docs/jailer.md): run as root, it makes the directory
`<chroot base>/<exec file name>/<id>/root`, copies the Firecracker binary into it, makes
the cgroup `<parent cgroup>/<id>` with the values it is given and moves itself there, then
enters a mount namespace of its own whose root is that directory, makes `/dev/kvm` and
`/dev/net/tun` there, gives the directory to the uid and gid it was given, switches to
them and execs the copied binary with `--id` and whatever follows `--`. Its PID is then
Firecracker's. Everything Firecracker opens by path (kernel, drives, log, metrics, console,
its API and vsock sockets) must therefore be inside that directory, readable or writable
by that uid; the daemon reaches the sockets there from outside.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from banger.core.confine import CgroupLimits, RunAs

JAILED_NAME = "firecracker"  # the jailer refuses an exec file whose name lacks it
# Ids: letters, digits and hyphens, at most 64 (the jailer's own rule).
_ID = re.compile(r"[A-Za-z0-9-]{1,64}")


@dataclass(frozen=True)
class Jail:
    """One VM's jail: `id` names it, its chroot and its cgroup."""

    id: str
    chroot_base: Path

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.id):
            raise ValueError(f"{self.id!r} is not a jailer id")

    @property
    def root(self) -> Path:
        """The chroot: `/` as the jailed Firecracker sees it."""
        return self.chroot_base / JAILED_NAME / self.id / "root"

    @property
    def instance_dir(self) -> Path:
        """What the jailer made for this id (the chroot's parent): removed as a whole."""
        return self.root.parent

    def outside(self, inside: str) -> Path:
        """The host's path of a path as the jailed Firecracker sees it."""
        return self.root / inside.lstrip("/")


def jailer_argv(
    jailer: str, firecracker: str, jail: Jail, run_as: RunAs, *,
    cgroup_version: str | None, parent_cgroup: str, limits: CgroupLimits,
    firecracker_args: list[str],
) -> list[str]:
    """The jailer's command line: `cgroup_version` "v1"/"v2", or None to leave cgroups out
    (the host has none banger can use); `firecracker_args` as Firecracker gets them (it
    gets `--id` from the jailer)."""
    argv = [
        jailer,
        "--id", jail.id,
        "--exec-file", firecracker,
        "--uid", str(run_as.uid),
        "--gid", str(run_as.gid),
        "--chroot-base-dir", str(jail.chroot_base),
    ]
    if cgroup_version is not None:
        argv += ["--cgroup-version", cgroup_version.removeprefix("v"),
                 "--parent-cgroup", parent_cgroup]
        settings = (
            {"memory.max": limits.memory_bytes, "pids.max": limits.pids,
             "cpu.weight": limits.cpu_weight}
            if cgroup_version == "v2" else
            {"memory.limit_in_bytes": limits.memory_bytes, "pids.max": limits.pids,
             "cpu.shares": limits.cpu_shares}
        )
        for key, value in settings.items():
            argv += ["--cgroup", f"{key}={value}"]
    return [*argv, "--", *firecracker_args]
