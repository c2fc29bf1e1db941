"""Staging a VM's jail: its own files linked and given to its uid, shared files linked only
where everyone may read them, the record the daemon finds it by, removal, and where the
jailer is looked for."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from banger.core.confine import RunAs
from banger.core.jailer import Jail
from banger.host.vmm import jailer as jailer_module
from banger.host.vmm.jailer import find_jailer, read_jail, remove_jail, stage_jail

ME = RunAs(os.getuid(), os.getgid())  # chown to oneself needs no root


@pytest.fixture
def taps(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, RunAs]]:
    handed: list[tuple[str, RunAs]] = []
    monkeypatch.setattr(jailer_module, "give_tap", lambda tap, who: handed.append((tap, who)))
    return handed


def test_a_jail_links_the_vms_files_and_records_itself(
    tmp_path: Path, taps: list[tuple[str, RunAs]]
) -> None:
    vm_dir, store = tmp_path / "vm", tmp_path / "kernels"
    vm_dir.mkdir()
    store.mkdir()
    work = vm_dir / "work.ext4"
    work.write_bytes(b"disk")
    kernel = store / "vmlinux"
    kernel.write_bytes(b"elf")
    kernel.chmod(0o644)
    secret_base = store / "base.ext4"
    secret_base.write_bytes(b"base")
    secret_base.chmod(0o600)
    jail = Jail("vm-abc", tmp_path / "jailer")

    stage_jail(jail, ME, vm_dir, own=[work], shared={"vmlinux": kernel, "base": secret_base},
               tap="bgrabc")

    assert (jail.root / "work.ext4").stat().st_ino == work.stat().st_ino
    assert (jail.root / "vmlinux").stat().st_ino == kernel.stat().st_ino
    # Not readable by everyone: a copy of its own, so the original's owner stays.
    copy = jail.root / "base"
    assert copy.stat().st_ino != secret_base.stat().st_ino
    assert copy.read_bytes() == b"base" and copy.stat().st_mode & 0o777 == 0o400
    assert read_jail(vm_dir) == jail
    assert taps == [("bgrabc", ME)]


def test_staging_again_starts_afresh_and_removal_is_idempotent(
    tmp_path: Path, taps: list[tuple[str, RunAs]]
) -> None:
    vm_dir = tmp_path / "vm"
    vm_dir.mkdir()
    jail = Jail("vm-abc", tmp_path / "jailer")
    stage_jail(jail, ME, vm_dir, own=[], shared={}, tap="t")
    (jail.root / "firecracker.sock").touch()
    stage_jail(jail, ME, vm_dir, own=[], shared={}, tap="t")
    assert not (jail.root / "firecracker.sock").exists()
    remove_jail(vm_dir)
    remove_jail(vm_dir)
    assert not jail.instance_dir.exists() and read_jail(vm_dir) is None


def test_the_jailer_is_the_configured_one_else_beside_firecracker_else_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jailer_module.hostinfo, "which",
                        lambda tool: f"/on/path/{tool}" if tool == "jailer" else None)
    firecracker = tmp_path / "firecracker"
    firecracker.touch()
    assert find_jailer(None, str(firecracker)) == "/on/path/jailer"
    beside = tmp_path / "jailer"
    beside.touch()
    beside.chmod(0o755)
    assert find_jailer(None, str(firecracker)) == str(beside)
    assert find_jailer("my-jailer", str(firecracker)) is None  # configured: only that one
