"""The unprivileged uid each VM's VMM runs as when bangerd runs as root (config `vmm_uids`).

Every VM gets a uid of its own (its gid is the same number) from a reserved range with no
passwd or group entries: a VMM that escapes its guest cannot signal, trace or read the
files of another VM's VMM, which runs as someone else. The VMM opens its disks, TAP,
console and sockets before it drops to that uid (QEMU with `-runas`, Firecracker through
its jailer), so nothing needs a name for it.

A uid is claimed for one VM dir: a file named after the uid in a host-wide registry holds
the VM dir's path. Host-wide (under /run) because several daemons may run as root at once,
each with its own state dir; every claim is made under one lock. A claim whose VM dir is
gone (the VM was deleted while its daemon was down, or a test removed its state dir) is
stale and may be taken again; a reboot clears the registry along with every VMM.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import grp
import os
import pwd
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from banger.core.confine import RunAs
from banger.core.errors import HostError

REGISTRY = Path("/run/banger/vmm-uids")


class VMMUids(Protocol):
    async def run_as(self, vm_dir: Path) -> RunAs | None:
        """The uid and gid the VMM of the VM in `vm_dir` runs as, the same on every start
        until `release`; None: as the daemon itself (it is not root, or this is off)."""
        ...

    def release(self, vm_dir: Path) -> None:
        """Give the VM's uid back (it was deleted). Nothing if it had none."""
        ...

    def confines(self) -> bool:
        """Whether VMMs get a uid of their own (`run_as` answers one)."""
        ...


def _known_to_host(uid: int) -> bool:
    for lookup in (pwd.getpwuid, grp.getgrgid):
        try:
            lookup(uid)
        except KeyError:
            continue
        return True
    return False


def host_ids_in(uids: range) -> list[int]:
    """The host's users and groups whose ids fall in `uids`."""
    ids = {entry.pw_uid for entry in pwd.getpwall()} | {entry.gr_gid for entry in grp.getgrall()}
    return sorted(i for i in ids if i in uids)


class ClaimedVMMUids:
    def __init__(
        self, uids: range, registry: Path = REGISTRY, *,
        known_to_host: Callable[[int], bool] = _known_to_host,
        is_root: Callable[[], bool] = lambda: os.geteuid() == 0,
    ) -> None:
        self._uids = uids
        self._registry = registry
        self._known_to_host = known_to_host
        self._is_root = is_root

    def confines(self) -> bool:
        return bool(self._uids) and self._is_root()

    async def run_as(self, vm_dir: Path) -> RunAs | None:
        if not self.confines():
            return None
        uid = await asyncio.to_thread(self._claim, vm_dir.absolute())
        return RunAs(uid, uid)

    def release(self, vm_dir: Path) -> None:
        # A daemon that is not root never claimed one (and cannot open root's registry).
        if not self.confines() or not self._registry.is_dir():
            return
        with self._locked():
            uid = self._claims().get(str(vm_dir.absolute()))
            if uid is not None:
                (self._registry / str(uid)).unlink(missing_ok=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._registry.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self._registry / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _claims(self) -> dict[str, int]:
        """VM dir -> its uid, for every claim in the registry."""
        claims = {}
        for entry in self._registry.iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    claims[entry.read_text()] = int(entry.name)
        return claims

    def _claim(self, vm_dir: Path) -> int:
        with self._locked():
            claims = self._claims()
            mine = claims.get(str(vm_dir))
            if mine is not None:
                return mine
            taken = {uid for owner, uid in claims.items() if Path(owner).exists()}
            for uid in self._uids:
                if uid in taken or self._known_to_host(uid):
                    continue
                claim = self._registry / str(uid)
                tmp = claim.with_name(f".{uid}.new")
                tmp.write_text(str(vm_dir))
                tmp.replace(claim)  # over a stale claim, if there was one
                return uid
        raise HostError(
            f"every VMM uid in {self._uids.start}-{self._uids.stop - 1} is taken",
            hint="delete VMs you no longer need, or widen vmm_uids in config",
        )


class FixedVMMUids:
    """A given answer for every VM (unit tests; `None` for a daemon that does not drop
    privileges)."""

    def __init__(self, run_as: RunAs | None) -> None:
        self._run_as = run_as
        self.released: list[Path] = []

    def confines(self) -> bool:
        return self._run_as is not None

    async def run_as(self, vm_dir: Path) -> RunAs | None:
        return self._run_as

    def release(self, vm_dir: Path) -> None:
        self.released.append(vm_dir)
