"""Build the default Debian image: mmdebstrap a tree, bake in the guest boot contract, write
the tree to a raw ext4 file, take the kernel out of the image itself and build banger's
initrd from the image's modules and busybox.

Layout of a build: everything happens in a temporary directory next to ``dest_dir`` (the tree
and the outputs), and ``dest_dir`` appears only when the image is complete, so a failed or
cancelled build leaves nothing behind.

mmdebstrap always runs in ``--mode=unshare``: as root that only unshares the mount namespace
(ownership stays right, and the chroot's /proc, /sys and /dev mounts die with the process
instead of lingering on the host if a build is killed). Without root, mmdebstrap also unshares
the user namespace (it needs subuid/subgid ranges), the tree is owned by subordinate ids, and
the steps that touch it run inside the same mapping through ``mmdebstrap --unshare-helper``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import shutil
import signal
import stat
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from banger.core import agent, guest
from banger.core.errors import ImageBuildFailed, MissingTool
from banger.core.models import ProgressEvent
from banger.host.initrd import tree_initrd
from banger.host.safeio import read_regular, write_regular

# Bump when the package set, the customisation or banger's initrd (core/initrd.py) changes;
# the boot contract has its own.
RECIPE = "3"
RECIPE_VERSION = f"{RECIPE}.{guest.CONTRACT_VERSION}"

STAGE = "image"

PACKAGES: tuple[str, ...] = (
    "systemd",
    "systemd-sysv",
    "udev",
    "dbus",
    "openssh-server",
    "git",
    "curl",
    "ca-certificates",
    "jq",
    "sudo",
    "iproute2",
    "docker.io",
    "python3",
    "build-essential",
    "make",
    "less",
    "vim-tiny",
    "tmux",
    "rsync",
    "unzip",
    "xz-utils",
    "procps",
    "e2fsprogs",
    # /etc/services and /etc/protocols: many tools (and getaddrinfo with service names) fail
    # in odd ways without them, and the apt variant does not pull them in.
    "netbase",
    "linux-image-cloud-amd64",
    # The shell of banger's own initrd (see core/initrd.py).
    "busybox-static",
)

DPKG_OPTIONS: tuple[str, ...] = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/lintian/*",
)

APT_OPTIONS: tuple[str, ...] = ('Acquire::Languages "none"',)

# The image boots banger's own initrd (core/initrd.py), built from the tree after
# bootstrapping. The initramfs-tools one in /boot stays as the fallback for a tree that
# cannot have it, so keep that one small too: the cloud kernel builds virtio as modules, the
# default MODULES=most initrd is ~50 MB uncompressed and costs boot time under TCG, and banger
# guests only need virtio-mmio and virtio-blk to find the root disk (ext4 is built in).
# Written before the kernel package is installed so its postinst builds the small initrd (and
# so do later kernel upgrades).
INITRAMFS_CONF: tuple[str, ...] = ("MODULES=list", "COMPRESS=gzip")
INITRAMFS_MODULES: tuple[str, ...] = ("virtio_mmio", "virtio_blk")
_INITRAMFS_CONF_DIR = "etc/initramfs-tools/conf.d"
_INITRAMFS_MODULES_DIR = "usr/share/initramfs-tools/modules.d"
# One line, so mmdebstrap's "running --essential-hook" progress line stays readable.
INITRAMFS_HOOK = (
    f'mkdir -p "$1/{_INITRAMFS_CONF_DIR}" "$1/{_INITRAMFS_MODULES_DIR}"'
    f" && printf '%s\\n' {shlex.join(INITRAMFS_CONF)}"
    f' > "$1/{_INITRAMFS_CONF_DIR}/banger.conf"'
    f" && printf '%s\\n' {shlex.join(INITRAMFS_MODULES)}"
    f' > "$1/{_INITRAMFS_MODULES_DIR}/banger"'
)

# Units a sandbox does not need at boot. Masked (not just disabled) so a package upgrade in
# the guest does not quietly turn them back on.
MASKED_UNITS: tuple[str, ...] = (
    "apt-daily.timer",
    "apt-daily.service",
    "apt-daily-upgrade.timer",
    "apt-daily-upgrade.service",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "man-db.timer",
    "systemd-networkd-wait-online.service",
    "systemd-pstore.service",
    # Registers binfmt handlers (python3 ships one); unmask for foreign-arch containers.
    "systemd-binfmt.service",
    # Each of these is one more fork+exec at boot, a few hundred ms of a 2-vCPU TCG guest.
    # No GPU, device mapper or loop setup at boot; loop and fuse still load on first use
    # (kmod-static-nodes keeps their /dev nodes).
    "modprobe@drm.service",
    "modprobe@dm_mod.service",
    "modprobe@loop.service",
    "modprobe@fuse.service",
    "modprobe@configfs.service",
    "sys-kernel-config.mount",
    "sys-fs-fuse-connections.mount",
    # No huge pages and no kernel debugging in a sandbox (`mount -t debugfs` still works).
    "dev-hugepages.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    # The journal stays in /run (volatile): no copy to /var/log/journal at every boot.
    "systemd-journal-flush.service",
)

# Generators for hardware and setups a banger VM never has. Each costs an exec on every boot
# and daemon-reload, which is noticeable under TCG. Masked by a /dev/null link in /etc.
MASKED_GENERATORS: tuple[str, ...] = (
    "systemd-cryptsetup-generator",
    "systemd-integritysetup-generator",
    "systemd-veritysetup-generator",
    "systemd-gpt-auto-generator",
    "systemd-hibernate-resume-generator",
    "systemd-system-update-generator",
    # Every service in the image has a native unit; this one scans /etc/init.d for nothing.
    "systemd-sysv-generator",
)

# docker and containerd start on first use through docker.socket instead of at boot. There
# is no VGA console on a microVM, so no getty on tty1 (the serial console keeps its own).
DISABLED_UNITS: tuple[str, ...] = ("docker.service", "containerd.service", "getty@tty1.service")

# sshd's config is ours and fixed, so skip the extra `sshd -t` exec Debian's unit runs before
# sshd on every boot: ~0.5 s on the way to ssh under TCG.
# No host key means a warm template that has no identity yet: sshd stays down until
# banger-agent starts it with a placeholder key, which each restored VM replaces.
SSH_DROP_IN = """\
# Managed by banger.
[Unit]
ConditionPathExists=/etc/ssh/ssh_host_ed25519_key

