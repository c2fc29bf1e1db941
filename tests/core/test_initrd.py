from __future__ import annotations

import struct
import subprocess

from banger.core.guest import (
    BANGER_INITRD_MARKER,
    FSTAB,
    WORK_DISK_LABEL,
    overlay_boot_args,
)
from banger.core.initrd import (
    INIT_SCRIPT,
    INITRD_VERSION,
    builtin_modules,
    initrd_files,
    is_static_executable,
    load_order,
    missing_modules,
    modinfo_depends,
    module_name,
)
from tests.support.boot_files import elf


def test_module_closure_in_load_order() -> None:
    paths = {"virtio_blk": "drivers/block/virtio_blk.ko.xz", "virtio": "drivers/virtio.ko",
             "virtio_ring": "drivers/virtio_ring.ko", "virtio_mmio": "drivers/virtio_mmio.ko"}
    deps = {"drivers/block/virtio_blk.ko.xz": ["virtio", "virtio_ring"],
            "drivers/virtio_ring.ko": ["virtio"], "drivers/virtio_mmio.ko": ["virtio",
                                                                             "virtio_ring"]}
    order = load_order(paths, lambda p: deps.get(p, []), ("virtio_mmio", "virtio_blk", "nope"))
    assert order == ["drivers/virtio.ko", "drivers/virtio_ring.ko", "drivers/virtio_mmio.ko",
                     "drivers/block/virtio_blk.ko.xz"]


def test_a_dependency_cycle_ends() -> None:
    paths = {"a": "a.ko", "b": "b.ko"}
    deps = {"a.ko": ["b"], "b.ko": ["a"]}
    assert sorted(load_order(paths, lambda p: deps[p], ("a",))) == ["a.ko", "b.ko"]


def test_module_names_and_modinfo() -> None:
    assert module_name("kernel/drivers/char/hw_random/virtio-rng.ko.xz") == "virtio_rng"
    assert module_name("kernel/fs/ext4/ext4.ko\n") == "ext4"
    assert module_name("overlay.ko.zst") == "overlay"
    blob = b"\x7fELF...\0license=GPL\0depends=virtio,virtio_ring\0intree=Y\0"
    assert modinfo_depends(blob) == ["virtio", "virtio_ring"]
    assert modinfo_depends(b"\0depends=\0") == []
    assert modinfo_depends(b"no modinfo") == []


def test_built_in_modules_count_as_present() -> None:
    builtin = builtin_modules("kernel/fs/ext4/ext4.ko\nkernel/fs/jbd2/jbd2.ko\n\n")
    assert builtin == {"ext4", "jbd2"}
    wanted = ("virtio_mmio", "virtio_blk", "ext4")
    assert missing_modules({"virtio_mmio", "virtio_blk"}, builtin, wanted) == []
    assert missing_modules({"virtio_mmio"}, builtin, wanted) == ["virtio_blk"]
    assert missing_modules({"virtio_mmio", "virtio_blk"}, set(), wanted) == ["ext4"]


def test_static_executables() -> None:
    pt_load, pt_interp = 1, 3
    assert is_static_executable(elf(pt_load, pt_load))
    assert not is_static_executable(elf(pt_load, pt_interp))
    assert not is_static_executable(b"#!/bin/sh\n" + bytes(100))
    truncated = bytearray(elf(pt_load))
    struct.pack_into("<HH", truncated, 0x36, 56, 50)
    assert not is_static_executable(bytes(truncated))


def test_archive_contents() -> None:
    files = initrd_files(
        b"BUSYBOX",
        [("kernel/drivers/virtio/virtio.ko.xz", b"V"), ("virtio-rng.ko", b"R")],
        [("kernel/fs/overlayfs/overlay.ko", b"O")],
    )
    assert files["bin/busybox"] == (0o100755, b"BUSYBOX")
    assert files["bin/sh"] == (0o120777, b"busybox")  # a symlink: the rdinit's interpreter
    assert files["init"] == (0o100755, INIT_SCRIPT.encode())
    assert files[BANGER_INITRD_MARKER.lstrip("/")][1] == f"{INITRD_VERSION}\n".encode()
    assert files["lib/modules/00-virtio.ko"] == (0o100644, b"V")
    assert files["lib/modules/01-virtio_rng.ko"] == (0o100644, b"R")
    assert files["lib/modules/02-overlay.ko"] == (0o100644, b"O")
    assert files["modules.order"][1] == b"00-virtio.ko\n01-virtio_rng.ko\n"
    assert files["modules.overlay"][1] == b"02-overlay.ko\n"
    # Parents before children, as the newc writer needs them.
    names = list(files)
    for name in names:
        if "/" in name:
            assert names.index(name.rsplit("/", 1)[0]) < names.index(name)
    assert initrd_files(b"B", [])["modules.overlay"][1] == b""


def test_init_script_parses_and_reads_the_overlay_argument() -> None:
    subprocess.run(["sh", "-n", "-c", INIT_SCRIPT], check=True)
    assert INIT_SCRIPT.startswith("#!/bin/busybox sh\n")
    assert "__" not in INIT_SCRIPT  # every placeholder filled in
    device_arg = overlay_boot_args("/dev/vdb").split()[-1].split("=")[0]
    assert f"{device_arg}=*) overlay=" in INIT_SCRIPT
    assert "lowerdir=/banger/ro,upperdir=/banger/rw/upper" in INIT_SCRIPT
    assert INIT_SCRIPT.rstrip().endswith('exec switch_root /newroot "$init"')
    # The work disk is found by the label fstab mounts it by.
    assert f"findfs LABEL={WORK_DISK_LABEL} " in INIT_SCRIPT
    assert f"LABEL={WORK_DISK_LABEL} /root " in FSTAB
