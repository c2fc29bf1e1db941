from __future__ import annotations

import gzip
import struct

import pytest

from banger.core.errors import InvalidInput
from banger.core.kernelformat import check_vmlinux, find_payload, is_vmlinux

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


def test_finds_a_gzip_payload_and_its_size() -> None:
    compressed = gzip.compress(ELF)
    data = bzimage(compressed + struct.pack("<I", len(ELF)))
    payload = find_payload(data)
    assert payload.compression == "gzip"
    assert payload.uncompressed_size == len(ELF)
    assert data[payload.offset:payload.offset + payload.length] == compressed


@pytest.mark.parametrize(("magic", "name"), [
    (b"\x02\x21\x4c\x18", "lz4"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"\xfd7zXZ\x00", "xz"),
])
def test_knows_the_other_compressors(magic: bytes, name: str) -> None:
    assert find_payload(bzimage(magic + b"\0" * 16)).compression == name


def test_rejects_what_it_cannot_read() -> None:
    with pytest.raises(InvalidInput, match="not an x86 bzImage"):
        find_payload(b"\0" * 4096)
    with pytest.raises(InvalidInput, match="too old"):
        find_payload(bzimage(b"\x1f\x8b" + b"\0" * 16, version=0x204))
    with pytest.raises(InvalidInput, match="unknown kernel compression"):
        find_payload(bzimage(b"\x11\x22\x33\x44" + b"\0" * 16))


def test_vmlinux_must_be_an_x86_64_executable_elf() -> None:
    check_vmlinux(ELF)
    assert not is_vmlinux(b"MZ")
    with pytest.raises(InvalidInput, match="not x86-64"):
        check_vmlinux(ELF[:18] + struct.pack("<H", 183) + ELF[20:])
    with pytest.raises(InvalidInput, match="not an executable"):
        check_vmlinux(ELF[:16] + struct.pack("<H", 3) + ELF[18:])