[Service]
ExecStartPre=
"""

# Run on every ssh login, `vm run -- cmd` included: pam_motd execs run-parts and uname for a
# banner nobody sees (~0.35 s per login under TCG), pam_mail looks for a mailbox.
SSHD_PAM_DROPPED: tuple[str, ...] = ("pam_motd.so", "pam_mail.so")

DEFAULT_HOSTNAME = "banger"
GIB = 1024**3

_VENDOR_UNIT_DIRS = ("lib/systemd/system", "usr/lib/systemd/system")
_MAX_CONFIG_FILE = 16 * 1024**2  # /etc/shadow, /etc/fstab, a PAM file: kilobytes
_STDERR_TAIL = 15

# How far along a build is when mmdebstrap reports each step (measured on a typical build).
_MMDEBSTRAP_STEPS: tuple[tuple[str, float], ...] = (
    ("running apt-get update", 0.02),
    ("downloading packages", 0.05),
    ("extracting archives", 0.2),
    ("installing essential packages", 0.25),
    ("running --essential-hook", 0.3),
    ("installing remaining packages", 0.32),
    ("cleaning package lists", 0.75),
    ("success in", 0.8),
)


@dataclass(frozen=True)
class BuiltImage:
    rootfs: Path
    kernel: Path
    initrd: Path
    kernel_version: str
    # Installed packages as ``name=version``, sorted.
    packages: tuple[str, ...]
    size_bytes: int
    recipe_version: str = RECIPE_VERSION


ProgressSink = Callable[[ProgressEvent], None]


class ImageBuilder(Protocol):
    async def build(
        self,
        *,
        suite: str,
        dest_dir: Path,
        apt_sources: Sequence[str],
        progress: ProgressSink,
    ) -> BuiltImage: ...


# -- pure parts -----------------------------------------------------------------------------


def mmdebstrap_command(
    *,
    suite: str,
    target: Path,
    apt_sources: Sequence[str],
    packages: Sequence[str] = PACKAGES,
    mmdebstrap: str = "mmdebstrap",
) -> list[str]:
    """The mmdebstrap argv (no shell) that bootstraps ``suite`` into the empty dir ``target``."""
    if not apt_sources:
        raise ImageBuildFailed("no apt sources to build from", hint="set `debian_mirror`")
    argv = [
        mmdebstrap,
        "--variant=apt",
        "--mode=unshare",
        "--format=directory",
        "--include=" + ",".join(packages),
    ]
    argv += [f"--dpkgopt={option}" for option in DPKG_OPTIONS]
    argv += [f"--aptopt={option}" for option in APT_OPTIONS]
    argv.append(f"--essential-hook={INITRAMFS_HOOK}")
    argv += [suite, str(target), *apt_sources]
    return argv


def parse_progress(line: str) -> ProgressEvent | None:
    """Turn one mmdebstrap stderr line into a progress event (``I: ...`` lines only)."""
    if not line.startswith("I: "):
        return None
    message = line[3:].strip()
    if not message:
        return None
    fraction = next(
        (value for prefix, value in _MMDEBSTRAP_STEPS if message.startswith(prefix)), None
    )
    return ProgressEvent(stage=STAGE, message=message, fraction=fraction)


def image_size_bytes(tree_bytes: int) -> int:
    """ext4 size for a tree: 25% for filesystem overhead plus 2 GiB for the user (sparse, so
    free space costs nothing on the host), rounded up to a MiB."""
    size = tree_bytes + tree_bytes // 4 + 2 * GIB
    mib = 1024 * 1024
    return -(-size // mib) * mib


def mkfs_command(
    *, tree: Path, output: Path, size_bytes: int, mkfs: str = "mkfs.ext4"
) -> list[str]:
    return [
        mkfs,
        "-F",
        "-q",
        "-L",
        guest.ROOT_DISK_LABEL,
        "-d",
        str(tree),
        str(output),
        f"{size_bytes // 1024}k",
    ]


def _version_key(version: str) -> list[tuple[int, str]]:
    return [
        (int(part), "") if part.isdigit() else (-1, part) for part in re.split(r"[.-]", version)
    ]


def find_kernel(tree: Path) -> tuple[str, Path, Path]:
    """(version, vmlinuz, initrd) of the newest kernel in the tree's /boot that has an initrd."""
    boot = tree / "boot"
    versions = [
        path.name.removeprefix("vmlinuz-")
        for path in boot.glob("vmlinuz-*")
        if (boot / f"initrd.img-{path.name.removeprefix('vmlinuz-')}").is_file()
    ]
    if not versions:
        raise ImageBuildFailed(
            "the image has no kernel and initrd in /boot",
            hint="the package list must include a linux-image-* package",
        )
    version = max(versions, key=_version_key)
    return version, boot / f"vmlinuz-{version}", boot / f"initrd.img-{version}"


