from __future__ import annotations

import gzip

from banger.core.cpio import append_archive, newc_archive
from banger.core.guest import (
    BANGER_INITRD_MARKER,
    OVERLAY_HOOK,
    OVERLAY_HOOK_PATH,
    OVERLAY_RDINIT,
    OVERLAY_RDINIT_PATH,
    overlay_boot_args,
    overlay_initramfs_files,
)


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


def test_newc_round_trip_is_deterministic() -> None:
    files = {"d": (0o040755, b""), "d/f": (0o100644, b"hello")}
    archive = newc_archive(files)
    assert archive == newc_archive(files)
    assert len(archive) % 4 == 0
    assert read_newc(archive) == files


def test_appended_archive_starts_on_a_4_byte_boundary() -> None:
    initrd = gzip.compress(newc_archive({"init": (0o100755, b"#!/bin/sh\n")}))
    combined = append_archive(initrd, newc_archive(overlay_initramfs_files()))
    start = len(initrd) + (-len(initrd) % 4)
    assert combined[start:start + 6] == b"070701"
    files = read_newc(combined[start:])
    assert files[OVERLAY_RDINIT_PATH.lstrip("/")] == (0o100755, OVERLAY_RDINIT.encode())
    assert files[OVERLAY_HOOK_PATH.lstrip("/")] == (0o100755, OVERLAY_HOOK.encode())


def test_overlay_scripts_hook_init_bottom_and_read_the_cmdline() -> None:
    assert f'echo \'{OVERLAY_HOOK_PATH} "$@"\'' in OVERLAY_RDINIT
    assert OVERLAY_RDINIT.rstrip().endswith('exec /init "$@"')
    # banger's own initrd has no ORDER: its /init mounts the overlay, no warning needed.
    assert f"elif [ ! -f {BANGER_INITRD_MARKER} ]" in OVERLAY_RDINIT
    assert "banger.overlay=*" in OVERLAY_HOOK
    assert "lowerdir=/banger/ro,upperdir=/banger/rw/upper" in OVERLAY_HOOK
    assert overlay_boot_args("/dev/vdb") == (
        f"ro rdinit={OVERLAY_RDINIT_PATH} banger.overlay=/dev/vdb"
    )
