"""start_vmm puts the VMM in its cgroup, and a VMM that cannot be confined does not run."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from banger.core.confine import CgroupLimits
from banger.core.errors import BootFailed, HostError
from banger.host.processes import pid_alive
from banger.host.vmm.launch import CgroupPlacement, start_vmm
from tests.support.host_fakes import FakeCgroups

LIMITS = CgroupLimits(1 << 30, 100, 100)


async def ready() -> bool:
    return True


async def test_the_vmm_is_moved_into_its_cgroup(tmp_path: Path) -> None:
    cgroups = FakeCgroups()
    children: dict[int, subprocess.Popen[bytes]] = {}
    pid, up = await start_vmm(
        ["sleep", "30"], log_path=tmp_path / "vmm.log", children=children, what="sleep",
        ready=ready, timeout=5, cgroup=CgroupPlacement(cgroups, "vm-abc", LIMITS),
    )
    try:
        assert up
        assert cgroups.groups == {"vm-abc": (pid, LIMITS)}
    finally:
        children[pid].kill()
        children[pid].wait()


async def test_a_vmm_that_cannot_be_confined_is_killed(tmp_path: Path) -> None:
    class Refusing(FakeCgroups):
        def confine(self, name: str, pid: int, limits: CgroupLimits) -> None:
            self.pid = pid
            raise HostError("cannot write to memory.limit_in_bytes")

    cgroups = Refusing()
    children: dict[int, subprocess.Popen[bytes]] = {}
    with pytest.raises(BootFailed, match="could not be confined"):
        await start_vmm(
            ["sleep", "30"], log_path=tmp_path / "vmm.log", children=children, what="sleep",
            ready=ready, timeout=5, cgroup=CgroupPlacement(cgroups, "vm-abc", LIMITS),
        )
    assert children == {}
    assert not pid_alive(cgroups.pid)
