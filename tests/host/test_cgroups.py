"""The cgroup adapter against directory trees shaped like /sys/fs/cgroup (v1 and v2)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from banger.core.confine import CgroupLimits
from banger.core.errors import HostError
from banger.host import cgroups
from banger.host.cgroups import CgroupV1, CgroupV2, detect_cgroups

LIMITS = CgroupLimits(memory_bytes=1536 << 20, pids=98, cpu_weight=200)


def v1_tree(root: Path) -> Path:
    for controller in ("memory", "pids", "cpu"):
        (root / controller).mkdir(parents=True)
    (root / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    return root


def v2_tree(root: Path, controllers: str = "cpuset cpu io memory hugetlb pids") -> Path:
    root.mkdir(exist_ok=True)
    (root / "cgroup.controllers").write_text(controllers + "\n")
    return root


def test_v1_writes_each_controllers_limit_and_moves_the_process(tmp_path: Path) -> None:
    root = v1_tree(tmp_path)
    CgroupV1(root).confine("vm-abc", 4242, LIMITS)
    assert (root / "memory/banger/vm-abc/memory.limit_in_bytes").read_text() == f"{1536 << 20}\n"
    assert (root / "pids/banger/vm-abc/pids.max").read_text() == "98\n"
    assert (root / "cpu/banger/vm-abc/cpu.shares").read_text() == "2048\n"
    for controller in ("memory", "pids", "cpu"):
        assert (root / controller / "banger/vm-abc/cgroup.procs").read_text() == "4242\n"


def test_v1_usage(tmp_path: Path) -> None:
    root = v1_tree(tmp_path)
    v1 = CgroupV1(root)
    assert v1.usage("vm-abc") is None
    v1.confine("vm-abc", 4242, LIMITS)
    (root / "memory/banger/vm-abc/memory.usage_in_bytes").write_text("1000\n")
    (root / "pids/banger/vm-abc/pids.current").write_text("7\n")
    usage = v1.usage("vm-abc")
    assert usage is not None
    assert (usage.memory_bytes, usage.memory_limit, usage.pids, usage.pids_limit) == (
        1000, 1536 << 20, 7, 98
    )


def test_v2_enables_the_controllers_for_banger_and_writes_the_limits(tmp_path: Path) -> None:
    root = v2_tree(tmp_path)
    v2 = CgroupV2(root)
    v2.confine("vm-abc", 4242, LIMITS)
    assert (root / "cgroup.subtree_control").read_text() == "+memory +pids +cpu\n"
    assert (root / "banger/cgroup.subtree_control").read_text() == "+memory +pids +cpu\n"
    group = root / "banger/vm-abc"
    assert (group / "memory.max").read_text() == f"{1536 << 20}\n"
    assert (group / "pids.max").read_text() == "98\n"
    assert (group / "cpu.weight").read_text() == "200\n"
    assert (group / "cgroup.procs").read_text() == "4242\n"
    (group / "memory.current").write_text("2000\n")
    (group / "pids.current").write_text("5\n")
    (group / "pids.max").write_text("max\n")
    usage = v2.usage("vm-abc")
    assert usage is not None
    assert (usage.memory_bytes, usage.memory_limit, usage.pids, usage.pids_limit) == (
        2000, 1536 << 20, 5, None
    )


def test_empty_cgroups_of_gone_vmms_are_removed_at_the_next_start(tmp_path: Path) -> None:
    root = v2_tree(tmp_path)
    old_empty, old_busy, fresh = (root / "banger" / n for n in ("vm-old", "vm-busy", "vm-new"))
    for group in (old_empty, old_busy, fresh):
        group.mkdir(parents=True)
    (old_busy / "cgroup.procs").write_text("1\n")  # cgroupfs refuses rmdir: here, not empty
    an_hour_ago = old_empty.stat().st_mtime - 3600
    for group in (old_empty, old_busy):
        os.utime(group, (an_hour_ago, an_hour_ago))
    CgroupV2(root).confine("vm-abc", 4242, LIMITS)
    assert not old_empty.exists()
    assert old_busy.exists() and fresh.exists()


def test_a_cgroup_that_cannot_be_written_is_a_host_error(tmp_path: Path) -> None:
    root = v2_tree(tmp_path)
    (root / "banger").write_text("not a directory")
    with pytest.raises(HostError):
        CgroupV2(root).confine("vm-abc", 4242, LIMITS)


def test_detect_prefers_v2_with_the_memory_controller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cgroups.os, "geteuid", lambda: 0)
    assert isinstance(detect_cgroups(v2_tree(tmp_path / "v2")), CgroupV2)
    # This host's layout: v1 controllers, and a v2 hierarchy without controllers beside.
    hybrid = v1_tree(tmp_path / "hybrid")
    v2_tree(hybrid / "unified", "")
    assert isinstance(detect_cgroups(hybrid), CgroupV1)
    assert detect_cgroups(v2_tree(tmp_path / "bare", "")) is None
    monkeypatch.setattr(cgroups.os, "geteuid", lambda: 1000)
    assert detect_cgroups(v2_tree(tmp_path / "v2")) is None
