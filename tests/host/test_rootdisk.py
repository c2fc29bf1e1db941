"""Per-VM roots without copying the base: reflink where the filesystem shares blocks (tested
on a loop-mounted btrfs), the overlay disk elsewhere."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from banger.core.errors import HostError
from banger.host.processes import SubprocessRunner
from banger.host.rootdisk import RootDisks, read_layout

MIB = 1024 * 1024


def _base(directory: Path) -> Path:
    base = directory / "rootfs.ext4"
    with open(base, "wb") as f:
        f.truncate(64 * MIB)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(base)], check=True)
    with open(base, "r+b") as f:  # some real data, so a copy would cost bytes
        f.seek(8 * MIB)
        f.write(os.urandom(16 * MIB))
    return base


def _allocated(path: Path) -> int:
    return path.stat().st_blocks * 512


@pytest.fixture
def btrfs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0 or shutil.which("mkfs.btrfs") is None:
        pytest.skip("needs root and mkfs.btrfs (apt-get install btrfs-progs) for a loop mount")
    image = tmp_path / "btrfs.img"
    with open(image, "wb") as f:
        f.truncate(512 * MIB)
    subprocess.run(["mkfs.btrfs", "-q", str(image)], check=True)
    mount = tmp_path / "mnt"
    mount.mkdir()
    if subprocess.run(["mount", "-o", "loop", str(image), str(mount)],
                      capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot loop-mount here")
    try:
        yield mount
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            subprocess.run(["umount", str(mount)], check=True)


async def test_reflink_shares_the_base_blocks(btrfs: Path) -> None:
    base = _base(btrfs)
    vm_dir = btrfs / "vm"
    vm_dir.mkdir()
    subprocess.run(["sync"], check=True)
    free_before = shutil.disk_usage(btrfs).free
    layout = await RootDisks(SubprocessRunner()).create(base, vm_dir, 8 * 1024 * MIB)
    subprocess.run(["sync"], check=True)
    assert layout.mode == "reflink" and not layout.root_read_only
    assert Path(layout.root).read_bytes() == base.read_bytes()
    # A copy would have cost its 16+ MiB of data; a reflink costs (almost) nothing.
    assert free_before - shutil.disk_usage(btrfs).free < 4 * MIB
    assert read_layout(vm_dir) == layout


async def test_overlay_where_the_filesystem_cannot_reflink(tmp_path: Path) -> None:
    base = _base(tmp_path)
    vm_dir = tmp_path / "vm"
    vm_dir.mkdir()
    runner = SubprocessRunner()
    if (await runner.run(["cp", "--reflink=always", str(base), str(tmp_path / "probe")],
                         check=False)).returncode == 0:
        pytest.skip("this filesystem reflinks; the overlay path is not taken here")
    layout = await RootDisks(runner).create(base, vm_dir, 8 * 1024 * MIB)
    assert layout.mode == "overlay" and layout.root == str(base) and layout.root_read_only
    overlay = Path(layout.overlay or "")
    assert overlay.stat().st_size == 8 * 1024 * MIB
    assert _allocated(overlay) < 300 * MIB  # sparse: ext4 metadata only
    label = subprocess.run(["blkid", "-s", "LABEL", "-o", "value", str(overlay)],
                           capture_output=True, text=True, check=False).stdout.strip()
    assert label == "banger-overlay"
    assert not (vm_dir / "root.ext4").exists()
    assert json.loads((vm_dir / "root.json").read_text())["mode"] == "overlay"


async def test_forced_reflink_fails_clearly_where_it_cannot(tmp_path: Path) -> None:
    base = _base(tmp_path)
    runner = SubprocessRunner()
    if (await runner.run(["cp", "--reflink=always", str(base), str(tmp_path / "probe")],
                         check=False)).returncode == 0:
        pytest.skip("this filesystem reflinks")
    (tmp_path / "vm").mkdir()
    with pytest.raises(HostError, match="cannot reflink"):
        await RootDisks(runner, "reflink").create(base, tmp_path / "vm", 64 * MIB)
    assert not (tmp_path / "vm" / "root.ext4").exists()


def test_a_vm_dir_without_a_layout_is_explained(tmp_path: Path) -> None:
    with pytest.raises(HostError, match=r"root\.json is missing"):
        read_layout(tmp_path)


async def test_clone_gives_a_vm_its_own_copy_of_a_template_root(tmp_path: Path) -> None:
    base = _base(tmp_path)
    template, vm_dir = tmp_path / "template", tmp_path / "vm"
    template.mkdir()
    vm_dir.mkdir()
    disks = RootDisks(SubprocessRunner())
    made = await disks.create(base, template, 256 * MIB)
    written = Path(made.overlay or made.root)
    with open(written, "r+b") as f:  # what the template's boot wrote
        f.seek(40 * MIB)
        f.write(b"template")
    cloned = await disks.clone(template, vm_dir)
    assert (cloned.mode, cloned.base) == (made.mode, made.base)
    own = Path(cloned.overlay or cloned.root)
    assert own.parent == vm_dir and own.read_bytes() == written.read_bytes()
    if cloned.mode == "overlay":
        assert _allocated(own) < 64 * MIB  # still sparse
    assert read_layout(vm_dir) == cloned
    with open(own, "r+b") as f:
        f.seek(40 * MIB)
        f.write(b"the clone")
    assert b"template" in written.read_bytes()[40 * MIB:40 * MIB + 16]


async def test_clone_of_a_reflinked_root_shares_its_blocks(btrfs: Path) -> None:
    base = _base(btrfs)
    template, vm_dir = btrfs / "template", btrfs / "vm"
    template.mkdir()
    vm_dir.mkdir()
    disks = RootDisks(SubprocessRunner())
    await disks.create(base, template, 64 * MIB)
    subprocess.run(["sync"], check=True)
    free_before = shutil.disk_usage(btrfs).free
    cloned = await disks.clone(template, vm_dir)
    subprocess.run(["sync"], check=True)
    assert cloned.mode == "reflink" and cloned.root == str(vm_dir / "root.ext4")
    assert free_before - shutil.disk_usage(btrfs).free < 4 * MIB
