"""Firecracker through its jailer, end to end: a root daemon with `jailer_bin` boots a
Firecracker-backend VM through the jailer stand-in (tests/support/jailer_standin.py) and the
Firecracker stand-in; from the host, the VMM process runs as the VM's own unprivileged uid,
chrooted in its jail, in its cgroup with the VM's limits; the guest boots to its login prompt;
stop and delete remove the jail and give the uid back."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from banger.core.confine import DEFAULT_VMM_UIDS, uid_range, vmm_limits
from banger.host.vmm.jailer import read_jail
from banger.host.vmmuser import REGISTRY, host_ids_in
from tests.e2e.conftest import BANGER, BangerEnv
from tests.e2e.test_confinement import _cgroup_dir, _status, pytestmark
from tests.support.firecracker_standin import write_wrapper
from tests.support.jailer_standin import write_jailer

__all__ = ["pytestmark"]  # needs a memory cgroup, like the QEMU confinement tests


def test_a_firecracker_vm_boots_jailed_as_its_uid_in_its_chroot_and_cgroup(
    second_banger: Callable[..., BangerEnv], tmp_path: Path
) -> None:
    firecracker = write_wrapper(tmp_path / "bin")
    jailer = write_jailer(tmp_path / "jbin")
    env = second_banger(f'backend = "firecracker"\nfirecracker_bin = "{firecracker}"\n'
                        f'jailer_bin = "{jailer}"\nboot_timeout = 60\n')
    created = env.json("vm", "create", "--name", "fcj", "--memory", "1024", "--no-start")
    vm_dir = Path(created["dir"])
    # Started in the background: the checks below are about the VMM from the host, made as
    # soon as it runs; the guest's boot is checked on its console.
    starting = subprocess.Popen(
        env.netns.exec_argv([*BANGER, "vm", "start", "fcj"]), env=env.env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while (pid := env.json("vm", "show", "fcj")["pid"]) is None:
            assert time.monotonic() < deadline and starting.poll() is None
            time.sleep(0.5)
        jail = read_jail(vm_dir)
        assert jail is not None and jail.root.is_dir()

        status = _status(pid)
        uid = int(status["Uid"].split()[0])
        assert status["Uid"].split() == [str(uid)] * 4
        assert status["Gid"].split() == [str(uid)] * 4
        assert uid in uid_range(DEFAULT_VMM_UIDS) and host_ids_in(range(uid, uid + 1)) == []
        assert status["CapEff"].strip() == "0000000000000000"
        # Its `/` is the jail: the same directory the host sees under the chroot base.
        assert os.stat(f"/proc/{pid}/root") == os.stat(jail.root)
        assert (vm_dir / "work.ext4").stat().st_uid == uid

        limits = vmm_limits(memory_mib=1024, vcpu=created["spec"]["vcpu"], tcg=False)
        memory = _cgroup_dir(pid, "memory")
        assert memory.name == f"vm-{created['id']}" == jail.id
        limit_file = "memory.limit_in_bytes" if (memory / "memory.limit_in_bytes").exists() \
            else "memory.max"
        assert int((memory / limit_file).read_text()) == limits.memory_bytes
        assert int((_cgroup_dir(pid, "pids") / "pids.max").read_text()) == limits.pids
        doctor = env.run("doctor", check=False).stdout
        assert "firecracker confinement" in doctor and "not confined" not in doctor

        # The guest boots in there: its console (linked into the jail) reaches a login.
        console = vm_dir / "console.log"
        deadline = time.monotonic() + 600
        while "fcj login:" not in console.read_text(errors="replace"):
            assert time.monotonic() < deadline, console.read_text(errors="replace")[-2000:]
            time.sleep(2)
    finally:
        starting.kill()
        starting.wait()

    env.run("vm", "stop", "fcj", check=False)
    assert not jail.instance_dir.exists()
    env.run("vm", "delete", "--force", "fcj")
    assert not vm_dir.exists()
    claims = {p.read_text() for p in REGISTRY.iterdir() if p.name.isdigit()}
    assert str(vm_dir) not in claims
