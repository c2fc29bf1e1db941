from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from banger.core.errors import ImageBuildFailed
from banger.core.initrd import INIT_SCRIPT
from banger.host.initrd import build_initrd, tree_initrd
from tests.support.boot_files import BUSYBOX, VERSION, elf, make_modules, make_tree, read_newc


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


def test_a_module_symlinked_to_a_host_file_never_reaches_the_initrd(tmp_path: Path) -> None:
    # The reported leak: virtio_blk.ko -> the user's private key landed in the guest.
    secret = tmp_path / "id_ed25519"
    secret.write_bytes(b"-----BEGIN OPENSSH PRIVATE KEY----- host secret")
    modules = make_modules(tmp_path / VERSION, skip=("virtio_blk",), builtin=False)
    (modules / "kernel/drivers/block").mkdir()
    (modules / "kernel/drivers/block/virtio_blk.ko").symlink_to(secret)
    initrd = gzip.decompress(build_initrd(modules, BUSYBOX))
    assert b"host secret" not in initrd


def test_a_symlinked_module_directory_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "virtio_blk.ko").write_bytes(b"\x7fELF host file\0depends=\0")
    modules = make_modules(tmp_path / VERSION, skip=("virtio_blk",), builtin=False)
    (modules / "kernel/drivers/block").symlink_to(outside)
    assert b"host file" not in gzip.decompress(build_initrd(modules, BUSYBOX))


def test_a_symlinked_module_missing_from_a_kernel_with_modules_builtin_is_an_error(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"host secret")
    modules = make_modules(tmp_path / VERSION, skip=("virtio_blk",))
    (modules / "kernel/drivers/block").mkdir()
    (modules / "kernel/drivers/block/virtio_blk.ko").symlink_to(secret)
    with pytest.raises(ImageBuildFailed, match="virtio_blk"):
        build_initrd(modules, BUSYBOX)


def test_a_fifo_for_busybox_is_refused_without_hanging(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    make_modules(tree / "usr/lib/modules" / VERSION)
    (tree / "usr/bin").mkdir(parents=True)
    os.mkfifo(tree / "usr/bin/busybox")
    with pytest.raises(ImageBuildFailed, match="busybox"):
        tree_initrd(tree, VERSION)
