from __future__ import annotations

import asyncio
import gzip
import os
import shutil
import stat
import subprocess
import textwrap
from pathlib import Path

import pytest

from banger.core import guest
from banger.core.errors import ImageBuildFailed, MissingTool
from banger.core.initrd import INIT_SCRIPT
from banger.core.models import ProgressEvent
from banger.host import imagebuild
from banger.host.imagebuild import (
    GIB,
    INITRAMFS_HOOK,
    MASKED_GENERATORS,
    MASKED_UNITS,
    PACKAGES,
    RECIPE_VERSION,
    DebianImageBuilder,
    FakeImageBuilder,
    customize_tree,
    find_kernel,
    image_size_bytes,
    installed_packages,
    mkfs_command,
    mmdebstrap_command,
    parse_progress,
    tree_size_bytes,
)
from tests.core.test_initramfs import read_newc
from tests.host.test_initrd import make_tree

SOURCES = [
    "deb http://mirror.example.test/debian bookworm main",
    "deb http://mirror.example.test/debian bookworm-updates main",
    "deb http://mirror.example.test/debian-security bookworm-security main",
]
VENDOR = "lib/systemd/system"


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
    values = [v for _, v in imagebuild._MMDEBSTRAP_STEPS]
    assert values == sorted(values)
    assert all(0 < v < 1 for v in values)


# -- customisation of a fake tree ---------------------------------------------------------


def _unit(root: Path, name: str) -> None:
    path = root / VENDOR / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[Unit]\n")


