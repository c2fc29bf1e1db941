"""Small boot files for tests: minimal ELF and bzImage images, a newc (initramfs) reader,
and a merged-/usr image tree with kernel modules."""

from __future__ import annotations

import lzma
import struct
from pathlib import Path


def read_newc(data: bytes) -> dict[str, tuple[int, bytes]]:
    entries, offset = {}, 0
    while offset < len(data):
        if data[offset:offset + 1] == b"\0":
            offset += 1
            continue
        assert data[offset:offset + 6] == b"070701", offset
        header = data[offset:offset + 110]
        mode, size = int(header[14:22], 16), int(header[54:62], 16)
        name_size = int(header[94:102], 16)
        name = data[offset + 110:offset + 110 + name_size - 1].decode()
        offset += 110 + name_size
        offset += -offset % 4
        content = data[offset:offset + size]
        offset += size + (-size % 4)
        if name != "TRAILER!!!":
            entries[name] = (mode, content)
    return entries


ELF = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + struct.pack("<HH", 2, 62) + b"\0" * 44


def bzimage(payload: bytes, setup_sects: int = 4, version: int = 0x20F) -> bytes:
    """A minimal bzImage: boot sector + setup sectors, then the protected-mode part whose
    payload (compressed kernel + 4-byte size) sits at payload_offset."""
    image = bytearray((setup_sects + 1) * 512)
    image[0x1F1] = setup_sects
    image[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", image, 0x206, version)
    body = b"\0" * 64 + payload
    struct.pack_into("<II", image, 0x248, 64, len(payload))
    return bytes(image) + body


def elf(*segment_types: int) -> bytes:
    """A minimal ELF64 header with program headers of the given types."""
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 0x20, 64)
    struct.pack_into("<HH", header, 0x36, 56, len(segment_types))
    table = b"".join(struct.pack("<I", t) + b"\0" * 52 for t in segment_types)
    return bytes(header) + table


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


def make_tree(tree: Path, version: str = VERSION) -> Path:
    """A merged-/usr tree: /lib and /bin are relative symlinks into /usr."""
    make_modules(tree / "usr/lib/modules" / version)
    (tree / "usr/bin").mkdir(parents=True)
    (tree / "usr/bin/busybox").write_bytes(BUSYBOX)
    (tree / "lib").symlink_to("usr/lib")
    (tree / "bin").symlink_to("usr/bin")
    return tree
