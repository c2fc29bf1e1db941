from __future__ import annotations

import asyncio
import gzip
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from banger.core import guest
from banger.core.errors import ImageBuildFailed, MissingTool
from banger.core.imagerecipe import GIB
from banger.core.initrd import INIT_SCRIPT
from banger.core.models import ProgressEvent
from banger.host.imagebuild import DebianImageBuilder, FakeImageBuilder
from tests.core.test_cpio import read_newc
from tests.core.test_imagerecipe import SOURCES
from tests.host.test_initrd import make_tree

# -- the builder, with stand-in tools ------------------------------------------------------

FAKE_MMDEBSTRAP = r"""#!/bin/sh
# Stand-in for mmdebstrap: the last three arguments are sources, before them the target.
eval "target=\${$(($# - 3))}"
echo "I: running apt-get update..." >&2
echo "Get:1 http://mirror.example.test/debian bookworm InRelease" >&2
[ -n "$FAIL" ] && { echo "E: $FAIL" >&2; exit 1; }
[ -n "$HANG" ] && { echo "$$" > "$HANG"; exec sleep 60; }
mkdir -p "$target/boot" "$target/lib/systemd/system" "$target/etc/ssh" "$target/var/lib/dpkg"
echo kernel > "$target/boot/vmlinuz-6.1.0-1-cloud-amd64"
echo initrd > "$target/boot/initrd.img-6.1.0-1-cloud-amd64"
for u in systemd-networkd.service systemd-networkd.socket docker.socket; do
    echo '[Unit]' > "$target/lib/systemd/system/$u"
done
echo 'root:*:1:0:99999:7:::' > "$target/etc/shadow"
[ -n "$TREE_EXTRA" ] && cp -a "$TREE_EXTRA/." "$target/"
printf 'Package: bash\nStatus: install ok installed\nVersion: 5.2\n' > "$target/var/lib/dpkg/status"
echo "I: success in 0.1 seconds" >&2
"""

FAKE_MKFS = r"""#!/bin/sh
eval "out=\${$(($# - 1))}"
truncate -s 1M "$out"
"""


