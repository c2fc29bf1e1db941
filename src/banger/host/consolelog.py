"""A guest's console log, kept bounded: the VMM appends to it, the daemon cuts its head off
once it passes `CONSOLE_LOG_MAX_BYTES` (a guest writing to its serial port forever must not
fill the host's disk). Readers use offsets into everything the guest wrote ("logical"
offsets): `<log>.dropped` holds how many bytes were cut from the head, so an offset stays
valid across cuts, and a reader only reads what is new.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from pathlib import Path

from banger.core.confine import CONSOLE_LOG_MAX_BYTES, console_cut

_FALLOC_FL_COLLAPSE_RANGE = 0x08
# What a follower keeps of a line that has no end yet (a marker can straddle two reads).
_CARRY = 4096


def _dropped_file(path: Path) -> Path:
    return path.with_name(path.name + ".dropped")


def dropped_bytes(path: Path) -> int:
    """How many bytes were cut from the head of the log at `path` since its VM started."""
    try:
        return int(_dropped_file(path).read_text())
    except (OSError, ValueError):
        return 0


def restart(path: Path) -> None:
    """An empty log for a new boot (the VMM appends to it)."""
    path.write_bytes(b"")
    _dropped_file(path).unlink(missing_ok=True)


def _collapse(fd: int, length: int) -> bool:
    """Remove the file's first `length` bytes in place (ext4, xfs): atomic with respect to
    the VMM's appends. False where the filesystem cannot."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    if libc.fallocate(fd, _FALLOC_FL_COLLAPSE_RANGE, 0, length) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
        return False
    raise OSError(code, os.strerror(code))


def trim(path: Path, limit: int = CONSOLE_LOG_MAX_BYTES) -> int:
    """Cut the log back to about half of `limit` once it is over it; the bytes cut."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return 0
    try:
        info = os.fstat(fd)
        cut = console_cut(info.st_size, info.st_blksize, limit)
        if cut == 0:
            return 0
        if not _collapse(fd, cut):
            # Copy the tail to the head: what the guest appends meanwhile is lost.
            tail = os.pread(fd, info.st_size - cut, cut)
            os.pwrite(fd, tail, 0)
            os.ftruncate(fd, len(tail))
    finally:
        os.close(fd)
    total = dropped_bytes(path) + cut
    tmp = _dropped_file(path).with_suffix(".tmp")
    tmp.write_text(f"{total}\n")
    tmp.replace(_dropped_file(path))
    return cut


def read_from(path: Path, offset: int, max_bytes: int) -> tuple[bytes, int]:
    """Up to `max_bytes` of the log from logical `offset` (or from its oldest byte still
    kept), and the logical offset after them. An offset past the end means the log was
    restarted by a new boot: reading starts over."""
    try:
        log = open(path, "rb")  # noqa: SIM115 - closed below, after the size check
    except FileNotFoundError:
        return b"", 0
    with log:
        dropped = dropped_bytes(path)
        end = dropped + os.fstat(log.fileno()).st_size
        if offset > end:
            offset = 0
        start = max(offset, dropped)
        log.seek(start - dropped)
        data = log.read(max_bytes)
    return data, start + len(data)


class ConsoleFollower:
    """What a console log gained since the last look, for watchers that match lines in it:
    each `read()` returns the new bytes, after the unfinished last line of the previous one.
    Memory stays bounded however much the guest writes."""

    def __init__(self, path: Path, *, chunk: int = 1 << 20) -> None:
        self._path = path
        self._offset = 0
        self._carry = b""
        self._chunk = chunk

    def read(self) -> bytes:
        with contextlib.suppress(OSError):
            data, self._offset = read_from(self._path, self._offset, self._chunk)
            text = self._carry + data
            cut = text.rfind(b"\n") + 1
            self._carry = text[cut:][-_CARRY:]
            return text
        return self._carry

    def skip(self) -> None:
        """Forget what was read so far: the next `read()` starts at what comes after."""
        self._carry = b""
