"""The layer flattener against hand-made layers: whiteouts, opaque dirs, links, ownership,
and the malicious cases (escaping paths, symlink write-through, devices, bombs)."""

from __future__ import annotations

import gzip
import io
import os
import stat
from pathlib import Path

import pytest

from banger.core.errors import ImageTooLarge, UnsafeLayer
from banger.host.flatten import Fixup, Flattener, debugfs_script, open_layer
from tests.support.ocitools import Entry, compress, layer_tar

ROOT = os.geteuid() == 0


def flatten(tmp_path: Path, *layers: list[Entry], max_bytes: int = 1 << 30,
            as_root: bool | None = None) -> tuple[Path, Flattener]:
    tree = tmp_path / "tree"
    tree.mkdir(exist_ok=True)
    flat = Flattener(tree, max_bytes=max_bytes, as_root=as_root)
    with flat:
        for layer in layers:
            flat.apply_layer(io.BytesIO(layer_tar(layer)))
        flat.finish()
    return tree, flat


def test_layers_whiteouts_and_opaque_dirs(tmp_path: Path) -> None:
    base = [
        Entry("etc", "dir", mode=0o755), Entry("etc/keep", data=b"keep"),
        Entry("etc/gone", data=b"gone"), Entry("opq", "dir", mode=0o755),
        Entry("opq/old", data=b"old"), Entry("opq/sub", "dir"), Entry("opq/sub/deep", data=b"d"),
        Entry("dir-to-file", "dir"), Entry("dir-to-file/x", data=b"x"),
    ]
    top = [
        Entry("etc/.wh.gone"), Entry("opq/new", data=b"new"), Entry("opq/.wh..wh..opq"),
        Entry("dir-to-file", data=b"now a file"), Entry("etc/.wh.never-existed"),
    ]
    tree, flat = flatten(tmp_path, base, top)
    assert (tree / "etc/keep").read_bytes() == b"keep"
    assert not (tree / "etc/gone").exists()
    assert sorted(os.listdir(tree / "opq")) == ["new"]
    assert (tree / "dir-to-file").read_bytes() == b"now a file"
    assert flat.stats.whiteouts == 3


def test_links_modes_and_mtimes(tmp_path: Path) -> None:
    layer = [
        Entry("bin", "dir", mode=0o755, mtime=1000),
        Entry("bin/tool", data=b"#!/bin/sh\n", mode=0o4755, uid=0, gid=0),
        Entry("bin/alias", "hardlink", link="bin/tool"),
        Entry("bin/sym", "symlink", link="/bin/tool"),
        Entry("bin/fifo", "fifo", mode=0o600),
        Entry("home", "dir", mode=0o755), Entry("home/u", "dir", mode=0o700, uid=1000, gid=1000),
        Entry("home/u/f", data=b"f", uid=1000, gid=1001, mode=0o640,
              xattrs={"user.note": "hello"}),
    ]
    tree, _ = flatten(tmp_path, layer, as_root=ROOT)
    tool = os.lstat(tree / "bin/tool")
    assert os.lstat(tree / "bin/alias").st_ino == tool.st_ino
    assert os.readlink(tree / "bin/sym") == "/bin/tool"
    assert stat.S_ISFIFO(os.lstat(tree / "bin/fifo").st_mode)
    assert os.lstat(tree / "bin").st_mtime == 1000
    if ROOT:
        assert stat.S_IMODE(tool.st_mode) == 0o4755
        info = os.lstat(tree / "home/u/f")
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (1000, 1001, 0o640)
        assert os.getxattr(tree / "home/u/f", "user.note") == b"hello"


def test_non_root_collects_ownership_fixups(tmp_path: Path) -> None:
    layer = [Entry("d", "dir", mode=0o555, uid=5, gid=6), Entry("d/f", data=b"x", mode=0o4711),
             Entry("d/l", "symlink", link="f", uid=7)]
    tree = tmp_path / "tree"
    tree.mkdir()
    with Flattener(tree, max_bytes=1 << 20, as_root=False) as flat:
        flat.apply_layer(io.BytesIO(layer_tar(layer)))
        fixups = flat.finish()
    assert Fixup("d", 5, 6, stat.S_IFDIR | 0o555) in fixups
    assert Fixup("d/f", 0, 0, stat.S_IFREG | 0o4711) in fixups
    assert Fixup("d/l", 7, 0, stat.S_IFLNK | 0o777) in fixups
    # The caller can still write into its directories until debugfs applies the modes.
    assert os.stat(tree / "d").st_mode & 0o700 == 0o700
    script = debugfs_script([*fixups, Fixup('bad"name', 0, 0, 0o100644)])
    assert 'set_inode_field "/d/f" mode 0104711' in script
    assert "bad" not in script


