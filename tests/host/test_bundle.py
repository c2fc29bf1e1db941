"""Image bundles with the real codec (zstd) and with the plain fake: round trip, holes kept,
and corrupt, truncated or foreign bundles refused."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
from pathlib import Path

import pytest

from banger.core.bundle import MANIFEST
from banger.core.errors import BadBundle, MissingTool
from banger.host.bundle import Codec, ZstdCodec, read_bundle, write_bundle
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
        write_bundle(make_files(tmp_path), {"name": "img", "source": "test"}, f, codec,
                     lambda done, total: None)
    return out


@pytest.mark.parametrize("codec", CODECS)
def test_round_trip_keeps_bytes_and_holes(tmp_path: Path, codec: Codec) -> None:
    bundle = export(tmp_path, codec)
    dest = tmp_path / "dest"
    dest.mkdir()
    seen: list[tuple[int, int]] = []
    manifest = read_bundle(bundle, dest, codec, lambda done, total: seen.append((done, total)))
    assert manifest.image == {"name": "img", "source": "test"}
    for name in ("rootfs.ext4", "vmlinuz", "initrd.img"):
        original = (tmp_path / "src" / name).read_bytes()
        assert (dest / name).read_bytes() == original
        assert manifest.member(name).sha256 == hashlib.sha256(original).hexdigest()  # type: ignore[union-attr]
    rootfs = dest / "rootfs.ext4"
    assert rootfs.stat().st_blocks * 512 < 2 << 20  # 64 MiB apparent, sparse on disk
    assert seen and seen[-1][0] <= seen[-1][1]


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
        read_bundle(bundle, dest, codec, lambda done, total: None)


@needs_zstd
def test_corrupt_zstd_bundle_is_refused(tmp_path: Path) -> None:
    bundle = export(tmp_path, ZstdCodec())
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bundle.write_bytes(bytes(data))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(BadBundle):
        read_bundle(bundle, dest, ZstdCodec(), lambda done, total: None)


def test_flipped_byte_fails_its_checksum(tmp_path: Path) -> None:
    bundle = export(tmp_path, PlainCodec())
    data = bytearray(bundle.read_bytes())
    at = data.index(b"kernelkernel")
    data[at] ^= 0x01
    bundle.write_bytes(bytes(data))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(BadBundle, match=r"vmlinuz.*sha256"):
        read_bundle(bundle, dest, PlainCodec(), lambda done, total: None)


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
        read_bundle(_tar(tmp_path, members), dest, PlainCodec(), lambda done, total: None)
    assert not (tmp_path / "etc").exists()


@needs_zstd
def test_not_zstd_is_a_clear_error(tmp_path: Path) -> None:
    bundle = tmp_path / "x.tar.zst"
    bundle.write_bytes(b"this is not zstd" * 100)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(BadBundle, match="does not decompress"):
        read_bundle(bundle, dest, ZstdCodec(), lambda done, total: None)


def test_missing_zstd_names_the_tool(tmp_path: Path) -> None:
    with open(tmp_path / "out", "wb") as f, pytest.raises(MissingTool, match="zstd-nope"):
        write_bundle(make_files(tmp_path), {}, f, ZstdCodec("zstd-nope"),
                     lambda done, total: None)