def _link(root: Path, path: str, target: str) -> None:
    link = root / path
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    for name in (
        "systemd-networkd.service",
        "systemd-networkd.socket",
        "docker.service",
        "docker.socket",
        "containerd.service",
        "getty@.service",
        "ssh.service",
    ):
        _unit(root, name)
    # Links point at absolute in-guest paths that do not exist on the test host.
    system = "etc/systemd/system"
    _link(root, f"{system}/multi-user.target.wants/docker.service", f"/{VENDOR}/docker.service")
    _link(root, f"{system}/multi-user.target.wants/containerd.service", "/x/containerd.service")
    _link(root, f"{system}/multi-user.target.wants/ssh.service", f"/{VENDOR}/ssh.service")
    _link(root, f"{system}/getty.target.wants/getty@tty1.service", f"/{VENDOR}/getty@.service")
    _link(root, f"{system}/timers.target.wants/apt-daily.timer", f"/{VENDOR}/apt-daily.timer")
    etc = root / "etc"
    (etc / "ssh").mkdir(parents=True)
    for key in ("ssh_host_rsa_key", "ssh_host_rsa_key.pub", "ssh_host_ed25519_key"):
        (etc / "ssh" / key).write_text("secret")
    (etc / "ssh/sshd_config").write_text("Include /etc/ssh/sshd_config.d/*.conf\n")
    (etc / "fstab").write_text("# UNCONFIGURED FSTAB FOR BASE SYSTEM")
    (etc / "machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    (etc / "hostname").write_text("buildhost\n")
    (etc / "resolv.conf").write_text("nameserver 192.0.2.53\n")
    (etc / "shadow").write_text(
        "root:$y$j9T$hash:20000:0:99999:7:::\ndaemon:*:20000:0:99999:7:::\n"
    )
    (etc / "shadow").chmod(0o640)
    (root / "var/lib/dbus").mkdir(parents=True)
    (root / "var/lib/dbus/machine-id").write_text("0123\n")
    return root


def _target(root: Path, path: str) -> str:
    return os.readlink(root / path)


def test_customize_installs_the_boot_contract(tree: Path) -> None:
    customize_tree(tree)
    script = tree / guest.BOOT_SCRIPT_PATH.lstrip("/")
    assert script.read_text() == guest.BOOT_SCRIPT
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    unit = tree / "etc/systemd/system" / guest.BOOT_UNIT_NAME
    assert unit.read_text() == guest.BOOT_UNIT
    assert _target(tree, f"etc/systemd/system/sysinit.target.wants/{guest.BOOT_UNIT_NAME}") == (
        f"/etc/systemd/system/{guest.BOOT_UNIT_NAME}"
    )
    assert (tree / "etc/ssh/sshd_config.d/banger.conf").read_text() == guest.SSHD_CONFIG
    drop_in = (tree / "etc/systemd/system/ssh.service.d/banger.conf").read_text()
    assert "ExecStartPre=\n" in drop_in
    fstab = (tree / "etc/fstab").read_text()
    assert fstab.startswith("# UNCONFIGURED FSTAB FOR BASE SYSTEM\n")
    assert fstab.endswith(guest.FSTAB)


def test_customize_removes_shared_identity(tree: Path) -> None:
    customize_tree(tree)
    assert sorted(p.name for p in (tree / "etc/ssh").iterdir()) == ["sshd_config", "sshd_config.d"]
    assert (tree / "etc/machine-id").read_text() == ""
    assert not (tree / "var/lib/dbus/machine-id").exists()
    assert (tree / "etc/hostname").read_text() == "banger\n"
    assert "192.0.2.53" not in (tree / "etc/resolv.conf").read_text()
    assert stat.S_IMODE((tree / "etc/hostname").stat().st_mode) == 0o644
    assert (tree / "etc/default/locale").read_text() == "LANG=C.UTF-8\n"


def test_customize_locks_root_password_only(tree: Path) -> None:
    customize_tree(tree)
    shadow = tree / "etc/shadow"
    assert shadow.read_text().splitlines() == [
        "root:*:20000:0:99999:7:::",
        "daemon:*:20000:0:99999:7:::",
    ]
    assert stat.S_IMODE(shadow.stat().st_mode) == 0o640


def test_customize_units(tree: Path) -> None:
    customize_tree(tree)
    system = "etc/systemd/system"
    assert _target(tree, f"{system}/multi-user.target.wants/systemd-networkd.service") == (
        f"/{VENDOR}/systemd-networkd.service"
    )
    assert _target(tree, f"{system}/sockets.target.wants/systemd-networkd.socket") == (
        f"/{VENDOR}/systemd-networkd.socket"
    )
    assert _target(tree, f"{system}/sockets.target.wants/docker.socket") == (
        f"/{VENDOR}/docker.socket"
    )
    for gone in ("docker.service", "containerd.service"):
        assert not os.path.lexists(tree / system / "multi-user.target.wants" / gone)
    assert not os.path.lexists(tree / system / "getty.target.wants/getty@tty1.service")
    assert not os.path.lexists(tree / system / "timers.target.wants/apt-daily.timer")
    assert os.path.lexists(tree / system / "multi-user.target.wants/ssh.service")
    for unit in MASKED_UNITS:
        assert _target(tree, f"{system}/{unit}") == "/dev/null"
    for generator in MASKED_GENERATORS:
        assert _target(tree, f"etc/systemd/system-generators/{generator}") == "/dev/null"
    assert "systemd-networkd-wait-online.service" in MASKED_UNITS


def test_customize_skips_networkd_when_iproute2_is_there(tree: Path) -> None:
    # The boot unit then puts the address on itself; networkd would only cost boot time.
    (tree / "usr/sbin").mkdir(parents=True)
    (tree / "usr/sbin/ip").write_text("")
    customize_tree(tree)
    system = tree / "etc/systemd/system"
    assert not os.path.lexists(system / "multi-user.target.wants/systemd-networkd.service")
    assert not os.path.lexists(system / "sockets.target.wants/systemd-networkd.socket")
    assert not os.path.lexists(system / "dbus-org.freedesktop.network1.service")


SSHD_PAM = """\
@include common-auth
session    optional     pam_motd.so  motd=/run/motd.dynamic
session    optional     pam_motd.so noupdate
# session  optional     pam_motd.so (a comment stays as it is)
session    optional     pam_mail.so standard noenv # [1]
session    required     pam_limits.so
session    required     pam_env.so user_readenv=1 envfile=/etc/default/locale
"""


def test_customize_drops_the_login_banner_from_sshd_pam(tree: Path) -> None:
    pam = tree / "etc/pam.d/sshd"
    pam.parent.mkdir(parents=True)
    pam.write_text(SSHD_PAM)
    customize_tree(tree)
    customize_tree(tree)
    active = [ln for ln in pam.read_text().splitlines() if not ln.startswith("#")]
    assert active == [
        "@include common-auth",
        "session    required     pam_limits.so",
        "session    required     pam_env.so user_readenv=1 envfile=/etc/default/locale",
    ]
    assert "# session  optional     pam_motd.so (a comment stays as it is)" in pam.read_text()
    assert "# banger: session    optional     pam_motd.so noupdate" in pam.read_text()


def test_customize_is_idempotent(tree: Path) -> None:
    customize_tree(tree)
    customize_tree(tree)
    assert (tree / "etc/fstab").read_text().count(guest.FSTAB) == 1


def test_customize_needs_networkd(tree: Path) -> None:
    (tree / VENDOR / "systemd-networkd.service").unlink()
    with pytest.raises(ImageBuildFailed):
        customize_tree(tree)


# -- reading the tree ---------------------------------------------------------------------


def test_find_kernel_picks_the_newest_with_an_initrd(tmp_path: Path) -> None:
    boot = tmp_path / "boot"
    boot.mkdir()
    for version in ("6.1.0-9-cloud-amd64", "6.1.0-10-cloud-amd64", "6.1.0-11-cloud-amd64"):
        (boot / f"vmlinuz-{version}").write_text("k")
    for version in ("6.1.0-9-cloud-amd64", "6.1.0-10-cloud-amd64"):
        (boot / f"initrd.img-{version}").write_text("i")
    version, kernel, initrd = find_kernel(tmp_path)
    assert version == "6.1.0-10-cloud-amd64"
    assert kernel == boot / "vmlinuz-6.1.0-10-cloud-amd64"
    assert initrd == boot / "initrd.img-6.1.0-10-cloud-amd64"


def test_find_kernel_without_kernel(tmp_path: Path) -> None:
    (tmp_path / "boot").mkdir()
    with pytest.raises(ImageBuildFailed):
        find_kernel(tmp_path)


def test_installed_packages(tmp_path: Path) -> None:
    status = tmp_path / "var/lib/dpkg/status"
    status.parent.mkdir(parents=True)
    status.write_text(
        textwrap.dedent(
            """\
            Package: zlib1g
            Status: install ok installed
            Version: 1:1.2.13.dfsg-1
            Description: compression library
             Status: not a field

            Package: removed
            Status: deinstall ok config-files
            Version: 1.0

            Package: bash
            Status: install ok installed
            Version: 5.2.15-2+b2
            """
        )
    )
    assert installed_packages(tmp_path) == ("bash=5.2.15-2+b2", "zlib1g=1:1.2.13.dfsg-1")


def test_tree_size_counts_hard_links_once(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 100_000)
    single = tree_size_bytes(tmp_path)
    os.link(tmp_path / "a", tmp_path / "b")
    assert tree_size_bytes(tmp_path) == single
    assert single >= 100_000


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
