"""Kernel image formats, sans I/O: where the compressed kernel sits inside an x86 bzImage
(`vmlinuz`), which compressor made it, and whether bytes are the uncompressed ELF `vmlinux`
that Firecracker boots on x86.

The boot protocol header (Documentation/arch/x86/boot.rst) gives the payload's offset and
length (protocol >= 2.08); the payload is the compressed vmlinux followed by its
uncompressed size as 4 little-endian bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from banger.core.errors import InvalidInput

# Magic numbers at the start of each compressor's output, as the kernel's build writes them.
COMPRESSIONS: tuple[tuple[str, bytes], ...] = (
    ("gzip", b"\x1f\x8b"),
    ("xz", b"\xfd7zXZ\x00"),
    ("bzip2", b"BZh"),
    ("lzma", b"\x5d\x00\x00"),
    ("lzo", b"\x89LZO"),
    ("lz4", b"\x02\x21\x4c\x18"),  # the legacy LZ4 frame `lz4 -l` writes
    ("zstd", b"\x28\xb5\x2f\xfd"),
)

ELF_MAGIC = b"\x7fELF"
_EM_X86_64 = 62
_ET_EXEC = 2


@dataclass(frozen=True)
class Payload:
    compression: str
    offset: int
    length: int  # without the trailing size field
    uncompressed_size: int


def is_bzimage(data: bytes) -> bool:
    return len(data) > 0x250 and data[0x202:0x206] == b"HdrS"


def find_payload(data: bytes) -> Payload:
    """The compressed kernel inside a bzImage."""
    if not is_bzimage(data):
        raise InvalidInput("not an x86 bzImage (no HdrS boot header)")
    (version,) = struct.unpack_from("<H", data, 0x206)
    if version < 0x208:
        raise InvalidInput(f"boot protocol {version >> 8}.{version & 0xff} is too old to "
                           "locate the kernel payload (needs 2.08)")
    setup_sects = data[0x1F1] or 4
    payload_offset, payload_length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sects + 1) * 512 + payload_offset
    end = start + payload_length
    if payload_length < 8 or end > len(data):
        raise InvalidInput("the bzImage's payload lies outside the file")
    head = data[start:start + 8]
    for name, magic in COMPRESSIONS:
        if head.startswith(magic):
            (size,) = struct.unpack_from("<I", data, end - 4)
            return Payload(name, start, payload_length - 4, size)
    raise InvalidInput(f"unknown kernel compression (payload starts with {head.hex()})")


def check_vmlinux(data: bytes) -> None:
    """Raise unless `data` is an x86-64 executable ELF (what Firecracker loads)."""
    if not data.startswith(ELF_MAGIC):
        raise InvalidInput("not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise InvalidInput("not a 64-bit little-endian ELF")
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    if e_machine != _EM_X86_64:
        raise InvalidInput(f"ELF machine {e_machine} is not x86-64")
    if e_type != _ET_EXEC:
        raise InvalidInput(f"ELF type {e_type} is not an executable")


def is_vmlinux(data: bytes) -> bool:
    try:
        check_vmlinux(data)
    except InvalidInput:
        return False
    return True
