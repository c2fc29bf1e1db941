"""FirecrackerHypervisor through the jailer stand-in (tests/support/jailer_standin.py) with
the Firecracker stand-in's pretend guest: the VMM runs as the VM's uid, chrooted in its
jail, its files linked there, the daemon reaching its socket in the jail; stop and release
remove the jail. Needs root (the jailer's chroot and uid switch)."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

from banger.core.confine import RunAs
from banger.core.errors import InvalidState
from banger.host.processes import pid_cmdline
from banger.host.vmm import jailer as jailer_module
from banger.host.vmm.firecracker import FirecrackerHypervisor
from banger.host.vmm.jailer import read_jail
from banger.host.vmm.launch import Confinement
from banger.host.vmmuser import FixedVMMUids
from tests.host.test_firecracker_backend import kernel, make_spec
from tests.support.firecracker_standin import write_wrapper
from tests.support.host_fakes import FakeRunner
from tests.support.jailer_standin import write_jailer

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the jailer needs root")
UID = 1900065001
__all__ = ["kernel"]  # the fixture, shared with the unjailed tests


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if ":" in line)


async def test_a_jailed_vmm_runs_as_its_uid_in_its_chroot_until_stopped(
    tmp_path: Path, kernel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handed: list[str] = []
    monkeypatch.setattr(jailer_module, "give_tap", lambda tap, who: handed.append(tap))
    binary = write_wrapper(tmp_path / "bin", guest="none")
    uids = FixedVMMUids(RunAs(UID, UID))
    # Short: the API socket's path in the jail must fit a Unix socket address (108 bytes).
    base = Path(tempfile.mkdtemp(prefix="bj-", dir="/tmp"))
    hypervisor = FirecrackerHypervisor(
        str(binary), tmp_path / "cache", runner=FakeRunner(), confinement=Confinement(
            uids=uids), jailer_bin=str(write_jailer(tmp_path / "jbin")), chroot_base=base,
    )
    spec = make_spec(tmp_path, kernel)
    pid = await hypervisor.start(spec)
    try:
        jail = read_jail(spec.vm_dir)
        assert jail is not None and jail.root.is_relative_to(base)
        assert _status(pid)["Uid"].split() == [str(UID)] * 4
        assert os.stat(f"/proc/{pid}/root") == os.stat(jail.root)
        assert f"--id={jail.id}" in pid_cmdline(pid)
        assert hypervisor.is_running(pid, spec.vm_dir)
        assert (jail.root / "firecracker.sock").exists()
        assert (spec.vm_dir / "work.ext4").stat().st_uid == UID
        assert hypervisor.agent_socket(spec.vm_dir) == jail.root / "vsock.sock"
        log = (spec.vm_dir / "firecracker.log").read_text()  # linked: written in the jail
        assert "PUT /actions was executed successfully" in log
        assert handed == [spec.tap]
        with pytest.raises(InvalidState, match="no snapshots"):
            await hypervisor.snapshot(spec.vm_dir)
        await hypervisor.pause(spec.vm_dir)
        await hypervisor.resume(spec.vm_dir)
        assert await hypervisor.stop(pid, spec.vm_dir, timeout=10) is True
        assert not jail.instance_dir.exists() and read_jail(spec.vm_dir) is None
        await hypervisor.release(spec.vm_dir)
        await hypervisor.release(spec.vm_dir)
        assert uids.released == [spec.vm_dir, spec.vm_dir]
    finally:
        hypervisor.kill(pid, signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)


async def test_without_a_jailer_firecracker_runs_as_today(
    tmp_path: Path, kernel: Path
) -> None:
    hypervisor = FirecrackerHypervisor(
        str(write_wrapper(tmp_path / "bin", guest="none")), tmp_path / "cache",
        runner=FakeRunner(), confinement=Confinement(uids=FixedVMMUids(RunAs(UID, UID))),
        jailer_bin=str(tmp_path / "no-jailer"),
    )
    spec = make_spec(tmp_path, kernel)
    pid = await hypervisor.start(spec)
    try:
        assert read_jail(spec.vm_dir) is None
        assert _status(pid)["Uid"].split()[0] == str(os.geteuid())
    finally:
        hypervisor.kill(pid, signal.SIGKILL)


def test_jailed_vmms_make_no_warm_templates(tmp_path: Path) -> None:
    # A template's state and memory would live outside every VM's jail.
    def hypervisor(jailer: Path, uids: FixedVMMUids) -> FirecrackerHypervisor:
        return FirecrackerHypervisor(
            str(write_wrapper(tmp_path / "bin", guest="none")), tmp_path / "cache",
            runner=FakeRunner(), confinement=Confinement(uids=uids), jailer_bin=str(jailer),
        )

    jailer = write_jailer(tmp_path / "jbin")
    assert not hypervisor(jailer, FixedVMMUids(RunAs(UID, UID))).makes_templates()
    assert hypervisor(jailer, FixedVMMUids(None)).makes_templates()
    assert hypervisor(tmp_path / "no-jailer", FixedVMMUids(RunAs(UID, UID))).makes_templates()
