from __future__ import annotations

from pathlib import Path

import pytest

from banger.core.errors import InvalidInput
from banger.core.guest import WORK_DISK_LABEL
from banger.host.disks import HostDisks
from tests.support.host_fakes import FakeRunner


async def test_overlay_is_backed_by_the_shared_base(tmp_path: Path) -> None:
    runner = FakeRunner()
    base = tmp_path / "rootfs.ext4"
    base.write_bytes(b"")
    await HostDisks(runner).create_overlay(base, tmp_path / "root.qcow2")
    [argv] = runner.calls
    assert argv[:2] == ("qemu-img", "create")
    assert argv[argv.index("-b") + 1] == str(base.resolve())
    assert argv[argv.index("-F") + 1] == "raw"
    assert argv[-1] == str(tmp_path / "root.qcow2")


async def test_work_disk_is_sparse_and_labelled(tmp_path: Path) -> None:
    runner = FakeRunner()
    disk = tmp_path / "work.ext4"
    await HostDisks(runner, as_root=True).create_work_disk(disk, 1 << 30, tmp_path / "staging")
    assert disk.stat().st_size == 1 << 30
    assert disk.stat().st_blocks * 512 < 1 << 20
    [argv] = runner.calls
    assert argv[0] == "mkfs.ext4"
    assert argv[argv.index("-L") + 1] == WORK_DISK_LABEL
    assert argv[argv.index("-d") + 1] == str(tmp_path / "staging")


async def test_an_ordinary_users_staged_files_become_roots_in_the_guest(
        tmp_path: Path) -> None:
    runner = FakeRunner()
    staging = tmp_path / "staging"
    (staging / ".ssh").mkdir(parents=True)
    (staging / ".ssh/authorized_keys").write_text("key\n")
    await HostDisks(runner, as_root=False).create_work_disk(tmp_path / "w.ext4", 1 << 30, staging)
    assert runner.calls[1] == ("debugfs", "-w", "-f", "-", str(tmp_path / "w.ext4"))
    script = (runner.inputs[1] or b"").decode()
    assert 'sif "/.ssh/authorized_keys" uid 0' in script and 'sif "/.ssh" gid 0' in script
    await HostDisks(runner, as_root=True).create_work_disk(tmp_path / "r.ext4", 1 << 30, staging)
    assert runner.calls[-1][0] == "mkfs.ext4"


async def test_grow_resizes_the_filesystem(tmp_path: Path) -> None:
    runner = FakeRunner()
    disk = tmp_path / "work.ext4"
    disk.write_bytes(b"\0" * 4096)
    await HostDisks(runner).grow_work_disk(disk, 8192)
    assert disk.stat().st_size == 8192
    assert [argv[0] for argv in runner.calls] == ["e2fsck", "resize2fs"]


async def test_grow_to_the_same_size_does_nothing(tmp_path: Path) -> None:
    runner = FakeRunner()
    disk = tmp_path / "work.ext4"
    disk.write_bytes(b"\0" * 4096)
    await HostDisks(runner).grow_work_disk(disk, 4096)
    assert runner.calls == []


async def test_shrinking_is_refused(tmp_path: Path) -> None:
    runner = FakeRunner()
    disk = tmp_path / "work.ext4"
    disk.write_bytes(b"\0" * 4096)
    with pytest.raises(InvalidInput, match="shrinking"):
        await HostDisks(runner).grow_work_disk(disk, 1024)
    assert disk.stat().st_size == 4096
    assert runner.calls == []
