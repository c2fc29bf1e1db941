"""VMService: the VM lifecycle (create, start, stop, kill, delete) and the state the CLI
needs to reach a guest. Bringing a VM up is VMBoot's (banger.daemon.vmboot); keeping the
records true to the host after a crash is the Supervisor's (banger.daemon.supervisor)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path

from banger.core.config import Config
from banger.core.egress import normalize_egress_allow, validate_group
from banger.core.errors import (
    BangerError,
    GuestSetupFailed,
    InvalidInput,
    InvalidState,
    NameTaken,
    SSHTimeout,
)
from banger.core.firecracker import MetricsSample
from banger.core.models import VM, ProgressEvent, VMSpec, VMState
from banger.core.names import generate_name, validate_name
from banger.core.sizing import effective_spec, require_room, spec_line
from banger.core.slirp import ssh_endpoint
from banger.core.units import parse_size
from banger.core.vmdir import VMDir
from banger.daemon.images import ImageService
from banger.daemon.network import GuestNetwork
from banger.daemon.progress import Progress, no_progress
from banger.daemon.vmboot import KernelChooser, VMBoot
from banger.daemon.vmrecords import VMRecords, unsupported
from banger.host.consolelog import read_from as read_console
from banger.host.disks import DiskAdapter
from banger.host.vmm.base import Pauses, Releases, ReportsMetrics, Snapshots

log = logging.getLogger("banger.vms")


@dataclass(frozen=True)
class GuestAccess:
    """What a client needs to ssh into a VM with banger's key and pinned host key."""

    name: str
    ip: str
    user: str
    identity_file: str
    known_hosts: str
    host_key: str  # the guest's pinned public host key, for a client on another machine
    # Where sshd answers: the guest's own address and 22, or (user-mode networking) a
    # loopback port forwarded to it.
    ssh_host: str = ""
    ssh_port: int = 22



