"""The recipe of banger's images, as data: the Debian package set and the mmdebstrap and
mkfs.ext4 command lines that build one (host/imagebuild.py runs them), and the units,
generators and files the customisation changes in every image tree, Debian or OCI
(host/imagetree.py applies them).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

from banger.core import guest
from banger.core.errors import ImageBuildFailed
from banger.core.models import ProgressEvent

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
