"""The jailer's command line and the jail's layout (banger.core.jailer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from banger.core.confine import RunAs, vmm_limits
from banger.core.jailer import Jail, jailer_argv

LIMITS = vmm_limits(memory_mib=512, vcpu=2, tcg=False)
JAIL = Jail("vm-0123456789ab", Path("/var/lib/banger/jailer"))


def test_the_jail_is_where_the_jailer_makes_it() -> None:
    assert JAIL.root == Path("/var/lib/banger/jailer/firecracker/vm-0123456789ab/root")
    assert JAIL.instance_dir == JAIL.root.parent
    assert JAIL.outside("/firecracker.sock") == JAIL.root / "firecracker.sock"


@pytest.mark.parametrize("bad", ["", "a/b", "../x", "x" * 65, "vm_1"])
def test_ids_the_jailer_refuses_are_refused_here(bad: str) -> None:
    with pytest.raises(ValueError):
        Jail(bad, Path("/j"))


def test_v2_argv_sets_the_vms_cgroup_and_passes_firecrackers_own_args_after_the_dash() -> None:
    argv = jailer_argv(
        "/usr/bin/jailer", "/usr/bin/firecracker", JAIL, RunAs(1900000003, 1900000003),
        cgroup_version="v2", parent_cgroup="banger", limits=LIMITS,
        firecracker_args=["--api-sock", "/firecracker.sock"],
    )
    assert argv[:13] == [
        "/usr/bin/jailer", "--id", "vm-0123456789ab", "--exec-file", "/usr/bin/firecracker",
        "--uid", "1900000003", "--gid", "1900000003",
        "--chroot-base-dir", "/var/lib/banger/jailer", "--cgroup-version", "2",
    ]
    assert argv[argv.index("--parent-cgroup") + 1] == "banger"
    cgroups = [argv[i + 1] for i, a in enumerate(argv) if a == "--cgroup"]
    assert cgroups == [f"memory.max={LIMITS.memory_bytes}", f"pids.max={LIMITS.pids}",
                       f"cpu.weight={LIMITS.cpu_weight}"]
    assert argv[argv.index("--"):] == ["--", "--api-sock", "/firecracker.sock"]
    assert "--id" not in argv[argv.index("--"):]  # the jailer passes it on itself


def test_v1_argv_uses_v1_files_and_no_cgroups_leaves_them_out() -> None:
    v1 = jailer_argv("j", "f", JAIL, RunAs(5, 5), cgroup_version="v1", parent_cgroup="banger",
                     limits=LIMITS, firecracker_args=[])
    assert v1[v1.index("--cgroup-version") + 1] == "1"
    assert f"memory.limit_in_bytes={LIMITS.memory_bytes}" in v1
    assert f"cpu.shares={LIMITS.cpu_shares}" in v1
    none = jailer_argv("j", "f", JAIL, RunAs(5, 5), cgroup_version=None, parent_cgroup="",
                       limits=LIMITS, firecracker_args=[])
    assert not {"--cgroup", "--cgroup-version", "--parent-cgroup"} & set(none)
    assert none[-1] == "--"