def _tool(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def builder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DebianImageBuilder:
    # The root path runs the customisation in-process; that is the one unit tests cover.
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    return DebianImageBuilder(
        mmdebstrap=str(_tool(bin_dir, "mmdebstrap", FAKE_MMDEBSTRAP)),
        mkfs=str(_tool(bin_dir, "mkfs.ext4", FAKE_MKFS)),
    )


async def test_build_with_stand_in_tools(tmp_path: Path, builder: DebianImageBuilder) -> None:
    events: list[ProgressEvent] = []
    dest = tmp_path / "images" / "debian-bookworm"
    built = await builder.build(
        suite="bookworm", dest_dir=dest, apt_sources=SOURCES, progress=events.append
    )
    assert built.rootfs == dest / "rootfs.ext4"
    assert built.kernel.read_text() == "kernel\n"
    assert built.initrd.read_text() == "initrd\n"
    assert built.kernel_version == "6.1.0-1-cloud-amd64"
    assert built.packages == ("bash=5.2",)
    assert built.size_bytes >= 2 * GIB
    assert sorted(p.name for p in dest.iterdir()) == ["initrd.img", "rootfs.ext4", "vmlinuz"]
    # Only the final image is left next to dest_dir.
    assert [p.name for p in dest.parent.iterdir()] == ["debian-bookworm"]
    messages = [e.message for e in events]
    assert "running apt-get update..." in messages
    assert not any(m.startswith("Get:") for m in messages)
    assert events[-1].fraction == 1.0
    fractions = [e.fraction for e in events if e.fraction is not None]
    assert fractions == sorted(fractions)
    # The stand-in tree has no modules and no busybox: the image keeps its own initrd.
    assert any(e.stage == "warning" and "initramfs-tools initrd" in e.message for e in events)


async def test_build_makes_bangers_initrd_from_the_tree(
    tmp_path: Path, builder: DebianImageBuilder, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = make_tree(tmp_path / "extra", "6.1.0-1-cloud-amd64")
    monkeypatch.setenv("TREE_EXTRA", str(extra))
    events: list[ProgressEvent] = []
    built = await builder.build(
        suite="bookworm", dest_dir=tmp_path / "img", apt_sources=SOURCES, progress=events.append
    )
    files = read_newc(gzip.decompress(built.initrd.read_bytes()))
    assert files["init"][1] == INIT_SCRIPT.encode()
    assert "lib/modules/03-virtio_blk.ko" in files
    assert not any(e.stage == "warning" for e in events)


async def test_build_into_an_existing_empty_dir(
    tmp_path: Path, builder: DebianImageBuilder
) -> None:
    dest = tmp_path / "staging"
    dest.mkdir()
    built = await builder.build(
        suite="bookworm", dest_dir=dest, apt_sources=SOURCES, progress=lambda e: None
    )
    assert built.rootfs.exists()


async def test_build_refuses_a_non_empty_dest(tmp_path: Path, builder: DebianImageBuilder) -> None:
    dest = tmp_path / "image"
    dest.mkdir()
    (dest / "old").write_text("x")
    with pytest.raises(ImageBuildFailed):
        await builder.build(
            suite="bookworm", dest_dir=dest, apt_sources=SOURCES, progress=lambda e: None
        )


async def test_build_failure_reports_stderr_and_cleans_up(
    tmp_path: Path, builder: DebianImageBuilder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAIL", "failed to download packages")
    dest = tmp_path / "images" / "img"
    with pytest.raises(ImageBuildFailed) as info:
        await builder.build(
            suite="bookworm", dest_dir=dest, apt_sources=SOURCES, progress=lambda e: None
        )
    assert "E: failed to download packages" in info.value.message
    assert "debian_mirror" in info.value.hint
    assert list(dest.parent.iterdir()) == []


async def test_cancel_kills_mmdebstrap_and_cleans_up(
    tmp_path: Path, builder: DebianImageBuilder, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "pid"
    monkeypatch.setenv("HANG", str(pid_file))
    dest = tmp_path / "images" / "img"
    task = asyncio.create_task(
        builder.build(suite="bookworm", dest_dir=dest, apt_sources=SOURCES, progress=print)
    )
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text().strip():
            break
        await asyncio.sleep(0.02)
    pid = int(pid_file.read_text())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert list(dest.parent.iterdir()) == []


async def test_missing_tools(tmp_path: Path) -> None:
    missing = DebianImageBuilder(mmdebstrap="banger-no-such-mmdebstrap")
    with pytest.raises(MissingTool):
        await missing.build(
            suite="bookworm", dest_dir=tmp_path / "i", apt_sources=SOURCES, progress=print
        )
    missing = DebianImageBuilder(mmdebstrap="sh", mkfs="banger-no-such-mkfs")
    with pytest.raises(MissingTool):
        await missing.build(
            suite="bookworm", dest_dir=tmp_path / "i", apt_sources=SOURCES, progress=print
        )
    assert not (tmp_path / "i").exists()


# -- the fake -----------------------------------------------------------------------------


async def test_fake_builder(tmp_path: Path) -> None:
    fake = FakeImageBuilder()
    events: list[ProgressEvent] = []
    built = await fake.build(
        suite="bookworm", dest_dir=tmp_path / "img", apt_sources=SOURCES, progress=events.append
    )
    assert built.rootfs.stat().st_size == built.size_bytes
    assert built.kernel.exists() and built.initrd.exists()
    assert fake.calls == [
        {"suite": "bookworm", "dest_dir": tmp_path / "img", "apt_sources": SOURCES}
    ]
    assert events[-1].fraction == 1.0


async def test_fake_builder_failure(tmp_path: Path) -> None:
    fake = FakeImageBuilder(fail_with=ImageBuildFailed("mirror down"))
    with pytest.raises(ImageBuildFailed):
        await fake.build(
            suite="bookworm", dest_dir=tmp_path / "img", apt_sources=SOURCES, progress=print
        )
    assert not (tmp_path / "img").exists()


# -- the real thing -----------------------------------------------------------------------


def _real_build_prerequisites() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    missing = [t for t in ("mmdebstrap", "mkfs.ext4") if shutil.which(t) is None]
    return f"needs {', '.join(missing)}" if missing else None


@pytest.mark.e2e
@pytest.mark.timeout(1800)
@pytest.mark.skipif(_real_build_prerequisites() is not None, reason="needs root and mmdebstrap")
async def test_real_build(tmp_path: Path) -> None:
    from banger.host.aptconfig import host_apt_sources

    events: list[ProgressEvent] = []
    built = await DebianImageBuilder().build(
        suite="bookworm",
        dest_dir=tmp_path / "img",
        apt_sources=host_apt_sources("bookworm", None),
        progress=events.append,
    )
    label = subprocess.run(
        ["e2label", str(built.rootfs)], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert label == guest.ROOT_DISK_LABEL
    assert built.kernel.stat().st_size > 1_000_000
    assert any(p.startswith("openssh-server=") for p in built.packages)
    assert any(p.startswith("linux-image-") for p in built.packages)
    listing = subprocess.run(
        ["debugfs", "-R", f"cat {guest.BOOT_SCRIPT_PATH}", str(built.rootfs)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert listing == guest.BOOT_SCRIPT
    # banger's own initrd, not initramfs-tools': busybox-static and the cloud kernel's
    # virtio modules (ext4 is built in).
    assert not any(e.stage == "warning" for e in events)
    initrd = read_newc(gzip.decompress(built.initrd.read_bytes()))
    assert initrd["init"][1] == INIT_SCRIPT.encode()
    order = initrd["modules.order"][1].decode()
    assert "virtio_mmio.ko" in order and "virtio_blk.ko" in order
