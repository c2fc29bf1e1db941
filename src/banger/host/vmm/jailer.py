"""Staging a VM's jail for Firecracker's jailer (the protocol: banger.core.jailer).

What the jailed Firecracker opens by path is linked into the chroot under a plain name: the
VM's own files (its writable drives, log, metrics and console) as hard links, given to the
VM's uid, so the daemon keeps reading and cutting them in the VM dir; files shared with
other VMs (kernel, initrd, a base image) as hard links only where every user may read them
already, else as copies of their own. Hard links need the chroot base on the VM dir's
filesystem (it defaults to the state dir). The TAP is handed to the uid too (Firecracker
opens it after it dropped root). The VM dir records the jail (`jail`), so the daemon finds
its sockets and process after a restart, and the jail goes away with the VM.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import struct
from collections.abc import Mapping
from pathlib import Path

from banger.core.confine import RunAs
from banger.core.errors import HostError
from banger.core.jailer import Jail
from banger.host import hostinfo

RECORD = "jail"
_TUNSETIFF = 0x400454CA
_TUNSETOWNER = 0x400454CC
_TUNSETGROUP = 0x400454CE
_IFF_TAP = 0x0002
_IFF_NO_PI = 0x1000


def find_jailer(configured: str | None, firecracker: str | None) -> str | None:
    """`jailer_bin`, else a `jailer` next to the Firecracker binary, else one on PATH."""
    if configured:
        return hostinfo.which(configured)
    if firecracker is not None:
        beside = Path(firecracker).with_name("jailer")
        if beside.is_file() and os.access(beside, os.X_OK):
            return str(beside)
    return hostinfo.which("jailer")


def read_jail(vm_dir: Path) -> Jail | None:
    """The jail the VM's Firecracker runs in, None if it runs unjailed."""
    try:
        jail_id, base = (vm_dir / RECORD).read_text().splitlines()[:2]
    except (OSError, ValueError):
        return None
    return Jail(jail_id, Path(base))


def remove_jail(vm_dir: Path) -> None:
    """Remove the VM's jail and its record; nothing if there is none."""
    jail = read_jail(vm_dir)
    if jail is not None:
        shutil.rmtree(jail.instance_dir, ignore_errors=True)
    (vm_dir / RECORD).unlink(missing_ok=True)


def stage_jail(
    jail: Jail, run_as: RunAs, vm_dir: Path, *, own: list[Path], shared: Mapping[str, Path],
    tap: str, hand_tap: bool = True,
) -> None:
    """Make the jail of the VM in `vm_dir` afresh: `own` (files of the VM dir) linked by
    name and given to `run_as`; `shared` (name in the jail -> file) readable by it."""
    remove_jail(vm_dir)
    jail.root.mkdir(parents=True, mode=0o755)
    (vm_dir / RECORD).write_text(f"{jail.id}\n{jail.chroot_base}\n")
    for path in own:
        _link(path, jail.root / path.name)
        os.chown(path, run_as.uid, run_as.gid)
    for name, path in shared.items():
        if path.stat().st_mode & 0o004:
            with contextlib.suppress(OSError):
                _link(path, jail.root / name)
                continue
        shutil.copyfile(path, jail.root / name)
        os.chown(jail.root / name, run_as.uid, run_as.gid)
        os.chmod(jail.root / name, 0o400)
    if hand_tap:
        give_tap(tap, run_as)


def _link(path: Path, target: Path) -> None:
    try:
        os.link(path, target)
    except OSError as exc:
        hint = ("put firecracker_chroot_base on the filesystem of banger's state dir"
                if exc.errno == errno.EXDEV else "")
        raise HostError(f"cannot link {path} into the jail at {target}: {exc.strerror}",
                        hint=hint) from exc


def give_tap(tap: str, run_as: RunAs) -> None:
    """Make the uid and gid the owners of the persistent TAP `tap`: an unprivileged
    process may then attach to it (what the jailed Firecracker does)."""
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR)
    except OSError as exc:
        raise HostError(f"cannot open /dev/net/tun: {exc.strerror}") from exc
    try:
        request = struct.pack("16sH22x", tap.encode(), _IFF_TAP | _IFF_NO_PI)
        fcntl.ioctl(fd, _TUNSETIFF, request)
        fcntl.ioctl(fd, _TUNSETOWNER, run_as.uid)
        fcntl.ioctl(fd, _TUNSETGROUP, run_as.gid)
    except OSError as exc:
        raise HostError(f"cannot hand TAP {tap} to uid {run_as.uid}: {exc.strerror}") from exc
    finally:
        os.close(fd)
