"""VMRecords: what every part of the VM lifecycle shares: the store's VM rows, the backends
that run them, one lock per VM, the listeners told of every change, and banger's
known_hosts derived from the rows."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from banger.core.errors import InvalidInput, InvalidState, Unsupported, VMNotFound
from banger.core.models import VM, VMState
from banger.core.slirp import known_host_names
from banger.core.vmdir import VMDir
from banger.core.vmstates import Operation, allows
from banger.daemon.network import GuestNetwork
from banger.daemon.store import Store
from banger.host.vmm.base import Hypervisor

log = logging.getLogger("banger.vms")

# Called with the VM after it was created, changed state or settings, or deleted; listeners
# (DNS, NAT, stats) rebuild what they derive from the store. Their errors are logged only.
VMListener = Callable[[VM], Awaitable[None]]


@dataclass(frozen=True)
class BackendProfile:
    """One backend as this host runs it: its name, accelerator, TSC rate and the check before
    each launch (VMRecords keeps one per backend)."""

    backend: str
    accel: str
    tsc_khz: int | None
    preflight: Callable[[], None]


class VMRecords:
    def __init__(
        self,
        *,
        store: Store,
        network: GuestNetwork,
        profile: BackendProfile,
        hypervisor: Hypervisor,
        known_hosts: Path,
        backends: Mapping[str, tuple[BackendProfile, Hypervisor]] | None = None,
    ) -> None:
        self._store = store
        self._net = network
        self._profile = profile
        self._hv = hypervisor
        # Every backend this daemon can run, by name; `profile`/`hypervisor` is the default.
        self._backends = {profile.backend: (profile, hypervisor), **(backends or {})}
        self._known_hosts = known_hosts
        self._locks: dict[str, asyncio.Lock] = {}
        self.listeners: list[VMListener] = []

    def all(self) -> list[VM]:
        return self._store.list_vms()

    def get(self, name: str) -> VM:
        vm = self._store.get_vm(name)
        if vm is None:
            raise VMNotFound(f"no VM named {name!r}")
        return vm

    def find(self, vm_id: str) -> VM | None:
        return self._store.get_vm(vm_id)

    def put(self, vm: VM) -> None:
        self._store.put_vm(vm)

    def remove(self, vm: VM) -> None:
        self._store.delete_vm(vm.id)
        self._locks.pop(vm.id, None)

    @property
    def backend_names(self) -> list[str]:
        return sorted(self._backends)

    @property
    def hypervisors(self) -> list[Hypervisor]:
        return [hypervisor for _, hypervisor in self._backends.values()]

    def profile_named(self, backend: str | None) -> BackendProfile:
        if backend is None:
            return self._profile
        if backend not in self._backends:
            raise InvalidInput(
                f"backend {backend!r} is not available here",
                hint=f"use one of: {', '.join(sorted(self._backends))} (see `banger doctor`)",
            )
        return self._backends[backend][0]

    def backend(self, vm: VM) -> tuple[BackendProfile, Hypervisor]:
        """The VM's own backend (records made before it existed run on the default)."""
        return self._backends.get(vm.backend, (self._profile, self._hv))

    def allows(self, vm: VM, operation: Operation) -> bool:
        """The state machine's word (core/vmstates.py) on `operation`, for the VM as its
        VMM process says it is."""
        return allows(operation, vm.state, self.alive(vm))

    def require(self, vm: VM, operation: Operation) -> None:
        """Refuse `operation` on a VM that is not live (the only way these are refused)."""
        if not self.allows(vm, operation):
            raise InvalidState(f"VM {vm.name!r} is not running ({vm.state})",
                               hint=f"banger vm start {vm.name}")

    def lock(self, vm: VM) -> asyncio.Lock:
        return self._locks.setdefault(vm.id, asyncio.Lock())

    def busy(self, vm: VM) -> bool:
        """An operation on the VM holds its lock right now."""
        lock = self._locks.get(vm.id)
        return lock is not None and lock.locked()

    def alive(self, vm: VM) -> bool:
        return vm.pid is not None and self.backend(vm)[1].is_running(vm.pid, Path(vm.dir))

    def save(self, vm: VM) -> VM:
        self._store.put_vm(vm)
        return vm

    async def halt(self, vm: VM) -> None:
        if vm.pid is not None and self.alive(vm):
            self.backend(vm)[1].kill(vm.pid, signal.SIGKILL)
            # A killed VMM is gone in a few ms: poll finely at first (vm run --rm), 5 s in all.
            pause, waited = 0.002, 0.0
            while self.alive(vm) and waited < 5:
                await asyncio.sleep(pause)
                waited += pause
                pause = min(2 * pause, 0.02)
        await self.mark_stopped(vm)

    async def mark_stopped(self, vm: VM) -> VM:
        current = self._store.get_vm(vm.id) or vm
        stopped = self.save(replace(current, state=VMState.STOPPED, pid=None))
        # The TAP goes while the listeners (the network rules) follow the stop: both wait
        # for the kernel's network-wide sync (~20 ms each), which then overlap. Its VMM is
        # gone, so nothing sends through the TAP meanwhile.
        detached, _ = await asyncio.gather(
            self._net.detach(vm.tap), self.notify(stopped), return_exceptions=True
        )
        if isinstance(detached, BaseException):
            raise detached
        return stopped

    async def notify(self, vm: VM) -> None:
        for listener in self.listeners:
            try:
                await listener(vm)
            except Exception:
                log.exception("VM listener failed for %s", vm.name)

    def host_key(self, vm: VM) -> str:
        return VMDir(Path(vm.dir)).host_key_pub.read_text().strip()

    def write_known_hosts(self) -> None:
        """banger's own known_hosts, regenerated from the store: each VM's pinned key under
        its IP and `<name>.vm`. Addresses are reused, so stale lines must go."""
        lines = []
        for vm in self._store.list_vms():
            try:
                names = (known_host_names(vm.name, vm.ssh_port) if vm.ssh_port
                         else f"{vm.ip},{vm.name}.vm")
                lines.append(f"{names} {self.host_key(vm)}\n")
            except OSError:
                continue
        self._known_hosts.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._known_hosts.with_suffix(".tmp")
        tmp.write_text("".join(lines))
        tmp.chmod(0o600)
        tmp.replace(self._known_hosts)


def unsupported(vm: VM, what: str) -> Unsupported:
    return Unsupported(
        f"the {vm.backend} backend of VM {vm.name!r} does not support {what}",
        hint="create the VM with --backend firecracker for pause/resume and snapshots",
    )
