from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from banger.core import guest, imagerecipe
from banger.core.errors import ImageBuildFailed
from banger.core.imagerecipe import (
    GIB,
    INITRAMFS_HOOK,
    PACKAGES,
    RECIPE_VERSION,
    image_size_bytes,
    mkfs_command,
    mmdebstrap_command,
    parse_progress,
)
from banger.core.models import ProgressEvent

SOURCES = [
    "deb http://mirror.example.test/debian bookworm main",
    "deb http://mirror.example.test/debian bookworm-updates main",
    "deb http://mirror.example.test/debian-security bookworm-security main",
]


def test_recipe_version_tracks_the_boot_contract() -> None:
    assert RECIPE_VERSION.endswith(f".{guest.CONTRACT_VERSION}")


# -- command lines -----------------------------------------------------------------------


def test_mmdebstrap_command(tmp_path: Path) -> None:
    argv = mmdebstrap_command(suite="bookworm", target=tmp_path / "tree", apt_sources=SOURCES)
    assert argv[0] == "mmdebstrap"
    assert "--variant=apt" in argv
    assert "--mode=unshare" in argv
    assert "--format=directory" in argv
    [include] = [a for a in argv if a.startswith("--include=")]
    assert include.removeprefix("--include=").split(",") == list(PACKAGES)
    for package in ("openssh-server", "docker.io", "linux-image-cloud-amd64", "systemd-sysv"):
        assert package in PACKAGES
    assert "--dpkgopt=path-exclude=/usr/share/man/*" in argv
    assert "--dpkgopt=path-exclude=/usr/share/doc/*" in argv
    assert "--dpkgopt=path-exclude=/usr/share/locale/*" in argv
    assert f"--essential-hook={INITRAMFS_HOOK}" in argv
    # Positional arguments last: suite, target, then the sources in order.
    assert argv[-5:] == ["bookworm", str(tmp_path / "tree"), *SOURCES]


def test_mmdebstrap_command_needs_sources(tmp_path: Path) -> None:
    with pytest.raises(ImageBuildFailed):
        mmdebstrap_command(suite="bookworm", target=tmp_path, apt_sources=[])


def test_initramfs_hook_writes_a_small_initrd_config(tmp_path: Path) -> None:
    subprocess.run(["sh", "-c", INITRAMFS_HOOK, "sh", str(tmp_path)], check=True)
    conf = (tmp_path / "etc/initramfs-tools/conf.d/banger.conf").read_text()
    assert conf.splitlines() == ["MODULES=list", "COMPRESS=gzip"]
    modules = (tmp_path / "usr/share/initramfs-tools/modules.d/banger").read_text()
    assert modules.splitlines() == ["virtio_mmio", "virtio_blk"]
    assert "\n" not in INITRAMFS_HOOK


def test_mkfs_command_labels_the_root(tmp_path: Path) -> None:
    argv = mkfs_command(tree=tmp_path / "t", output=tmp_path / "r.ext4", size_bytes=3 * GIB)
    assert argv[0] == "mkfs.ext4"
    assert "-F" in argv
    assert argv[argv.index("-L") + 1] == guest.ROOT_DISK_LABEL
    assert argv[argv.index("-d") + 1] == str(tmp_path / "t")
    assert argv[-2:] == [str(tmp_path / "r.ext4"), f"{3 * 1024 * 1024}k"]


def test_image_size_has_headroom_and_whole_mebibytes() -> None:
    mib = 1024 * 1024
    assert image_size_bytes(0) == 2 * GIB
    assert image_size_bytes(800 * mib) == 1000 * mib + 2 * GIB
    assert image_size_bytes(1) % mib == 0
    assert image_size_bytes(1) > 2 * GIB


# -- progress -----------------------------------------------------------------------------


def test_parse_progress() -> None:
    event = parse_progress("I: downloading packages with apt...")
    assert event == ProgressEvent("image", "downloading packages with apt...", 0.05)
    assert parse_progress("I: success in 41.2 seconds") == ProgressEvent(
        "image", "success in 41.2 seconds", 0.8
    )
    assert parse_progress("I: something new") == ProgressEvent("image", "something new", None)
    assert parse_progress("W: no signed-by") is None
    assert parse_progress("E: apt-get failed") is None
    assert parse_progress("Get:1 http://mirror.example.test/debian bookworm InRelease") is None
    assert parse_progress("I: ") is None


def test_progress_fractions_increase() -> None:
    values = [v for _, v in imagerecipe._MMDEBSTRAP_STEPS]
    assert values == sorted(values)
    assert all(0 < v < 1 for v in values)
