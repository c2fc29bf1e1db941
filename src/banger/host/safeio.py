"""Reading input banger does not trust (image trees, registry and archive data) without
letting it block, swell or point elsewhere.

* ``CappedReader`` charges every byte read from a stream (a decompressed tar, say) against
  a budget, so a decompression bomb stops at the cap instead of filling memory or disk.
* ``decompress`` and ``run_capped`` decompress in memory (standard library or a tool) and
  stop at a cap.
* ``open_regular`` / ``read_regular`` / ``write_regular`` touch only regular files: a
  symlink is not followed (``O_NOFOLLOW``), and a FIFO, socket or device is refused without
  blocking on it (``O_NONBLOCK``), so a crafted tree can neither redirect nor hang a read.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import lzma
import os
import stat
import subprocess
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Protocol

from banger.core.errors import BangerError, HostError, UnsafeLayer

_CHUNK = 1 << 20
_OPEN_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class _Decompressor(Protocol):
    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


class CappedReader:
    """A read-only stream over `stream` that raises `too_large()` once more than `limit`
    bytes have passed through it."""

    def __init__(self, stream: IO[bytes], limit: int,
                 too_large: Callable[[], BangerError]) -> None:
        self._stream = stream
        self._left = limit
        self._too_large = too_large
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        # Never more than the budget allows plus one byte: read(-1) must not swallow a bomb.
        wanted = self._left + 1 if size < 0 else min(size, self._left + 1)
        data = self._stream.read(wanted)
        self.count += len(data)
        self._left -= len(data)
        if self._left < 0:
            raise self._too_large()
        return data


def decompress(compression: str, data: bytes, limit: int,
               too_large: Callable[[], BangerError]) -> bytes:
    """`data` decompressed (gzip, xz, lzma or bzip2), refused past `limit` bytes."""
    engine: _Decompressor
    if compression == "gzip":
        engine = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif compression in ("xz", "lzma"):
        engine = lzma.LZMADecompressor(
            format=lzma.FORMAT_XZ if compression == "xz" else lzma.FORMAT_ALONE)
    elif compression == "bzip2":
        engine = bz2.BZ2Decompressor()
    else:
        raise ValueError(f"unknown compression {compression!r}")
    try:
        out = engine.decompress(data, limit + 1)
    except (OSError, lzma.LZMAError, zlib.error, EOFError) as exc:
        raise HostError(f"the {compression} data does not decompress: {exc}") from None
    if len(out) > limit:
        raise too_large()
    return out


def run_capped(argv: list[str], data: bytes, limit: int,
               too_large: Callable[[], BangerError]) -> subprocess.CompletedProcess[bytes]:
    """Run a filter (a decompressor) on `data`; its output is refused past `limit` bytes
    (the tool is killed then, instead of the output growing in memory)."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        out, err = _capped(proc, data, limit)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if len(out) > limit:
        proc.kill()
        proc.wait()
        raise too_large()
    return subprocess.CompletedProcess(argv, proc.wait(), out, err)


def _capped(proc: subprocess.Popen[bytes], data: bytes, limit: int) -> tuple[bytes, bytes]:
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    errors: list[bytes] = []

    def feed() -> None:
        assert proc.stdin is not None
        with contextlib.suppress(OSError, ValueError):
            proc.stdin.write(data)
        with contextlib.suppress(OSError):
            proc.stdin.close()

    def drain_errors() -> None:
        assert proc.stderr is not None
        errors.append(proc.stderr.read(64 << 10))

    threads = [threading.Thread(target=feed, daemon=True),
               threading.Thread(target=drain_errors, daemon=True)]
    for thread in threads:
        thread.start()
    chunks: list[bytes] = []
    total = 0
    while total <= limit:
        chunk = proc.stdout.read(_CHUNK)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > limit:
        proc.kill()
    proc.stdout.close()
    for thread in threads:
        thread.join()
    proc.stderr.close()
    return b"".join(chunks), b"".join(errors)


def open_regular(path: Path, flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
    """A descriptor of `path`, which must be a regular file (not a symlink, FIFO, socket or
    device: UnsafeLayer). With O_CREAT a missing file is created."""
    try:
        fd = os.open(path, flags | _OPEN_FLAGS, mode)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO):  # symlink; FIFO with no reader
            raise _not_regular(path) from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise _not_regular(path)
    os.set_blocking(fd, True)
    return fd


def read_regular(path: Path, limit: int) -> bytes:
    """The contents of the regular file `path`, refused (UnsafeLayer) past `limit` bytes."""
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise UnsafeLayer(f"{path} is larger than {limit} bytes; refusing to read it")
    return data


def write_regular(path: Path, data: bytes, mode: int) -> None:
    """Replace the contents of `path` (creating it) unless it is anything but a regular
    file: a symlink or special file there is removed first, never written through."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if stat.S_ISDIR(info.st_mode):
            raise _not_regular(path)
        if not stat.S_ISREG(info.st_mode):
            os.unlink(path)
    fd = open_regular(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        os.fchmod(f.fileno(), mode)


def _not_regular(path: Path) -> UnsafeLayer:
    return UnsafeLayer(f"{path} is not a regular file (a symlink, FIFO or device?)",
                       hint="the image is malformed or malicious; nothing was changed on the "
                       "host")