class VMService:
    def __init__(
        self,
        *,
        records: VMRecords,
        boot: VMBoot,
        config: Config,
        vms_dir: Path,
        images: ImageService,
        network: GuestNetwork,
        disks: DiskAdapter,
        client_key: Path,
        known_hosts: Path,
        kernels: KernelChooser | None = None,
    ) -> None:
        self._records = records
        self._boot = boot
        self._kernels = kernels
        self._config = config
        self._dir = vms_dir
        self._images = images
        self._net = network
        self._disks = disks
        self._client_key = client_key
        self._known_hosts = known_hosts
        self.size_defaults = boot.size_defaults
        self._create_lock = asyncio.Lock()
        self.listeners = records.listeners

    # Queries

    def all(self) -> list[VM]:
        return self._records.all()

    def get(self, name: str) -> VM:
        return self._records.get(name)


    def is_running(self, vm: VM) -> bool:
        """Its VMM process is alive (whatever the recorded state says)."""
        return self._records.alive(vm)

    def images_in_use(self, image: str) -> list[str]:
        return [vm.name for vm in self._records.all() if vm.image == image]

    def access(self, name: str) -> GuestAccess:
        vm = self.get(name)
        if vm.state == VMState.PAUSED:
            raise InvalidState(f"VM {vm.name!r} is paused", hint=f"banger vm resume {vm.name}")
        if not self._records.allows(vm, "login"):
            raise InvalidState(
                f"VM {vm.name!r} is not running ({vm.state})", hint=f"banger vm start {vm.name}"
            )
        ssh_host, ssh_port = ssh_endpoint(vm.ip, vm.ssh_port)
        return GuestAccess(
            vm.name, vm.ip, "root", str(self._client_key), str(self._known_hosts),
            self._records.host_key(vm), ssh_host, ssh_port,
        )

    def console_log(self, name: str, offset: int) -> tuple[bytes, int]:
        vm = self.get(name)
        return read_console(VMDir(Path(vm.dir)).console_log, offset, 1 << 20)

    # Lifecycle

    async def create(
        self,
        *,
        name: str | None,
        image: str | None,
        vcpu: int | None,
        memory_mib: int | None,
        disk_size: str | None,
        start: bool,
        progress: Progress = no_progress,
        login_check: bool = True,
        nat: bool = False,
        backend: str | None = None,
        kernel: str | None = None,
        cold: bool = False,
        egress_allow: list[str] | None = None,
        network_group: str = "",
        agent_ready: bool = False,
    ) -> VM:
        """`cold`: boot even if the image has a warm template. `egress_allow`: None takes
        the config's `[vm_defaults] egress_allow`. `agent_ready`: see VMBoot.start."""
        egress = normalize_egress_allow(
            self._config.vm_defaults.egress_allow if egress_allow is None else egress_allow
        )
        validate_group(network_group)
        self._net.require_policy(nat=nat, egress_allow=egress, network_group=network_group)
        if kernel and self._kernels is not None:
            self._kernels.check(kernel)
        if name is not None:
            validate_name(name)
            if any(vm.name == name for vm in self._records.all()):
                raise NameTaken(f"a VM named {name!r} already exists")
        _check_size_flags(vcpu, memory_mib)
        spec = effective_spec(
            self.size_defaults, vcpu=vcpu, memory_mib=memory_mib, disk_size=disk_size
        )
        profile = self._records.profile_named(backend)
        if start:
            profile.preflight()
        image_name = image or self._config.default_image_name
        progress(ProgressEvent("spec", spec_line(spec)))
        resolved = await self._images.ensure(image_name, progress)
        if resolved.ssh_on_first_boot and not nat:
            progress(ProgressEvent("warning", f"warning: image {resolved.name} has no sshd; it "
                                   "is installed on first boot, which needs --nat"))
        template = None
        if not cold:
            template = await self._boot.find_template(
                profile.backend, resolved, kernel or "", spec, progress
            )

        async with self._create_lock:
            taken = {vm.name for vm in self._records.all()}
            if name is None:
                name = generate_name(taken)
            elif name in taken:
                raise NameTaken(f"a VM named {name!r} already exists")
            vm_id = secrets.token_hex(6)
            vm_dir = self._dir / vm_id
            address = self._net.address_for(vm_id, nat=nat)
            vm = VM(
                id=vm_id,
                name=name,
                image=resolved.name,
                state=VMState.CREATED,
                spec=spec,
                ip=address.ip,
                mac=address.mac,
                tap=address.tap,
                dir=str(vm_dir),
                backend=profile.backend,
                accel=profile.accel,
                created_at=time.time(),
                nat=nat,
                egress_allow=egress,
                network_group=network_group,
                kernel=kernel or "",
                template=template.meta.key if template else "",
            )
            require_room(
                self._disks.free_bytes(self._dir), spec.disk_size_bytes,
                where=str(self._dir), what=f"the work disk of {name}",
            )
            progress(ProgressEvent("create", f"creating VM {name} ({vm.ip})"))
            try:
                await self._boot.make_disks(vm, resolved, progress, template)
                self._records.put(vm)
            except BaseException:
                shutil.rmtree(vm_dir, ignore_errors=True)
                raise
        self._records.write_known_hosts()
        await self._records.notify(vm)
        if not start:
            return vm
        try:
            return await self.start(
                vm.name, progress, login_check=login_check, agent_ready=agent_ready
            )
        except (SSHTimeout, GuestSetupFailed):
            raise  # the VM is kept for `vm logs`
        except BaseException:
            # A VM that never came up is not worth keeping: leave nothing behind.
            with contextlib.suppress(Exception):
                await self.delete(vm.name, force=True)
            raise


    async def start(
        self, name: str, progress: Progress = no_progress, *, login_check: bool = True,
        from_snapshot: bool = False, agent_ready: bool = False,
    ) -> VM:
        """Boot and wait for ssh (see VMBoot.start)."""
        return await self._boot.start(
            name, progress, login_check=login_check, from_snapshot=from_snapshot,
            agent_ready=agent_ready,
        )

    async def login_access(self, name: str) -> GuestAccess:
        """`access`, once the VM's sshd answers (a start that returned on the guest agent's
        answer may have come before it)."""
        self.access(name)
        await self._boot.sshd_started(self.get(name))
        return self.access(name)


    async def stop(self, name: str) -> VM:
        vm = self.get(name)
        async with self._records.lock(vm):
            vm = self.get(vm.id)
            if not self._records.alive(vm):
                return await self._records.mark_stopped(vm)
            hypervisor = self._records.backend(vm)[1]
            if vm.state == VMState.PAUSED and isinstance(hypervisor, Pauses):
                # A guest with stopped vCPUs cannot act on a shutdown request.
                with contextlib.suppress(BangerError):
                    await hypervisor.resume(Path(vm.dir))
            self._records.save(replace(vm, state=VMState.STOPPING))
            assert vm.pid is not None
            graceful = await hypervisor.stop(vm.pid, Path(vm.dir), self._config.stop_timeout)
            if not graceful:
                log.warning("VM %s did not shut down in time; killed", vm.name)
            return await self._records.mark_stopped(vm)

    async def pause(self, name: str) -> VM:
        return await self._set_paused(name, paused=True)

    async def resume(self, name: str) -> VM:
        return await self._set_paused(name, paused=False)

    async def _set_paused(self, name: str, *, paused: bool) -> VM:
        vm = self.get(name)
        async with self._records.lock(vm):
            vm = self.get(vm.id)
            hypervisor = self._records.backend(vm)[1]
            if not isinstance(hypervisor, Pauses):
                raise unsupported(vm, "pause/resume")
            self._records.require(vm, "pause" if paused else "resume")
            if (vm.state == VMState.PAUSED) == paused:
                return vm
            if paused:
                await hypervisor.pause(Path(vm.dir))
            else:
                await hypervisor.resume(Path(vm.dir))
            state = VMState.PAUSED if paused else VMState.RUNNING
            vm = self._records.save(replace(vm, state=state))
        await self._records.notify(vm)
        return vm

    async def snapshot(self, name: str) -> VM:
        """A full snapshot (vCPU, device and memory state) into the VM dir; the VM runs on.
        Disks are not part of it: a restore is consistent only with the disks as they are
        when the VM stops right after the snapshot."""
        vm = self.get(name)
        async with self._records.lock(vm):
            vm = self.get(vm.id)
            hypervisor = self._records.backend(vm)[1]
            if not isinstance(hypervisor, Snapshots):
                raise unsupported(vm, "snapshots")
            if not self._records.allows(vm, "snapshot"):
                self._records.require(vm, "resume")  # not live: start it
                raise InvalidState(f"VM {vm.name!r} is {vm.state}",
                                   hint=f"banger vm resume {vm.name} first")
            await hypervisor.snapshot(Path(vm.dir))
        return vm

    async def vmm_metrics(self, vm: VM) -> list[MetricsSample] | None:
        """The VMM's own counters, for backends that keep them (None otherwise)."""
        hypervisor = self._records.backend(vm)[1]
        if not isinstance(hypervisor, ReportsMetrics) or not self._records.alive(vm):
            return None
        return await hypervisor.metrics(Path(vm.dir))

    async def restart(self, name: str, progress: Progress = no_progress) -> VM:
        await self.stop(name)
        return await self.start(name, progress)

    async def kill(self, name: str, signal_name: str) -> VM:
        vm = self.get(name)
        signal_number = _parse_signal(signal_name)
        async with self._records.lock(vm):
            vm = self.get(vm.id)
            if not self._records.allows(vm, "kill"):
                raise InvalidState(f"VM {vm.name!r} is not running")
            assert vm.pid is not None
            self._records.backend(vm)[1].kill(vm.pid, signal_number)
            for _ in range(50):
                if not self._records.alive(vm):
                    return await self._records.mark_stopped(vm)
                await asyncio.sleep(0.1)
            return vm

    async def delete(self, name: str, *, force: bool) -> VM:
        vm = self.get(name)
        async with self._records.lock(vm):
            vm = self.get(vm.id)
            if not self._records.allows(vm, "delete"):
                if not force:
                    raise InvalidState(
                        f"VM {vm.name!r} is running",
                        hint=f"stop it first (banger vm stop {vm.name}) or pass --force",
                    )
                await self._records.halt(vm)
            await self._net.detach(vm.tap)
            hypervisor = self._records.backend(vm)[1]
            if isinstance(hypervisor, Releases):
                await hypervisor.release(Path(vm.dir))
            shutil.rmtree(vm.dir, ignore_errors=True)
            self._records.remove(vm)
        self._records.write_known_hosts()
        await self._records.notify(vm)
        return vm

    async def set(
        self, name: str, *, vcpu: int | None, memory_mib: int | None, disk_size: str | None,
        nat: bool | None = None, egress_allow: list[str] | None = None,
        network_group: str | None = None,
    ) -> VM:
        """None leaves a setting as it is; NAT, egress and group apply while running."""
        _check_size_flags(vcpu, memory_mib)
        egress = None if egress_allow is None else normalize_egress_allow(egress_allow)
        if network_group is not None:
            validate_group(network_group)
        vm = self.get(name)
        self._net.require_policy(
            nat=vm.nat if nat is None else nat,
            egress_allow=vm.egress_allow if egress is None else egress,
            network_group=vm.network_group if network_group is None else network_group,
            tap=vm.tap,
        )
        resizing = (vcpu, memory_mib, disk_size) != (None, None, None)
        async with self._records.lock(vm):
            vm = self.get(vm.id)
            if resizing and not self._records.allows(vm, "resize"):
                raise InvalidState(
                    f"VM {vm.name!r} is running", hint=f"banger vm stop {vm.name} first"
                )
            if (nat is not None and nat != vm.nat and not self._net.nat_applies_live
                    and not self._records.allows(vm, "resize")):
                raise InvalidState(
                    f"VM {vm.name!r} is running, and under user-mode networking NAT is "
                    "switched when a VM starts", hint=f"banger vm stop {vm.name} first",
                )
            spec = vm.spec
            if disk_size is not None:
                size = parse_size(disk_size, what="disk size")
                require_room(
                    self._disks.free_bytes(Path(vm.dir)), size - spec.disk_size_bytes,
                    where=vm.dir, what=f"growing the work disk of {vm.name}",
                )
                await self._disks.grow_work_disk(VMDir(Path(vm.dir)).work_disk, size)
                spec = replace(spec, disk_size_bytes=size)
            if vcpu is not None:
                spec = replace(spec, vcpu=vcpu)
            if memory_mib is not None:
                spec = replace(spec, memory_mib=memory_mib)
            vm = self._records.save(replace(
                vm, spec=VMSpec(spec.vcpu, spec.memory_mib, spec.disk_size_bytes),
                nat=vm.nat if nat is None else nat,
                egress_allow=vm.egress_allow if egress is None else egress,
                network_group=vm.network_group if network_group is None else network_group,
            ))
        await self._records.notify(vm)
        return vm


def _check_size_flags(vcpu: int | None, memory_mib: int | None) -> None:
    if vcpu is not None and not 1 <= vcpu <= 64:
        raise InvalidInput(f"invalid --vcpu {vcpu}: use 1..64")
    if memory_mib is not None and memory_mib < 128:
        raise InvalidInput(f"invalid --memory {memory_mib}: at least 128 MiB")


def _parse_signal(name: str) -> int:
    text = name.upper().removeprefix("SIG")
    try:
        number = int(text) if text.isdigit() else int(signal.Signals[f"SIG{text}"])
    except KeyError:
        number = 0  # not a signal: rejected below
    # A number the kernel does not know would fail in kill(2) as an internal error.
    if number not in signal.valid_signals():
        raise InvalidInput(
            f"unknown signal {name!r}", hint="use a name like TERM, KILL, INT or a number"
        )
    return number
