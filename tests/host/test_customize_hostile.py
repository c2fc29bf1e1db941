"""Customising a tree banger did not build (an OCI image) when the tree is hostile: a FIFO
where a config file should be, a symlink out of the tree, a customisation that never ends
(Containment: FIFOs and other non-regular files)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from banger.core.errors import ImageBuildFailed, UnsafeLayer
from banger.host import imagetree, ocipull
from banger.host.imagetree import customize_tree
from banger.host.ocipull import customize_chrooted

ROOT = os.geteuid() == 0


def image_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc/shadow").write_text("root:$y$hash:20000::::::\n")
    return tree


@pytest.mark.timeout(30)
def test_a_fifo_fstab_is_refused_instead_of_hanging(tmp_path: Path) -> None:
    tree = image_tree(tmp_path)
    os.mkfifo(tree / "etc/fstab")
    with pytest.raises(UnsafeLayer, match="not a regular file"):
        customize_tree(tree, strict=False)


def test_a_shadow_symlinked_to_a_host_file_is_not_written_through(tmp_path: Path) -> None:
    host_file = tmp_path / "host-shadow"
    host_file.write_text("root:host-hash:20000::::::\n")
    tree = image_tree(tmp_path)
    (tree / "etc/shadow").unlink()
    (tree / "etc/shadow").symlink_to(host_file)
    with pytest.raises(UnsafeLayer):
        customize_tree(tree, strict=False)
    assert host_file.read_text() == "root:host-hash:20000::::::\n"


def test_a_fifo_where_banger_writes_a_file_is_replaced(tmp_path: Path) -> None:
    tree = image_tree(tmp_path)
    os.mkfifo(tree / "etc/hostname")
    customize_tree(tree, strict=False)
    assert (tree / "etc/hostname").read_text() == "banger\n"


@pytest.mark.skipif(not ROOT, reason="chroot needs root")
@pytest.mark.timeout(30)
def test_a_fifo_fstab_fails_the_chrooted_customisation(tmp_path: Path) -> None:
    tree = image_tree(tmp_path)
    os.mkfifo(tree / "etc/fstab")
    with pytest.raises(ImageBuildFailed, match="not a regular file"):
        customize_chrooted(tree)


@pytest.mark.skipif(not ROOT, reason="chroot needs root")
@pytest.mark.timeout(30)
def test_a_customisation_that_never_ends_is_killed_at_its_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imagetree, "customize_tree", lambda root, **_: time.sleep(3600))
    started = time.monotonic()
    with pytest.raises(ImageBuildFailed, match="took over 1 s"):
        customize_chrooted(image_tree(tmp_path), deadline=1.0)
    assert time.monotonic() - started < 10
    assert ocipull.CUSTOMIZE_DEADLINE >= 60