@pytest.mark.parametrize("name", ["../escape", "/etc/escape", "a/../../escape"])
def test_escaping_paths_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnsafeLayer):
        flatten(tmp_path, [Entry(name, data=b"pwned")])
    assert not (tmp_path / "escape").exists()


def test_symlinks_are_never_written_through(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    layer1 = [
        Entry("abs", "symlink", link=str(outside)),
        Entry("rel", "symlink", link="../../../../../../" + str(outside).lstrip("/")),
        Entry("file-link", "symlink", link=str(outside / "target")),
    ]
    layer2 = [
        Entry("abs/a", data=b"pwned"), Entry("rel/b", data=b"pwned"),
        Entry("file-link", data=b"replaced, not written through"),
    ]
    tree, _ = flatten(tmp_path, layer1, layer2)
    assert list(outside.iterdir()) == []
    # Parents resolve inside the image, as the guest would see them.
    inner = str(outside).lstrip("/")
    assert (tree / inner / "a").read_bytes() == b"pwned"
    assert (tree / inner / "b").read_bytes() == b"pwned"
    assert (tree / "file-link").read_bytes() == b"replaced, not written through"


def test_hardlink_to_outside_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    with pytest.raises(UnsafeLayer):
        flatten(tmp_path, [Entry("h", "hardlink", link="../secret")])
    with pytest.raises(UnsafeLayer):
        flatten(tmp_path, [Entry("h", "hardlink", link=str(secret))])
    # Through a symlink: the link target resolves inside the root, where there is nothing.
    tree, flat = flatten(tmp_path, [Entry("s", "symlink", link=str(tmp_path)),
                                    Entry("h", "hardlink", link="s/secret")])
    assert not (tree / "h").exists()
    assert flat.stats.skipped == ["h"]


def test_device_nodes_are_skipped(tmp_path: Path) -> None:
    skipped: list[str] = []
    tree = tmp_path / "tree"
    tree.mkdir()
    with Flattener(tree, max_bytes=1 << 20, on_skip=skipped.append) as flat:
        flat.apply_layer(io.BytesIO(layer_tar([Entry("dev", "dir"), Entry("dev/sda", "chr")])))
    assert not (tree / "dev/sda").exists()
    assert skipped and "dev/sda" in skipped[0]


def test_size_cap_stops_a_decompression_bomb(tmp_path: Path) -> None:
    bomb = gzip.compress(layer_tar([Entry("zeros", data=b"\0" * (8 << 20))]))
    assert len(bomb) < 64 * 1024
    blob = tmp_path / "bomb.tar.gz"
    blob.write_bytes(bomb)
    tree = tmp_path / "tree"
    tree.mkdir()
    with pytest.raises(ImageTooLarge), Flattener(tree, max_bytes=1 << 20) as flat, \
            open_layer(blob) as stream:
        flat.apply_layer(stream)
    assert (tree / "zeros").stat().st_size <= 1 << 20


def test_many_empty_entries_count_against_the_cap(tmp_path: Path) -> None:
    entries = [Entry(f"f{i}") for i in range(300)]
    with pytest.raises(ImageTooLarge):
        flatten(tmp_path, entries, max_bytes=256 * 4096)


def test_sparse_file_counts_its_apparent_size(tmp_path: Path) -> None:
    # A GNU sparse member: one byte of data, a 64 MiB hole.
    source = tmp_path / "sparse"
    with open(source, "wb") as f:
        f.truncate(64 << 20)
        f.write(b"x")
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.add(source, arcname="sparse")
    tree = tmp_path / "tree"
    tree.mkdir()
    with pytest.raises(ImageTooLarge), Flattener(tree, max_bytes=16 << 20) as flat:
        flat.apply_layer(io.BytesIO(buffer.getvalue()))


@pytest.mark.parametrize("compression", ["gzip", "zstd", ""])
def test_open_layer_detects_compression(tmp_path: Path, compression: str) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(compress(layer_tar([Entry("hello", data=b"hi")]), compression))
    tree = tmp_path / "tree"
    tree.mkdir()
    with Flattener(tree, max_bytes=1 << 20) as flat, open_layer(blob) as stream:
        flat.apply_layer(stream)
    assert (tree / "hello").read_bytes() == b"hi"


def test_garbage_layer_is_a_clear_error(tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(gzip.compress(b"this is not a tar archive" * 100))
    tree = tmp_path / "tree"
    tree.mkdir()
    with pytest.raises(UnsafeLayer), Flattener(tree, max_bytes=1 << 20) as flat, \
            open_layer(blob) as stream:
        flat.apply_layer(stream)
