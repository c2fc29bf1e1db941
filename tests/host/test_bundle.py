"""Image bundles with the real codec (zstd) and with the plain fake: round trip, holes kept,
and corrupt, truncated or foreign bundles refused."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import shutil
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from banger.core.bundle import MANIFEST, Manifest
from banger.core.errors import BadBundle, MissingTool
from banger.host.bundle import (
    Codec,
    ZstdCodec,
    read_bundle,
    stream_bundle,
    unpack_stream,
    write_bundle,
)
from tests.support.host_fakes import PlainCodec

needs_zstd = pytest.mark.skipif(shutil.which("zstd") is None, reason="zstd not installed")
CODECS = [pytest.param(PlainCodec(), id="plain"),
          pytest.param(ZstdCodec(), id="zstd", marks=needs_zstd)]


def sparse_rootfs(path: Path, size: int = 64 << 20) -> bytes:
    """A mostly-hole file with a little data at both ends and in the middle."""
    with open(path, "wb") as f:
        f.truncate(size)
        for offset in (0, size // 2, size - 4096):
            f.seek(offset)
            f.write(b"banger" * 500)
    return path.read_bytes()


def make_files(tmp_path: Path) -> dict[str, str]:
    src = tmp_path / "src"
    src.mkdir()
    sparse_rootfs(src / "rootfs.ext4")
    (src / "vmlinuz").write_bytes(b"kernel" * 1000)
    (src / "initrd.img").write_bytes(b"initrd" * 1000)
    return {n: str(src / n) for n in ("rootfs.ext4", "vmlinuz", "initrd.img")}


def export(tmp_path: Path, codec: Codec) -> Path:
    out = tmp_path / "img.tar.zst"
    with open(out, "wb") as f:
        write_bundle(make_files(tmp_path), {"name": "img", "source": "test"}, f, codec)
    return out


def unpack(bundle: Path, dest: Path, codec: Codec) -> Manifest:
    with open(bundle, "rb") as src:
        return read_bundle(src, dest, codec)


@pytest.mark.parametrize("codec", CODECS)
def test_round_trip_keeps_bytes_and_holes(tmp_path: Path, codec: Codec) -> None:
    bundle = export(tmp_path, codec)
    dest = tmp_path / "dest"
    dest.mkdir()
    manifest = unpack(bundle, dest, codec)
    assert manifest.image == {"name": "img", "source": "test"}
    for name in ("rootfs.ext4", "vmlinuz", "initrd.img"):
        original = (tmp_path / "src" / name).read_bytes()
        assert (dest / name).read_bytes() == original
        assert manifest.member(name).sha256 == hashlib.sha256(original).hexdigest()  # type: ignore[union-attr]
    rootfs = dest / "rootfs.ext4"
    assert rootfs.stat().st_blocks * 512 < 2 << 20  # 64 MiB apparent, sparse on disk


@needs_zstd
def test_zstd_squeezes_the_holes(tmp_path: Path) -> None:
    assert export(tmp_path, ZstdCodec()).stat().st_size < 1 << 20


@pytest.mark.parametrize("codec", CODECS)
def test_truncated_bundle_is_refused(tmp_path: Path, codec: Codec) -> None:
    bundle = export(tmp_path, codec)
    data = bundle.read_bytes()
    bundle.write_bytes(data[: len(data) * 2 // 3])
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(BadBundle):
        unpack(bundle, dest, codec)


@needs_zstd
def test_corrupt_zstd_bundle_is_refused(tmp_path: Path) -> None:
    bundle = export(tmp_path, ZstdCodec())
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bundle.write_bytes(bytes(data))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(BadBundle):
        unpack(bundle, dest, ZstdCodec())


def test_flipped_byte_fails_its_checksum(tmp_path: Path) -> None:
    bundle = export(tmp_path, PlainCodec())
    data = bytearray(bundle.read_bytes())
    at = data.index(b"kernelkernel")
    data[at] ^= 0x01
    bundle.write_bytes(bytes(data))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(BadBundle, match=r"vmlinuz.*sha256"):
        unpack(bundle, dest, PlainCodec())


def _tar(tmp_path: Path, members: dict[str, bytes]) -> Path:
    path = tmp_path / "foreign.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("members, message", [
    ({"../etc/passwd": b"x"}, "unexpected member"),
    ({"rootfs.ext4": b"x"}, "no manifest"),
    ({MANIFEST: b"{}"}, "not a banger image bundle"),
])
def test_foreign_tars_are_refused(
    tmp_path: Path, members: dict[str, bytes], message: str
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(BadBundle, match=message):
        unpack(_tar(tmp_path, members), dest, PlainCodec())
    assert not (tmp_path / "etc").exists()


@needs_zstd
def test_not_zstd_is_a_clear_error(tmp_path: Path) -> None:
    bundle = tmp_path / "x.tar.zst"
    bundle.write_bytes(b"this is not zstd" * 100)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(BadBundle, match="does not decompress"):
        unpack(bundle, dest, ZstdCodec())


def test_missing_zstd_names_the_tool(tmp_path: Path) -> None:
    with open(tmp_path / "out", "wb") as f, pytest.raises(MissingTool, match="zstd-nope"):
        write_bundle(make_files(tmp_path), {}, f, ZstdCodec("zstd-nope"))


# The streamed halves: export's bytes as they are made, import's as they arrive.


async def collect(pieces: AsyncIterator[bytes]) -> bytes:
    return b"".join([piece async for piece in pieces])


async def replay(data: bytes, size: int = 7000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


@pytest.mark.parametrize("codec", CODECS)
async def test_streamed_round_trip(tmp_path: Path, codec: Codec) -> None:
    data = await collect(stream_bundle(make_files(tmp_path), {"name": "img"}, codec))
    dest = tmp_path / "dest"
    dest.mkdir()
    manifest = await unpack_stream(replay(data), dest, codec)
    assert manifest.image == {"name": "img"}
    for name in ("rootfs.ext4", "vmlinuz", "initrd.img"):
        assert (dest / name).read_bytes() == (tmp_path / "src" / name).read_bytes()
    assert (dest / "rootfs.ext4").stat().st_blocks * 512 < 2 << 20


@pytest.mark.parametrize("codec", CODECS)
async def test_a_streamed_bundle_that_ends_early_is_refused(tmp_path: Path, codec: Codec) -> None:
    data = await collect(stream_bundle(make_files(tmp_path), {"name": "img"}, codec))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(BadBundle):
        await unpack_stream(replay(data[: len(data) * 2 // 3]), dest, codec)


async def test_a_broken_upload_is_raised_once_the_reader_stopped(tmp_path: Path) -> None:
    data = await collect(stream_bundle(make_files(tmp_path), {"name": "img"}, PlainCodec()))
    dest = tmp_path / "dest"
    dest.mkdir()

    async def cut() -> AsyncIterator[bytes]:
        yield data[:100_000]
        raise ConnectionResetError("client gone")

    with pytest.raises(ConnectionResetError, match="client gone"):
        await unpack_stream(cut(), dest, PlainCodec())
    # The reader thread is done: what it wrote stays put for the caller to remove.
    before = sorted(p.name for p in dest.iterdir())
    await asyncio.sleep(0.1)
    assert sorted(p.name for p in dest.iterdir()) == before


async def test_a_bad_upload_stops_reading_early(tmp_path: Path) -> None:
    sent = 0

    async def garbage() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(1000):  # 64 MiB, far more than a pipe holds
            sent += 1
            yield b"not a tar" * 7000

    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(BadBundle):
        await unpack_stream(garbage(), dest, PlainCodec())
    assert sent < 1000


@pytest.mark.parametrize("codec", CODECS)
async def test_closing_the_stream_early_stops_the_writer(tmp_path: Path, codec: Codec) -> None:
    src = tmp_path / "big"
    src.mkdir()
    (src / "rootfs.ext4").write_bytes(os.urandom(8 << 20))  # more than the pipe holds
    pieces = stream_bundle({"rootfs.ext4": str(src / "rootfs.ext4")}, {}, codec)
    assert await anext(pieces)
    await asyncio.wait_for(pieces.aclose(), 10)  # the writer ends: no thread left blocked


async def test_a_failing_writer_cuts_the_stream_short(tmp_path: Path) -> None:
    pieces = stream_bundle(make_files(tmp_path), {}, ZstdCodec("zstd-nope"))
    with pytest.raises(MissingTool, match="zstd-nope"):
        await collect(pieces)
