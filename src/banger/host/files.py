"""File copies that keep holes: root filesystems are mostly sparse, and a plain copy would
write out every zero."""

from __future__ import annotations

import os
from pathlib import Path


def sparse_copy(source: Path, target: Path) -> None:
    """Copy `source` to `target`, seeking over its holes instead of writing zeros."""
    with open(source, "rb") as src, open(target, "wb") as dst:
        size = os.fstat(src.fileno()).st_size
        offset = 0
        while offset < size:
            try:
                data_start = os.lseek(src.fileno(), offset, os.SEEK_DATA)
            except OSError:  # only a hole is left
                break
            hole = os.lseek(src.fileno(), data_start, os.SEEK_HOLE)
            src.seek(data_start)
            dst.seek(data_start)
            remaining = hole - data_start
            while remaining > 0:
                chunk = src.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                dst.write(chunk)
                remaining -= len(chunk)
            offset = hole
        dst.truncate(size)
