from __future__ import annotations

import gzip
import lzma
from pathlib import Path

import pytest

from banger.core.errors import ImageBuildFailed
from banger.core.initrd import INIT_SCRIPT
from banger.host.initrd import build_initrd, tree_initrd
from tests.core.test_cpio import read_newc
from tests.core.test_initrd import elf

VERSION = "6.1.0-9-cloud-amd64"
BUSYBOX = elf(1)  # static: no interpreter segment

# path -> depends, as the .modinfo section of a real module carries them.
MODULES = {
    "kernel/drivers/virtio/virtio.ko": "",
    "kernel/drivers/virtio/virtio_ring.ko": "virtio",
    "kernel/drivers/virtio/virtio_mmio.ko.xz": "virtio,virtio_ring",
    "kernel/drivers/virtio/virtio_pci.ko": "virtio,virtio_ring",
    "kernel/drivers/block/virtio_blk.ko": "virtio,virtio_ring",
    "kernel/drivers/net/virtio_net.ko": "net_failover,virtio,virtio_ring",
    "kernel/drivers/net/net_failover.ko": "failover",
    "kernel/net/core/failover.ko": "",
    "kernel/drivers/char/hw_random/virtio-rng.ko": "virtio,virtio_ring",
    "kernel/fs/overlayfs/overlay.ko.xz": "",
    "kernel/drivers/gpu/drm/drm.ko": "",
}


def make_modules(directory: Path, skip: tuple[str, ...] = (), builtin: bool = True) -> Path:
    for path, depends in MODULES.items():
        if any(name in path for name in skip):
            continue
        data = b"\x7fELF" + path.encode() + b"\0license=GPL\0depends=" + depends.encode() + b"\0"
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(lzma.compress(data) if path.endswith(".xz") else data)
    if builtin:
        (directory / "modules.builtin").write_text("kernel/fs/ext4/ext4.ko\n")
    return directory


def unpack(initrd: bytes) -> dict[str, tuple[int, bytes]]:
    return read_newc(gzip.decompress(initrd))


def test_initrd_loads_the_root_disk_drivers_first_in_dependency_order(tmp_path: Path) -> None:
    files = unpack(build_initrd(make_modules(tmp_path / VERSION), BUSYBOX))
    assert files["init"] == (0o100755, INIT_SCRIPT.encode())
    assert files["bin/busybox"] == (0o100755, BUSYBOX)
    order = files["modules.order"][1].decode().split()
    assert order == [
        "00-virtio.ko", "01-virtio_ring.ko", "02-virtio_mmio.ko", "03-virtio_blk.ko",
        "04-failover.ko", "05-net_failover.ko", "06-virtio_net.ko", "07-virtio_rng.ko",
    ]
    assert files["modules.overlay"][1] == b"08-overlay.ko\n"
    # Stored decompressed, for busybox's insmod.
    assert files["lib/modules/02-virtio_mmio.ko"][1].startswith(b"\x7fELF")
    assert not any("virtio_pci" in name or "drm" in name for name in files)


def test_a_kernel_without_the_root_disk_driver_is_refused(tmp_path: Path) -> None:
    modules = make_modules(tmp_path / VERSION, skip=("virtio_blk",))
    with pytest.raises(ImageBuildFailed, match="virtio_blk"):
        build_initrd(modules, BUSYBOX)
    # ext4 neither a module nor listed as built in.
    (modules / "modules.builtin").write_text("kernel/fs/jbd2/jbd2.ko\n")
    make_modules(modules, builtin=False)
    with pytest.raises(ImageBuildFailed, match="ext4"):
        build_initrd(modules, BUSYBOX)


def test_without_modules_builtin_nothing_is_checked(tmp_path: Path) -> None:
    modules = make_modules(tmp_path / VERSION, builtin=False)
    assert "modules.order" in unpack(build_initrd(modules, BUSYBOX))


def make_tree(tree: Path, version: str = VERSION) -> Path:
    """A merged-/usr tree: /lib and /bin are relative symlinks into /usr."""
    make_modules(tree / "usr/lib/modules" / version)
    (tree / "usr/bin").mkdir(parents=True)
    (tree / "usr/bin/busybox").write_bytes(BUSYBOX)
    (tree / "lib").symlink_to("usr/lib")
    (tree / "bin").symlink_to("usr/bin")
    return tree


def test_initrd_from_an_image_tree(tmp_path: Path) -> None:
    files = unpack(tree_initrd(make_tree(tmp_path / "tree"), VERSION))
    assert files["bin/busybox"][1] == BUSYBOX
    assert "lib/modules/03-virtio_blk.ko" in files


def test_image_trees_that_cannot_have_it(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    with pytest.raises(ImageBuildFailed, match="no modules for kernel 6-2"):
        tree_initrd(tree, "6-2")
    (tree / "usr/bin/busybox").write_bytes(elf(1, 3))  # dynamically linked
    with pytest.raises(ImageBuildFailed, match="not static"):
        tree_initrd(tree, VERSION)
    (tree / "usr/bin/busybox").unlink()
    with pytest.raises(ImageBuildFailed, match="busybox-static"):
        tree_initrd(tree, VERSION)
    # A link out of the tree is not followed to the build host's files.
    outside = tmp_path / "host-busybox"
    outside.write_bytes(BUSYBOX)
    (tree / "usr/bin/busybox").symlink_to(outside)
    with pytest.raises(ImageBuildFailed, match="no busybox"):
        tree_initrd(tree, VERSION)