def installed_packages(tree: Path) -> tuple[str, ...]:
    """``name=version`` of every installed package, from the tree's dpkg status file."""
    status = tree / "var/lib/dpkg/status"
    found: list[str] = []
    for stanza in status.read_text(encoding="utf-8", errors="replace").split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            name, sep, value = line.partition(":")
            if sep and not line[0].isspace():
                fields[name] = value.strip()
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            found.append(f"{fields['Package']}={fields.get('Version', '')}")
    return tuple(sorted(found))


def tree_size_bytes(tree: Path) -> int:
    """Space the tree occupies (allocated blocks, hard links counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in [*dirnames, *filenames]:
            try:
                info = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            key = (info.st_dev, info.st_ino)
            if key in seen:
                continue
            seen.add(key)
            total += info.st_blocks * 512
    return total


# -- customisation of the tree (plain file operations on a directory) ---------------------


def _inside(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def _write(root: Path, path: str, text: str, mode: int = 0o644) -> None:
    target = _inside(root, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_regular(target, text.encode(), mode)  # a symlink or FIFO there is replaced


def _read(root: Path, path: str) -> str | None:
    """A config file of the tree; None when missing. Only a regular file is read: a FIFO
    would hang the build, a symlink could point out of the tree (UnsafeLayer)."""
    try:
        return read_regular(_inside(root, path), _MAX_CONFIG_FILE).decode("utf-8", "replace")
    except FileNotFoundError:
        return None


def _symlink(root: Path, path: str, points_to: str) -> None:
    link = _inside(root, path)
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(points_to)


def _vendor_unit(root: Path, name: str) -> str | None:
    """The in-guest path of a unit shipped by a package, as systemctl would link it."""
    for directory in _VENDOR_UNIT_DIRS:
        candidate = root / directory / name
        if candidate.is_file() or candidate.is_symlink():
            return f"/{directory}/{name}"
    return None


def _wants_links(root: Path, unit: str) -> list[Path]:
    # Not Path.glob: it follows the links' absolute targets on the build host, not the tree.
    system = root / "etc/systemd/system"
    if not system.is_dir():
        return []
    links = [d / unit for d in system.iterdir() if d.name.endswith((".wants", ".requires"))]
    return [link for link in links if link.is_symlink()]


def _enable(root: Path, unit: str, target: str, *, required: bool = True) -> None:
    path = _vendor_unit(root, unit)
    if path is None:
        if required:
            raise ImageBuildFailed(f"the image lacks {unit}", hint="check the package list")
        return
    _symlink(root, f"/etc/systemd/system/{target}.wants/{unit}", path)


def _disable(root: Path, unit: str) -> None:
    for link in _wants_links(root, unit):
        link.unlink()


def _mask(root: Path, unit: str) -> None:
    _disable(root, unit)
    _symlink(root, f"/etc/systemd/system/{unit}", "/dev/null")


def _lock_root_password(root: Path) -> None:
    # "*" never matches a password. Unlike a "!" prefix it does not mark the account as
    # locked for sshd, which (with UsePAM off) would refuse key logins to a "!" account.
    shadow = _inside(root, "/etc/shadow")
    text = _read(root, "/etc/shadow")
    if text is None:
        return
    lines = text.splitlines()
    for index, line in enumerate(lines):
        fields = line.split(":")
        if fields[0] == "root" and len(fields) > 1:
            fields[1] = "*"
            lines[index] = ":".join(fields)
    _write(root, "/etc/shadow", "\n".join(lines) + "\n", stat.S_IMODE(os.lstat(shadow).st_mode))


def customize_tree(root: Path, *, strict: bool = True) -> None:
    """Bake the guest boot contract into a bootstrapped tree and trim what slows boot.

    ``strict=False`` is for trees banger did not build (OCI pulls): units the tree lacks are
    skipped instead of failing, and sshd is enabled if present or else installed on first
    boot (see guest.SSH_INSTALL_SCRIPT)."""
    unit_path = f"/etc/systemd/system/{guest.BOOT_UNIT_NAME}"
    _write(root, guest.BOOT_SCRIPT_PATH, guest.BOOT_SCRIPT, 0o755)
    _write(root, unit_path, guest.BOOT_UNIT)
    _symlink(root, f"/etc/systemd/system/sysinit.target.wants/{guest.BOOT_UNIT_NAME}", unit_path)

    agent_unit_path = f"/etc/systemd/system/{agent.AGENT_UNIT_NAME}"
    _write(root, agent.AGENT_SCRIPT_PATH, agent.AGENT_SCRIPT, 0o755)
    _write(root, agent.AGENT_FAILED_SCRIPT_PATH, agent.AGENT_FAILED_SCRIPT, 0o755)
    _write(root, agent_unit_path, agent.AGENT_UNIT)
    _symlink(
        root, f"/etc/systemd/system/multi-user.target.wants/{agent.AGENT_UNIT_NAME}",
        agent_unit_path,
    )

    _write(root, "/etc/ssh/sshd_config.d/banger.conf", guest.SSHD_CONFIG)
    _write(root, "/etc/systemd/system/ssh.service.d/banger.conf", SSH_DROP_IN)
    # Each VM gets its own host keys from the daemon; none may be shared through the image.
    for key in _inside(root, "/etc/ssh").glob("ssh_host_*"):
        key.unlink()

    existing = _read(root, "/etc/fstab") or ""
    if guest.FSTAB not in existing:
        if existing and not existing.endswith("\n"):
            existing += "\n"
        _write(root, "/etc/fstab", existing + guest.FSTAB)

    # Empty, not missing: systemd then makes a fresh id per VM without "first boot" presets.
    _write(root, "/etc/machine-id", "", 0o444)
    _inside(root, "/var/lib/dbus/machine-id").unlink(missing_ok=True)
    # mmdebstrap copies the build host's name and resolver; the boot unit writes the VM's.
    _write(root, "/etc/hostname", DEFAULT_HOSTNAME + "\n")
    resolv = _inside(root, "/etc/resolv.conf")
    if resolv.is_symlink():
        resolv.unlink()
    _write(root, "/etc/resolv.conf", "# Written at boot by banger-boot from banger.dns=.\n")

    # The boot unit puts the address on with iproute2 when the tree has it (see guest.py).
    if not has_iproute2(root):
        _enable(root, "systemd-networkd.service", "multi-user.target", required=strict)
        _enable(root, "systemd-networkd.socket", "sockets.target", required=strict)
        networkd = _vendor_unit(root, "systemd-networkd.service")
        if networkd is not None:
            _symlink(root, "/etc/systemd/system/dbus-org.freedesktop.network1.service", networkd)

    for unit in DISABLED_UNITS:
        _disable(root, unit)
    _enable(root, "docker.socket", "sockets.target", required=False)
    for unit in MASKED_UNITS:
        _mask(root, unit)
    for generator in MASKED_GENERATORS:
        _symlink(root, f"/etc/systemd/system-generators/{generator}", "/dev/null")

    # C.UTF-8 is built into glibc; without a locale pam_env warns on every login and tools
    # fall back to ASCII.
    _write(root, "/etc/default/locale", "LANG=C.UTF-8\n")

    _lock_root_password(root)
    _drop_pam_modules(root, "/etc/pam.d/sshd", SSHD_PAM_DROPPED)
    if not strict:
        _ensure_sshd(root)


def _drop_pam_modules(root: Path, path: str, modules: Sequence[str]) -> None:
    """Comment out the lines of a PAM service file that load any of `modules`."""
    service = _inside(root, path)
    if not stat.S_ISREG(_lstat_mode(service)):
        return
    lines = (_read(root, path) or "").splitlines()
    kept = [
        f"# banger: {line}"
        if not line.lstrip().startswith("#") and any(m in line.split() for m in modules)
        else line
        for line in lines
    ]
    if kept != lines:
        _write(root, path, "\n".join(kept) + "\n", stat.S_IMODE(os.lstat(service).st_mode))


def _lstat_mode(path: Path) -> int:
    try:
        return os.lstat(path).st_mode
    except FileNotFoundError:
        return 0


def has_iproute2(root: Path) -> bool:
    return any(_inside(root, p).exists() for p in ("/usr/sbin/ip", "/sbin/ip", "/bin/ip"))


def has_sshd(root: Path) -> bool:
    return any(_inside(root, p).exists() for p in ("/usr/sbin/sshd", "/sbin/sshd"))


def _ensure_sshd(root: Path) -> None:
    if has_sshd(root):
        for unit in ("ssh.service", "sshd.service"):
            if _vendor_unit(root, unit) is not None:
                _enable(root, unit, "multi-user.target")
                break
        return
    unit_path = f"/etc/systemd/system/{guest.SSH_INSTALL_UNIT_NAME}"
    _write(root, guest.SSH_INSTALL_SCRIPT_PATH, guest.SSH_INSTALL_SCRIPT, 0o755)
    _write(root, unit_path, guest.SSH_INSTALL_UNIT)
    _symlink(
        root, f"/etc/systemd/system/multi-user.target.wants/{guest.SSH_INSTALL_UNIT_NAME}",
        unit_path,
    )


# -- the real builder ---------------------------------------------------------------------


@dataclass
class _RunResult:
    returncode: int
    tail: list[str] = field(default_factory=list)


class DebianImageBuilder:
    """Builds a Debian image with mmdebstrap and mkfs.ext4 (see the module docstring)."""

    def __init__(
        self,
        *,
        mmdebstrap: str = "mmdebstrap",
        mkfs: str = "mkfs.ext4",
        packages: Sequence[str] = PACKAGES,
    ) -> None:
        self._mmdebstrap = mmdebstrap
        self._mkfs = mkfs
        self._packages = tuple(packages)
        self._as_root = os.geteuid() == 0

    async def build(
        self,
        *,
        suite: str,
        dest_dir: Path,
        apt_sources: Sequence[str],
        progress: ProgressSink,
    ) -> BuiltImage:
        mmdebstrap = self._tool(self._mmdebstrap, "mmdebstrap")
        mkfs = self._tool(self._mkfs, "e2fsprogs")
        dest_dir = dest_dir.absolute()
        if dest_dir.exists() and (not dest_dir.is_dir() or any(dest_dir.iterdir())):
            raise ImageBuildFailed(
                f"{dest_dir} already exists and is not empty",
                hint="delete the old image first",
            )
        dest_dir.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{dest_dir.name}.build-", dir=dest_dir.parent))
        tree = work / "tree"
        out = work / "out"
        tree.mkdir()
        out.mkdir()
        if not self._as_root:
            # Steps inside the user namespace run as a subordinate uid and write here.
            out.chmod(0o777)
        try:
            progress(ProgressEvent(STAGE, f"bootstrapping Debian {suite} with mmdebstrap", 0.0))
            argv = mmdebstrap_command(
                suite=suite,
                target=tree,
                apt_sources=apt_sources,
                packages=self._packages,
                mmdebstrap=mmdebstrap,
            )
            await self._check(argv, "mmdebstrap", progress, forward=True)

            progress(ProgressEvent(STAGE, "installing the banger boot contract", 0.82))
            if self._as_root:
                customize_tree(tree)
            else:
                await self._check(
                    self._in_namespace(
                        [sys.executable, "-m", "banger.host.imagebuild", "customize", str(tree)]
                    ),
                    "customising the image",
                    progress,
                )

            version, vmlinuz, initrd = find_kernel(tree)
            packages = installed_packages(tree)
            size = image_size_bytes(tree_size_bytes(tree))
            progress(
                ProgressEvent(STAGE, f"writing rootfs.ext4 ({size // (1024 * 1024)} MiB)", 0.85)
            )
            made = out / "rootfs.ext4"
            await self._check(
                self._in_namespace(
                    mkfs_command(tree=tree, output=made, size_bytes=size, mkfs=mkfs)
                ),
                "mkfs.ext4",
                progress,
            )
            final = work / "image"
            final.mkdir()
            rootfs = final / "rootfs.ext4"
            if self._as_root:
                made.rename(rootfs)
            else:
                # Made by a subordinate uid: copy it so the image belongs to this user.
                await self._check(
                    ["cp", "--sparse=always", str(made), str(rootfs)], "copying rootfs", progress
                )
            shutil.copyfile(vmlinuz, final / "vmlinuz")
            await self._write_initrd(tree, version, initrd, final / "initrd.img", progress)
            await self._remove_tree(tree)
            if dest_dir.exists():
                dest_dir.rmdir()
            final.rename(dest_dir)
        except BaseException:
            await asyncio.shield(self._cleanup(work))
            raise
        await self._cleanup(work)
        progress(ProgressEvent(STAGE, f"image ready: Debian {suite}, kernel {version}", 1.0))
        return BuiltImage(
            rootfs=dest_dir / "rootfs.ext4",
            kernel=dest_dir / "vmlinuz",
            initrd=dest_dir / "initrd.img",
            kernel_version=version,
            packages=packages,
            size_bytes=size,
        )

    @staticmethod
    async def _write_initrd(
        tree: Path, version: str, stock: Path, target: Path, progress: ProgressSink
    ) -> None:
        """banger's initrd from the tree, else (with a warning) the tree's own."""
        progress(ProgressEvent(STAGE, "building the initrd", 0.95))
        try:
            data = await asyncio.to_thread(tree_initrd, tree, version)
        except (ImageBuildFailed, OSError) as exc:
            reason = exc.message if isinstance(exc, ImageBuildFailed) else str(exc)
            progress(ProgressEvent(
                "warning", f"warning: {reason}; the image keeps its initramfs-tools initrd, "
                "which boots a few seconds slower"
            ))
            shutil.copyfile(stock, target)
            return
        target.write_bytes(data)

    @staticmethod
    def _tool(name: str, package: str) -> str:
        found = shutil.which(name)
        if found is None:
            raise MissingTool(
                f"{name} not found on PATH",
                hint=f"install it (apt-get install {package}), or run `banger doctor`",
            )
        return found

    def _in_namespace(self, argv: list[str]) -> list[str]:
        if self._as_root:
            return argv
        return [self._mmdebstrap, "--unshare-helper", *argv]

    async def _remove_tree(self, tree: Path) -> None:
        if not tree.exists():
            return
        if self._as_root:
            _refuse_mounts_under(tree)
            await asyncio.to_thread(shutil.rmtree, tree)
        else:
            await _run(self._in_namespace(["rm", "-rf", "--one-file-system", str(tree)]), None)

    async def _cleanup(self, work: Path) -> None:
        with contextlib.suppress(Exception):
            await self._remove_tree(work / "tree")
        with contextlib.suppress(Exception):
            _refuse_mounts_under(work)
            await asyncio.to_thread(shutil.rmtree, work, True)

    async def _check(
        self, argv: list[str], what: str, progress: ProgressSink, *, forward: bool = False
    ) -> None:
        result = await _run(argv, progress if forward else None)
        if result.returncode != 0:
            tail = "\n".join(result.tail) or "(no output)"
            raise ImageBuildFailed(
                f"{what} failed (exit status {result.returncode}):\n{tail}",
                hint="check that the Debian mirror is reachable (or set `debian_mirror` in "
                "config) and that there is free disk space, then run `banger image pull` again",
            )


def _refuse_mounts_under(path: Path) -> None:
    """Never recurse into a mount (a leftover bind of the host's /dev would be wiped)."""
    prefix = str(path.resolve()).rstrip("/") + "/"
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text(encoding="utf-8")
    except OSError:
        return
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and (fields[4] + "/").startswith(prefix):
            raise ImageBuildFailed(
                f"{fields[4]} is still mounted; not deleting {path}",
                hint=f"unmount it (umount -R {fields[4]}) and delete {path} by hand",
            )


async def _run(argv: list[str], progress: ProgressSink | None) -> _RunResult:
    """Run argv without a shell, keep the last stderr lines, forward progress lines.
    Cancelling the caller kills the whole process group."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    tail: deque[str] = deque(maxlen=_STDERR_TAIL)
    assert proc.stderr is not None
    try:
        async for raw in proc.stderr:
            line = raw.decode("utf-8", errors="replace").rstrip()
            if not line:
                continue
            tail.append(line)
            if progress is not None:
                event = parse_progress(line)
                if event is not None:
                    progress(event)
        returncode = await proc.wait()
    except BaseException:
        await asyncio.shield(_kill_group(proc))
        raise
    return _RunResult(returncode, list(tail))


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            await asyncio.wait_for(proc.wait(), grace)
            return
        except TimeoutError:
            continue


# -- a fake for unit tests of the services --------------------------------------------------


class FakeImageBuilder:
    """Writes small placeholder files instead of building; records each call."""

    def __init__(self, *, fail_with: Exception | None = None) -> None:
        self.fail_with = fail_with
        self.calls: list[dict[str, object]] = []

    async def build(
        self,
        *,
        suite: str,
        dest_dir: Path,
        apt_sources: Sequence[str],
        progress: ProgressSink,
    ) -> BuiltImage:
        self.calls.append({"suite": suite, "dest_dir": dest_dir, "apt_sources": list(apt_sources)})
        progress(ProgressEvent(STAGE, f"bootstrapping Debian {suite} (fake)", 0.0))
        if self.fail_with is not None:
            raise self.fail_with
        dest_dir.mkdir(parents=True, exist_ok=True)
        rootfs = dest_dir / "rootfs.ext4"
        with rootfs.open("wb") as handle:
            handle.truncate(64 * 1024 * 1024)
        (dest_dir / "vmlinuz").write_bytes(b"fake kernel")
        (dest_dir / "initrd.img").write_bytes(b"fake initrd")
        progress(ProgressEvent(STAGE, "image ready (fake)", 1.0))
        return BuiltImage(
            rootfs=rootfs,
            kernel=dest_dir / "vmlinuz",
            initrd=dest_dir / "initrd.img",
            kernel_version="0.0.0-fake",
            packages=tuple(f"{name}=0" for name in sorted(PACKAGES)),
            size_bytes=64 * 1024 * 1024,
        )


def _main(args: Iterable[str]) -> int:
    """``python -m banger.host.imagebuild customize TREE``: the customisation step, run by the
    builder inside mmdebstrap's user namespace when not root."""
    argv = list(args)
    if len(argv) != 2 or argv[0] != "customize":
        print("usage: python -m banger.host.imagebuild customize TREE", file=sys.stderr)
        return 2
    customize_tree(Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
