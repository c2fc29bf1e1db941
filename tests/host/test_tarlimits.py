"""Crafted tar streams against the flattener and the bundle reader: extended headers that
tarfile would read whole into memory, chains of them, and streams that decompress past the
cap (Containment: tar header bombs)."""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from banger.core.errors import BadBundle, ImageTooLarge, UnsafeLayer
from banger.core.tarlimits import MAX_EXTENDED_HEADER
from banger.host.bundle import Codec, ZstdCodec, read_bundle
from banger.host.flatten import Flattener, open_layer
from tests.support.host_fakes import PlainCodec


class CountingReader:
    """A stream that records how many bytes were read from it."""

    def __init__(self, data: bytes) -> None:
        self._f = io.BytesIO(data)
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        self.read_bytes += len(data)
        return data



def unpack(bundle: Path, dest: Path, codec: Codec, max_bytes: int | None = None) -> None:
    with open(bundle, "rb") as src:
        read_bundle(src, dest, codec, max_bytes)

def header_block(name: str, kind: bytes, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, size
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def long_name_bomb(size: int) -> bytes:
    """A GNU long-name header announcing `size` bytes of name, then those bytes."""
    padded = size + (-size % 512)
    return header_block("././@LongLink", tarfile.GNUTYPE_LONGNAME, size) + b"a" * padded


def pax_record(key: str, value: str) -> bytes:
    body = f" {key}={value}\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return f"{length}{body}".encode()


def pax_header(record: bytes, kind: bytes = tarfile.XHDTYPE) -> bytes:
    return (header_block("pax", kind, len(record)) + record
            + b"\0" * (-len(record) % 512))


def regular(name: str, data: bytes = b"x") -> bytes:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info.tobuf(format=tarfile.USTAR_FORMAT) + data + b"\0" * (-len(data) % 512)


def flatten(tmp_path: Path, stream: object, max_bytes: int = 1 << 30) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    with Flattener(tree, max_bytes=max_bytes, as_root=False) as flat:
        flat.apply_layer(stream)  # type: ignore[arg-type]
        flat.finish()


def test_a_gnu_long_name_header_bomb_is_refused_before_it_is_read(tmp_path: Path) -> None:
    stream = CountingReader(long_name_bomb(64 << 20) + b"\0" * 1024)
    with pytest.raises(UnsafeLayer, match="extended tar headers"):
        flatten(tmp_path, stream)
    # tarfile reads ahead in its own 10 KiB records, never the 64 MiB name.
    assert stream.read_bytes < MAX_EXTENDED_HEADER


def test_a_pax_header_bomb_is_refused(tmp_path: Path) -> None:
    record = pax_record("path", "a" * (4 << 20))
    stream = CountingReader(pax_header(record) + regular("f") + b"\0" * 1024)
    with pytest.raises(UnsafeLayer, match="extended tar headers"):
        flatten(tmp_path, stream)
    assert stream.read_bytes < MAX_EXTENDED_HEADER


def test_global_pax_headers_add_up_across_the_archive(tmp_path: Path) -> None:
    record = pax_record("comment", "c" * (300 << 10))
    data = b"".join(pax_header(record, tarfile.XGLTYPE) + regular(f"f{i}") for i in range(5))
    with pytest.raises(UnsafeLayer, match="extended tar headers"):
        flatten(tmp_path, io.BytesIO(data + b"\0" * 1024))


def test_a_chain_of_small_headers_is_refused_not_a_recursion_error(tmp_path: Path) -> None:
    record = pax_record("comment", "c")
    data = pax_header(record) * 2000 + regular("f") + b"\0" * 1024
    with pytest.raises(UnsafeLayer, match="in a row"):
        flatten(tmp_path, io.BytesIO(data))


def test_ordinary_long_names_and_pax_headers_still_work(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("d/" + "n" * 200 + "/" + "m" * 200)
        info.size = 1
        info.pax_headers = {"comment": "x" * 1000}
        tar.addfile(info, io.BytesIO(b"y"))
    buffer.seek(0)
    flatten(tmp_path, buffer)
    assert (tmp_path / "tree/d" / ("n" * 200) / ("m" * 200)).read_bytes() == b"y"


def test_a_name_longer_than_the_kernel_takes_is_an_unsafe_layer(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(tarfile.TarInfo("n" * 300))
    buffer.seek(0)
    with pytest.raises(UnsafeLayer, match="over 255 bytes"):
        flatten(tmp_path, buffer)


def test_the_decompressed_stream_is_charged_against_the_cap(tmp_path: Path) -> None:
    # Headers of 900 KiB each, under the per-entry limit, before many tiny entries: the
    # entries' own cap sees 4 KiB each, the stream reader all of it.
    record = pax_record("comment", "c" * (900 << 10))
    data = b"".join(pax_header(record) + regular(f"f{i}") for i in range(40))
    with pytest.raises(ImageTooLarge, match="decompressed"):
        flatten(tmp_path, io.BytesIO(data + b"\0" * 1024), max_bytes=1 << 20)


def test_an_image_bundle_with_a_header_bomb_is_a_bad_bundle(tmp_path: Path) -> None:
    bundle = tmp_path / "b.bundle"
    bundle.write_bytes(long_name_bomb(64 << 20) + b"\0" * 1024)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(BadBundle, match="extended tar headers"):
        unpack(bundle, dest, PlainCodec())


def test_an_image_bundle_larger_than_the_cap_is_refused(tmp_path: Path) -> None:
    bundle = tmp_path / "b.bundle"
    bundle.write_bytes(regular("rootfs.ext4", bytes(4 << 20)) + b"\0" * 1024)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ImageTooLarge, match="bundle"):
        unpack(bundle, dest, PlainCodec(), max_bytes=1 << 20)


@pytest.mark.parametrize("mtime", ["1e300", "inf", "nan", "-1e20"])
def test_a_crafted_timestamp_is_an_unsafe_layer_not_an_internal_error(
    tmp_path: Path, mtime: str
) -> None:
    data = pax_header(pax_record("mtime", mtime)) + regular("f") + b"\0" * 1024
    with pytest.raises(UnsafeLayer, match="impossible timestamp"):
        flatten(tmp_path, io.BytesIO(data))


def test_endless_data_after_a_layers_end_is_refused(tmp_path: Path) -> None:
    blob = tmp_path / "layer"
    blob.write_bytes(gzip.compress(regular("f") + b"\0" * 1024 + bytes(64 << 20)))
    with pytest.raises(UnsafeLayer, match="after its end"), open_layer(blob) as stream:
        flatten(tmp_path, stream)


@pytest.mark.skipif(shutil.which("zstd") is None, reason="needs zstd")
def test_endless_data_after_a_bundles_end_is_refused(tmp_path: Path) -> None:
    raw = regular("rootfs.ext4", b"r") + b"\0" * 1024 + bytes(64 << 20)
    bundle = tmp_path / "b.bundle"
    bundle.write_bytes(subprocess.run(["zstd", "-q", "-c"], input=raw, capture_output=True,
                                      check=True).stdout)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(BadBundle, match="after its end"):
        unpack(bundle, dest, ZstdCodec())
