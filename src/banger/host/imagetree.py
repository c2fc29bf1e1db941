"""Customise and read a bootstrapped image tree, with plain file operations on a directory:
bake in the guest boot contract and trim what slows boot (the units and files are in
core/imagerecipe.py), and find its kernel, packages and size.

The Debian builder (imagebuild.py) and OCI pulls (ocipull.py) both use it. When the builder
is not root, it runs the customisation as ``python -m banger.host.imagetree customize TREE``
inside mmdebstrap's user namespace.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from banger.core import agent, guest, perlkit
from banger.core.errors import ImageBuildFailed
from banger.core.imagerecipe import (
    DEFAULT_HOSTNAME,
    DISABLED_UNITS,
    MASKED_GENERATORS,
    MASKED_UNITS,
    SSH_DROP_IN,
    SSHD_PAM_DROPPED,
)
from banger.host.safeio import read_regular, write_regular

_VENDOR_UNIT_DIRS = ("lib/systemd/system", "usr/lib/systemd/system")
_MAX_CONFIG_FILE = 16 * 1024**2  # /etc/shadow, /etc/fstab, a PAM file: kilobytes

# -- reading the tree ---------------------------------------------------------------------


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


def has_perl(root: Path) -> bool:
    """Whether the tree has its own perl for banger-agent (a link is not followed: it may
    point out of the tree)."""
    return os.path.lexists(_inside(root, perlkit.IMAGE_PERL_PATH))


def _install_perl_kit(root: Path, kit: perlkit.PerlKit) -> None:
    # Read-only: nothing in the guest has a reason to change banger's perl.
    for path, content in kit.files.items():
        target = _inside(root, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_regular(target, content, 0o444 if path.endswith(".pm") else 0o555)


def customize_tree(
    root: Path, *, strict: bool = True, perl_kit: perlkit.PerlKit | None = None,
) -> None:
    """Bake the guest boot contract into a bootstrapped tree and trim what slows boot.

    ``strict=False`` is for trees banger did not build (OCI pulls): units the tree lacks are
    skipped instead of failing, and sshd is enabled if present or else installed on first
    boot (see guest.SSH_INSTALL_SCRIPT). `perl_kit` is installed, and runs banger-agent,
    when the tree has no perl of its own."""
    unit_path = f"/etc/systemd/system/{guest.BOOT_UNIT_NAME}"
    _write(root, guest.BOOT_SCRIPT_PATH, guest.BOOT_SCRIPT, 0o755)
    _write(root, unit_path, guest.BOOT_UNIT)
    _symlink(root, f"/etc/systemd/system/sysinit.target.wants/{guest.BOOT_UNIT_NAME}", unit_path)

    agent_unit_path = f"/etc/systemd/system/{agent.AGENT_UNIT_NAME}"
    _write(root, agent.AGENT_SCRIPT_PATH, agent.AGENT_SCRIPT, 0o755)
    _write(root, agent.AGENT_FAILED_SCRIPT_PATH, agent.AGENT_FAILED_SCRIPT, 0o755)
    if perl_kit is not None and not has_perl(root):
        _install_perl_kit(root, perl_kit)
        _write(root, agent_unit_path, agent.agent_unit(perl_kit.exec_start))
    else:
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


def _main(args: Iterable[str]) -> int:
    """``python -m banger.host.imagetree customize TREE``: the customisation step, run by the
    builder inside mmdebstrap's user namespace when not root."""
    argv = list(args)
    if len(argv) != 2 or argv[0] != "customize":
        print("usage: python -m banger.host.imagetree customize TREE", file=sys.stderr)
        return 2
    customize_tree(Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
