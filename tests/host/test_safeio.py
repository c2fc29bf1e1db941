"""Capped decompression and regular-file-only access (host/safeio.py), and the kernel
payload they guard (Containment: decompression bombs, FIFOs and symlinks in a tree)."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from banger.core.errors import ImageTooLarge, UnsafeLayer
from banger.host import vmlinux
from banger.host.safeio import (
    CappedReader,
    decompress,
    read_regular,
    run_capped,
    write_regular,
)

BOMB = bytes(64 << 20)


def too_large() -> ImageTooLarge:
    return ImageTooLarge("too large")


@pytest.mark.parametrize(("compression", "packed"), [
    ("gzip", gzip.compress(BOMB)), ("xz", lzma.compress(BOMB)), ("bzip2", bz2.compress(BOMB)),
])
def test_in_memory_decompression_stops_at_the_cap(compression: str, packed: bytes) -> None:
    assert decompress(compression, packed, len(BOMB), too_large) == BOMB
    with pytest.raises(ImageTooLarge):
        decompress(compression, packed, 1 << 20, too_large)


@pytest.mark.skipif(shutil.which("zstd") is None, reason="needs zstd")
def test_a_tool_is_killed_when_its_output_passes_the_cap() -> None:
    packed = subprocess.run(["zstd", "-c", "-q"], input=BOMB, capture_output=True,
                            check=True).stdout
    assert run_capped(["zstd", "-dcq"], packed, len(BOMB), too_large).stdout == BOMB
    with pytest.raises(ImageTooLarge):
        run_capped(["zstd", "-dcq"], packed, 1 << 20, too_large)


def test_a_kernel_payload_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vmlinux, "MAX_VMLINUX", 1 << 20)
    with pytest.raises(ImageTooLarge, match="not a kernel"):
        vmlinux._decompress("xz", lzma.compress(BOMB))


def test_the_capped_reader_counts_and_refuses() -> None:
    reader = CappedReader(io.BytesIO(bytes(100)), 50, too_large)
    assert len(reader.read(40)) == 40
    with pytest.raises(ImageTooLarge):
        reader.read()


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fstab"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeLayer, match="not a regular file"):
        read_regular(fifo, 1 << 20)


def test_a_symlink_is_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    (tmp_path / "link").symlink_to(secret)
    with pytest.raises(UnsafeLayer):
        read_regular(tmp_path / "link", 1 << 20)


def test_writing_replaces_a_fifo_or_symlink_instead_of_going_through_it(
    tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    (tmp_path / "link").symlink_to(secret)
    os.mkfifo(tmp_path / "fifo")
    for name in ("link", "fifo"):
        write_regular(tmp_path / name, b"new\n", 0o644)
        assert (tmp_path / name).read_bytes() == b"new\n"
    assert secret.read_text() == "host secret"


def test_reading_past_the_limit_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(bytes(2048))
    with pytest.raises(UnsafeLayer, match="larger than"):
        read_regular(big, 1024)
