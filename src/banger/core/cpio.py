"""initramfs archives, sans I/O: the `newc` cpio format the kernel unpacks, and appending an
archive to an existing (possibly compressed) initrd. The kernel unpacks concatenated archives
in order, later files replacing earlier ones; an uncompressed archive must start on a 4-byte
boundary."""

from __future__ import annotations

_MAGIC = b"070701"


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)


def _entry(ino: int, name: str, mode: int, data: bytes) -> bytes:
    encoded = name.encode() + b"\0"
    fields = (
        ino, mode, 0, 0, 2 if mode & 0o040000 else 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0
    )
    header = _MAGIC + b"".join(b"%08X" % value for value in fields)
    return header + encoded + _pad(len(header) + len(encoded)) + data + _pad(len(data))


def newc_archive(files: dict[str, tuple[int, bytes]]) -> bytes:
    """A cpio (newc) archive of `files`: path -> (mode, content). Parents come first in the
    order given; owner root, mtime 0, so the same input always gives the same bytes."""
    out = [_entry(ino, name, mode, data) for ino, (name, (mode, data)) in
           enumerate(files.items(), start=1)]
    out.append(_entry(0, "TRAILER!!!", 0, b""))
    return b"".join(out)


def append_archive(initrd: bytes, archive: bytes) -> bytes:
    return initrd + _pad(len(initrd)) + archive

