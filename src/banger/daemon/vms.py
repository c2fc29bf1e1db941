"""VMService: the VM lifecycle (create, start, stop, kill, delete), crash reconciliation and
the state the CLI needs to reach a guest."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import os
import secrets
import shutil
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from banger.core.agent import SEED_BYTES, Identity
from banger.core.config import Config
from banger.core.errors import (
    BangerError,
    GuestSetupFailed,
    InvalidInput,
    InvalidState,
    NameTaken,
    SSHTimeout,
    Unsupported,
    VMNotFound,
)
from banger.core.firecracker import MetricsSample
from banger.core.guest import (
    SEED_DIR,
    BootIdentity,
    guest_aslr,
    kernel_cmdline,
    ssh_install_failure,
)
from banger.core.models import VM, Image, ProgressEvent, VMSpec, VMState
from banger.core.names import generate_name, validate_name
from banger.core.netplan import mac_for, tap_name_for
from banger.core.sizing import SizeDefaults, effective_spec, spec_line
from banger.core.units import parse_size
from banger.daemon.bootwatch import rebooting_stalled_boots
from banger.daemon.filesync import stage_file_sync
from banger.daemon.images import ImageService
from banger.daemon.network import HostNetwork
from banger.daemon.progress import Progress, no_progress
from banger.daemon.store import Store
from banger.host.consolelog import ConsoleFollower
from banger.host.consolelog import read_from as read_console
from banger.host.disks import DiskAdapter
from banger.host.ssh import GuestProbe, KeyMaker
from banger.host.vmm.base import (
    Hypervisor,
    LaunchSpec,
    Pauses,
    PreparesRoot,
    ReportsMetrics,
    Snapshots,
    Templates,
)

if TYPE_CHECKING:
    from banger.daemon.templates import Template, TemplateService

log = logging.getLogger("banger.vms")

ALIVE_STATES = {
    VMState.STARTING, VMState.RUNNING, VMState.PAUSED, VMState.STOPPING, VMState.ERROR
}
# Extra seconds to wait for ssh on an image that installs openssh-server on its first boot
# (apt under TCG takes minutes); a failed install ends the wait at once anyway.
SSH_INSTALL_ALLOWANCE = 600.0
# Called with the VM after it was created, changed state or settings, or deleted; listeners
# (DNS, NAT, stats) rebuild what they derive from the store. Their errors are logged only.
VMListener = Callable[[VM], Awaitable[None]]
HOST_KEY = "ssh_host_ed25519_key"
# From loading a template to the agent's answer; ~1 s on an idle host even under TCG.
AGENT_TIMEOUT = 60.0


class KernelChooser(Protocol):
    """Which kernel a VM boots: its --kernel, else its image's own or default kernel."""

    def check(self, name: str) -> None: ...
    async def boot_image(self, kernel: str, image: Image, progress: Progress) -> Image: ...


@dataclass(frozen=True)
class GuestAccess:
    """What a client needs to ssh into a VM with banger's key and pinned host key."""

    name: str
    ip: str
    user: str
    identity_file: str
    known_hosts: str


@dataclass(frozen=True)
class Machine:
    """Host facts VMService needs when it launches a VM."""

    backend: str
    accel: str
    tsc_khz: int | None
    preflight: Callable[[], None]


class VMService:
    def __init__(
        self,
        *,
        config: Config,
        store: Store,
        vms_dir: Path,
        images: ImageService,
        network: HostNetwork,
        disks: DiskAdapter,
        hypervisor: Hypervisor,
        keys: KeyMaker,
        probe: GuestProbe,
        machine: Machine,
        client_key: Path,
        known_hosts: Path,
        size_defaults: SizeDefaults,
        backends: Mapping[str, tuple[Machine, Hypervisor]] | None = None,
        kernels: KernelChooser | None = None,
        templates: Mapping[str, TemplateService] | None = None,
    ) -> None:
        """`templates`: the warm templates of each backend that has them."""
        self._kernels = kernels
        self._templates = dict(templates or {})
        self._config = config
        self._store = store
        self._dir = vms_dir
        self._images = images
        self._net = network
        self._disks = disks
        self._hv = hypervisor
        self._keys = keys
        self._probe = probe
        self._machine = machine
        # Every backend this daemon can run, by name; `machine`/`hypervisor` is the default.
        self._backends = {machine.backend: (machine, hypervisor), **(backends or {})}
        self._client_key = client_key
        self._known_hosts = known_hosts
        self.size_defaults = size_defaults
        self._locks: dict[str, asyncio.Lock] = {}
        self._create_lock = asyncio.Lock()
        self.listeners: builtins.list[VMListener] = []

    # Queries

    def list(self) -> builtins.list[VM]:
        return self._store.list_vms()

    def get(self, name: str) -> VM:
        vm = self._store.get_vm(name)
        if vm is None:
            raise VMNotFound(f"no VM named {name!r}")
        return vm

    def is_running(self, vm: VM) -> bool:
        """Its VMM process is alive (whatever the recorded state says)."""
        return self._alive(vm)

    def images_in_use(self, image: str) -> builtins.list[str]:
        return [vm.name for vm in self._store.list_vms() if vm.image == image]

    def access(self, name: str) -> GuestAccess:
        vm = self.get(name)
        if vm.state == VMState.PAUSED:
            raise InvalidState(f"VM {vm.name!r} is paused", hint=f"banger vm resume {vm.name}")
        if vm.state not in (VMState.RUNNING, VMState.ERROR) or not self._alive(vm):
            raise InvalidState(
                f"VM {vm.name!r} is not running ({vm.state})", hint=f"banger vm start {vm.name}"
            )
        return GuestAccess(
            vm.name, vm.ip, "root", str(self._client_key), str(self._known_hosts)
        )

    def console_log(self, name: str, offset: int) -> tuple[bytes, int]:
        vm = self.get(name)
        return read_console(Path(vm.dir) / "console.log", offset, 1 << 20)

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
    ) -> VM:
        """`cold`: boot even if the image has a warm template."""
        if kernel and self._kernels is not None:
            self._kernels.check(kernel)
        if name is not None:
            validate_name(name)
            if any(vm.name == name for vm in self._store.list_vms()):
                raise NameTaken(f"a VM named {name!r} already exists")
        _check_size_flags(vcpu, memory_mib)
        spec = effective_spec(
            self.size_defaults, vcpu=vcpu, memory_mib=memory_mib, disk_size=disk_size
        )
        machine = self._machine_named(backend)
        if start:
            machine.preflight()
        image_name = image or self._config.default_image_name
        progress(ProgressEvent("spec", spec_line(spec)))
        resolved = await self._images.ensure(image_name, progress)
        if resolved.ssh_on_first_boot and not nat:
            progress(ProgressEvent("warning", f"warning: image {resolved.name} has no sshd; it "
                                   "is installed on first boot, which needs --nat"))
        template = None
        if not cold:
            template = await self._find_template(
                machine.backend, resolved, kernel or "", spec, progress
            )

        async with self._create_lock:
            taken = {vm.name for vm in self._store.list_vms()}
            if name is None:
                name = generate_name(taken)
            elif name in taken:
                raise NameTaken(f"a VM named {name!r} already exists")
            vm_id = secrets.token_hex(6)
            vm_dir = self._dir / vm_id
            vm = VM(
                id=vm_id,
                name=name,
                image=resolved.name,
                state=VMState.CREATED,
                spec=spec,
                ip=self._net.allocate_ip(),
                mac=mac_for(vm_id),
                tap=tap_name_for(vm_id),
                dir=str(vm_dir),
                backend=machine.backend,
                accel=machine.accel,
                created_at=time.time(),
                nat=nat,
                kernel=kernel or "",
                template=template.meta.key if template else "",
            )
            progress(ProgressEvent("create", f"creating VM {name} ({vm.ip})"))
            try:
                await self._make_disks(vm, resolved, progress, template)
                self._store.put_vm(vm)
            except BaseException:
                shutil.rmtree(vm_dir, ignore_errors=True)
                raise
        self._write_known_hosts()
        await self._notify(vm)
        if not start:
            return vm
        try:
            return await self.start(vm.name, progress, login_check=login_check)
        except (SSHTimeout, GuestSetupFailed):
            raise  # the VM is kept for `vm logs`
        except BaseException:
            # A VM that never came up is not worth keeping: leave nothing behind.
            with contextlib.suppress(Exception):
                await self.delete(vm.name, force=True)
            raise

    async def _find_template(
        self, backend: str, image: Image, kernel: str, spec: VMSpec, progress: Progress
    ) -> Template | None:
        templates = self._templates.get(backend)
        if templates is None or not templates.enabled:
            return None
        if kernel and (image.kernel or kernel != image.kernel_name):
            return None  # templates boot the image's own kernel, not one chosen per VM
        boot = image
        if self._kernels is not None:
            boot = await self._kernels.boot_image(kernel, image, progress)
        found = templates.find(boot, spec.vcpu, spec.memory_mib)
        if found.stale:
            progress(ProgressEvent(
                "warning", f"warning: the warm template of {image.name} is stale "
                f"({', '.join(found.stale)}): booting cold; a new one is made afterwards"
            ))
        return found.template

    async def _make_disks(
        self, vm: VM, image: Image, progress: Progress = no_progress,
        template: Template | None = None,
    ) -> None:
        vm_dir = Path(vm.dir)
        vm_dir.mkdir(parents=True, mode=0o700)
        host_key = await self._keys.make_ed25519(vm_dir / HOST_KEY, f"banger-{vm.name}")
        staging = vm_dir / "work-staging"
        seed = staging / SEED_DIR
        (staging / ".ssh").mkdir(parents=True, mode=0o700)
        seed.mkdir(mode=0o700)
        client_pub = self._client_key.with_name(self._client_key.name + ".pub")
        authorized = staging / ".ssh" / "authorized_keys"
        authorized.write_text(client_pub.read_text())
        authorized.chmod(0o600)
        # The guest's own host key pair: the private half belongs to the guest, not the host
        # user, and the daemon pins the public half before the first connection.
        shutil.copy(vm_dir / HOST_KEY, seed / HOST_KEY)
        (seed / f"{HOST_KEY}.pub").write_text(host_key + "\n")
        (seed / "machine-id").write_text(secrets.token_hex(16) + "\n")
        for warning in await asyncio.to_thread(
            stage_file_sync, self._config.file_sync, staging, Path.home()
        ):
            log.warning("%s: %s", vm.name, warning)
            progress(ProgressEvent("warning", f"warning: {warning}"))
        hypervisor = self._backend(vm)[1]
        try:
            if isinstance(hypervisor, PreparesRoot) and template is not None:
                # What the guest's page cache holds: the template's root, as it was saved.
                await hypervisor.clone_root(template.dir, vm_dir)
            elif isinstance(hypervisor, PreparesRoot):
                await hypervisor.prepare_root(
                    Path(image.rootfs), vm_dir, vm.spec.disk_size_bytes
                )
            elif template is not None:
                # The guest's page cache holds the template's root disk: the VM must see
                # exactly that disk, so it gets a copy (a few MiB over the shared base).
                await asyncio.to_thread(shutil.copyfile, template.root, vm_dir / "root.qcow2")
            else:
                await self._disks.create_overlay(Path(image.rootfs), vm_dir / "root.qcow2")
            await self._disks.create_work_disk(
                vm_dir / "work.ext4", vm.spec.disk_size_bytes, staging
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    async def start(
        self, name: str, progress: Progress = no_progress, *, login_check: bool = True,
        from_snapshot: bool = False,
    ) -> VM:
        """Boot and wait for ssh. `login_check=False` returns once sshd answers, for callers
        that log in right away themselves (`vm run`): one ssh handshake fewer per run.
        `from_snapshot` restores the VM's last `snapshot` instead of booting it."""
        vm = self.get(name)
        async with self._lock(vm):
            vm = self.get(vm.id)
            machine, hypervisor = self._backend(vm)
            if from_snapshot and not isinstance(hypervisor, Snapshots):
                raise _unsupported(vm, "snapshots")
            if self._alive(vm):
                raise InvalidState(
                    f"VM {vm.name!r} is already running",
                    hint=f"banger vm resume {vm.name}" if vm.state == VMState.PAUSED
                    else f"banger vm ssh {vm.name}, or banger vm restart {vm.name}",
                )
            machine.preflight()
            image = self._images.get(vm.image)
            if self._kernels is not None:
                image = await self._kernels.boot_image(vm.kernel, image, progress)
            if from_snapshot:
                progress(ProgressEvent("boot", f"restoring {vm.name} from its snapshot"))
            else:
                progress(ProgressEvent("boot", f"booting {vm.name} ({vm.accel})"))
            first_boot = vm.started_at is None
            restored = False
            await self._net.attach(vm.tap)
            try:
                launch = self._launch_spec(vm, image)
                if from_snapshot:
                    assert isinstance(hypervisor, Snapshots)
                    pid = await hypervisor.start_from_snapshot(launch)
                elif vm.template and first_boot:
                    warm_pid, vm = await self._restore(vm, image, launch, progress)
                    restored = warm_pid is not None
                    pid = warm_pid if warm_pid is not None else await hypervisor.start(launch)
                else:
                    pid = await hypervisor.start(launch)
            except BaseException:
                await self._net.detach(vm.tap)
                raise
            vm = self._save(replace(
                vm, state=VMState.STARTING, pid=pid, started_at=time.time(), last_error=""
            ))
            await self._notify(vm)
            started = time.monotonic()
            if restored and not login_check:
                # The agent answered only once this VM's host key was in place and the sshd
                # the template started was listening: a banner probe would only cost the
                # guest one more sshd exec before the caller's own login.
                progress(ProgressEvent("ready", f"{vm.name} is up (restored)"))
                vm = self._save(replace(vm, state=VMState.RUNNING))
                await self._notify(vm)
                return vm
            progress(ProgressEvent("ssh", f"waiting for ssh on {vm.ip}"))
            probe = self._probe.wait_ready(
                vm.ip,
                client_key=self._client_key,
                host_key=self._host_key(vm),
                timeout=self._config.boot_timeout
                + (SSH_INSTALL_ALLOWANCE if image.ssh_on_first_boot else 0),
                alive=lambda: hypervisor.is_running(pid, Path(vm.dir)),
                login=login_check,
            )
            booting = hypervisor if not (restored or from_snapshot) else None
            try:
                async with rebooting_stalled_boots(booting, launch, progress):
                    if image.ssh_on_first_boot:
                        await self._wait_installing_ssh(vm, image, probe, progress)
                    else:
                        await probe
            except (SSHTimeout, GuestSetupFailed) as exc:
                await self._notify(
                    self._save(replace(vm, state=VMState.ERROR, last_error=exc.message))
                )
                raise type(exc)(
                    f"{vm.name}: {exc.message}",
                    hint=f"the VM is kept for inspection: banger vm logs {vm.name}; "
                    f"remove it with banger vm delete --force {vm.name}"
                    + ("" if vm.nat or not image.ssh_on_first_boot else
                       f"; image {image.name} has no openssh-server, which is installed on "
                       "first boot only with network: create the VM with --nat"),
                ) from None
            except BaseException as exc:
                await self._halt(vm)
                message = exc.message if isinstance(exc, BangerError) else repr(exc)
                self._save(replace(self.get(vm.id), last_error=message))
                raise
            progress(ProgressEvent(
                "ready", f"{vm.name} is up ({time.monotonic() - started:.1f}s to ssh)"
            ))
            vm = self._save(replace(vm, state=VMState.RUNNING))
        await self._notify(vm)
        if first_boot and not restored and not from_snapshot:
            self._offer_template(vm, image)
        return vm

    async def _wait_installing_ssh(
        self, vm: VM, image: Image, probe: Awaitable[None], progress: Progress
    ) -> None:
        """Wait for ssh on an image that installs openssh-server on its first boot; fail as
        soon as the guest's install unit reports on the console that it cannot."""
        progress(ProgressEvent("ssh", f"{image.name} has no openssh-server: the guest "
                               "installs it on its first boot"))
        console = ConsoleFollower(Path(vm.dir) / "console.log")

        async def watch() -> None:
            while True:
                failure = ssh_install_failure(console.read())
                if failure:
                    raise GuestSetupFailed(failure)
                await asyncio.sleep(0.5)

        tasks = [asyncio.ensure_future(probe), asyncio.ensure_future(watch())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _restore(
        self, vm: VM, image: Image, launch: LaunchSpec, progress: Progress
    ) -> tuple[int | None, VM]:
        """Start `vm` from its image's warm template and hand it its identity. Never fails
        the start: a missing or broken template means a cold boot (and the VM's root disk is
        remade over the base image), with a warning. Returns the VMM's PID, or None when
        the caller must boot cold."""
        hypervisor = self._backend(vm)[1]
        templates = self._templates.get(vm.backend)
        template = templates.get(vm.image, vm.template) if templates else None
        reason = "it was deleted or remade"
        if template is not None and templates and isinstance(hypervisor, Templates):
            progress(ProgressEvent(
                "boot", f"restoring {vm.name} from the warm template of {vm.image}"
            ))
            warm = replace(
                launch, memory_file=template.memory, memory_shared=False, agent=True,
                incoming=True,
            )
            pid: int | None = None
            try:
                clock = time.monotonic()
                pid = await hypervisor.start_from_template(warm, template.state)
                loaded = time.monotonic()
                started = pid
                await templates.agent.send_identity(
                    hypervisor.agent_socket(warm.vm_dir), self._identity(vm), AGENT_TIMEOUT,
                    alive=lambda: hypervisor.is_running(started, Path(vm.dir)),
                )
                log.info("%s: template loaded in %.2fs, identity applied in %.2fs", vm.name,
                         loaded - clock, time.monotonic() - loaded)
                return pid, vm
            except (BangerError, OSError) as exc:
                reason = exc.message if isinstance(exc, BangerError) else str(exc)
                if pid is not None:
                    await self._kill_and_wait(vm, pid)
                templates.discard(vm.image)  # broken: the next cold boot remakes it
        message = (f"warning: could not start {vm.name} from the warm template of {vm.image} "
                   f"({reason}): booting cold")
        log.warning("%s", message)
        progress(ProgressEvent("warning", message))
        await self._fresh_root(vm, image)
        return None, self._save(replace(vm, template=""))

    async def _fresh_root(self, vm: VM, image: Image) -> None:
        """Remake a VM's root over its image's base (it had a copy of a template's)."""
        hypervisor = self._backend(vm)[1]
        if isinstance(hypervisor, PreparesRoot):
            await hypervisor.prepare_root(Path(image.rootfs), Path(vm.dir), vm.spec.disk_size_bytes)
            return
        root = Path(vm.dir) / "root.qcow2"
        root.unlink(missing_ok=True)
        await self._disks.create_overlay(Path(image.rootfs), root)

    def _identity(self, vm: VM) -> Identity:
        return Identity(
            ip_cidr=f"{vm.ip}/{self._net.prefix_len}",
            gateway=self._net.gateway,
            dns=self._config.dns_server,
            hostname=vm.name,
            mac=vm.mac,
            now_ns=time.time_ns(),
            seed=secrets.token_bytes(SEED_BYTES),
        )

    async def _kill_and_wait(self, vm: VM, pid: int) -> None:
        hypervisor = self._backend(vm)[1]
        hypervisor.kill(pid, signal.SIGKILL)
        for _ in range(100):
            if not hypervisor.is_running(pid, Path(vm.dir)):
                return
            await asyncio.sleep(0.05)

    def _offer_template(self, vm: VM, image: Image) -> None:
        """After a VM of an image booted cold, make the image's warm template (if VMs of
        its kind can use one) so the next start is warm."""
        templates = self._templates.get(vm.backend)
        if (
            templates is not None
            and not vm.kernel
            and not image.ssh_on_first_boot
            and (vm.spec.vcpu, vm.spec.memory_mib) == self._default_size()
        ):
            templates.schedule(vm.image)

    def _default_size(self) -> tuple[int, int]:
        return self.size_defaults.vcpu.value, self.size_defaults.memory_mib.value

    async def stop(self, name: str) -> VM:
        vm = self.get(name)
        async with self._lock(vm):
            vm = self.get(vm.id)
            if not self._alive(vm):
                return await self._mark_stopped(vm)
            hypervisor = self._backend(vm)[1]
            if vm.state == VMState.PAUSED and isinstance(hypervisor, Pauses):
                # A guest with stopped vCPUs cannot act on a shutdown request.
                with contextlib.suppress(BangerError):
                    await hypervisor.resume(Path(vm.dir))
            self._save(replace(vm, state=VMState.STOPPING))
            assert vm.pid is not None
            graceful = await hypervisor.stop(vm.pid, Path(vm.dir), self._config.stop_timeout)
            if not graceful:
                log.warning("VM %s did not shut down in time; killed", vm.name)
            return await self._mark_stopped(vm)

    async def pause(self, name: str) -> VM:
        return await self._set_paused(name, paused=True)

    async def resume(self, name: str) -> VM:
        return await self._set_paused(name, paused=False)

    async def _set_paused(self, name: str, *, paused: bool) -> VM:
        vm = self.get(name)
        async with self._lock(vm):
            vm = self.get(vm.id)
            hypervisor = self._backend(vm)[1]
            if not isinstance(hypervisor, Pauses):
                raise _unsupported(vm, "pause/resume")
            self._require_alive(vm)
            if (vm.state == VMState.PAUSED) == paused:
                return vm
            if paused:
                await hypervisor.pause(Path(vm.dir))
            else:
                await hypervisor.resume(Path(vm.dir))
            vm = self._save(replace(vm, state=VMState.PAUSED if paused else VMState.RUNNING))
        await self._notify(vm)
        return vm

    async def snapshot(self, name: str) -> VM:
        """A full snapshot (vCPU, device and memory state) into the VM dir; the VM runs on.
        Disks are not part of it: a restore is consistent only with the disks as they are
        when the VM stops right after the snapshot."""
        vm = self.get(name)
        async with self._lock(vm):
            vm = self.get(vm.id)
            hypervisor = self._backend(vm)[1]
            if not isinstance(hypervisor, Snapshots):
                raise _unsupported(vm, "snapshots")
            self._require_alive(vm)
            if vm.state != VMState.RUNNING:
                raise InvalidState(f"VM {vm.name!r} is {vm.state}",
                                   hint=f"banger vm resume {vm.name} first")
            await hypervisor.snapshot(Path(vm.dir))
        return vm

    async def vmm_metrics(self, vm: VM) -> builtins.list[MetricsSample] | None:
        """The VMM's own counters, for backends that keep them (None otherwise)."""
        hypervisor = self._backend(vm)[1]
        if not isinstance(hypervisor, ReportsMetrics) or not self._alive(vm):
            return None
        return await hypervisor.metrics(Path(vm.dir))

    async def restart(self, name: str, progress: Progress = no_progress) -> VM:
        await self.stop(name)
        return await self.start(name, progress)

    async def kill(self, name: str, signal_name: str) -> VM:
        vm = self.get(name)
        signal_number = _parse_signal(signal_name)
        async with self._lock(vm):
            vm = self.get(vm.id)
            if not self._alive(vm):
                raise InvalidState(f"VM {vm.name!r} is not running")
            assert vm.pid is not None
            self._backend(vm)[1].kill(vm.pid, signal_number)
            for _ in range(50):
                if not self._alive(vm):
                    return await self._mark_stopped(vm)
                await asyncio.sleep(0.1)
            return vm

    async def delete(self, name: str, *, force: bool) -> VM:
        vm = self.get(name)
        async with self._lock(vm):
            vm = self.get(vm.id)
            if self._alive(vm):
                if not force:
                    raise InvalidState(
                        f"VM {vm.name!r} is running",
                        hint=f"stop it first (banger vm stop {vm.name}) or pass --force",
                    )
                await self._halt(vm)
            await self._net.detach(vm.tap)
            shutil.rmtree(vm.dir, ignore_errors=True)
            self._store.delete_vm(vm.id)
        self._locks.pop(vm.id, None)
        self._write_known_hosts()
        await self._notify(vm)
        return vm

    async def set(
        self, name: str, *, vcpu: int | None, memory_mib: int | None, disk_size: str | None,
        nat: bool | None = None,
    ) -> VM:
        _check_size_flags(vcpu, memory_mib)
        vm = self.get(name)
        resizing = (vcpu, memory_mib, disk_size) != (None, None, None)
        async with self._lock(vm):
            vm = self.get(vm.id)
            if resizing and self._alive(vm):
                raise InvalidState(
                    f"VM {vm.name!r} is running", hint=f"banger vm stop {vm.name} first"
                )
            spec = vm.spec
            if disk_size is not None:
                size = parse_size(disk_size, what="disk size")
                await self._disks.grow_work_disk(Path(vm.dir) / "work.ext4", size)
                spec = replace(spec, disk_size_bytes=size)
            if vcpu is not None:
                spec = replace(spec, vcpu=vcpu)
            if memory_mib is not None:
                spec = replace(spec, memory_mib=memory_mib)
            vm = self._save(replace(
                vm, spec=VMSpec(spec.vcpu, spec.memory_mib, spec.disk_size_bytes),
                nat=vm.nat if nat is None else nat,
            ))
        await self._notify(vm)
        return vm

    # Crash recovery and supervision

    async def reconcile(self) -> None:
        """After a (re)start of the daemon: adopt guests that still run, mark dead ones
        stopped, remove TAPs and VMM processes no record owns."""
        owned_taps: set[str] = set()
        for vm in self._store.list_vms():
            if self._alive(vm):
                owned_taps.add(vm.tap)
                if vm.state in (VMState.STARTING, VMState.STOPPING, VMState.CREATED,
                                VMState.STOPPED):
                    self._save(replace(vm, state=VMState.RUNNING))
                log.info("adopted running VM %s (pid %s)", vm.name, vm.pid)
            elif vm.state in ALIVE_STATES:
                await self._mark_stopped(vm)
                log.info("VM %s was not running any more; marked stopped", vm.name)
        for tap in await self._net.banger_taps():
            if tap not in owned_taps:
                await self._net.detach(tap)
                log.info("removed orphaned TAP %s", tap)
        self._kill_orphan_vmms()
        self._write_known_hosts()

    async def supervise(self, interval: float = 1.0) -> None:
        """Notice guests that powered themselves off and release their host resources."""
        while True:
            await asyncio.sleep(interval)
            for vm in self._store.list_vms():
                lock = self._locks.get(vm.id)
                if lock is not None and lock.locked():
                    continue
                watched = (VMState.RUNNING, VMState.PAUSED, VMState.ERROR)
                if vm.state in watched and vm.pid and not self._alive(vm):
                    async with self._lock(vm):
                        current = self._store.get_vm(vm.id)
                        if current is not None and not self._alive(current):
                            await self._mark_stopped(current)
                            log.info("VM %s exited; marked stopped", vm.name)

    def _kill_orphan_vmms(self) -> None:
        known = {vm.pid for vm in self._store.list_vms() if self._alive(vm)}
        marker = str(self._dir) + "/"
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            if pid in known or pid == os.getpid():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            vmm = b"-qmp" in argv or b"--api-sock" in argv  # QEMU or Firecracker
            if any(marker.encode() in part for part in argv) and vmm:
                log.warning("killing orphaned VMM process %d", pid)
                self._hv.kill(pid, signal.SIGKILL)

    # Helpers

    def _machine_named(self, backend: str | None) -> Machine:
        if backend is None:
            return self._machine
        if backend not in self._backends:
            raise InvalidInput(
                f"backend {backend!r} is not available here",
                hint=f"use one of: {', '.join(sorted(self._backends))} (see `banger doctor`)",
            )
        return self._backends[backend][0]

    def _backend(self, vm: VM) -> tuple[Machine, Hypervisor]:
        """The VM's own backend (records made before it existed run on the default)."""
        return self._backends.get(vm.backend, (self._machine, self._hv))

    def _require_alive(self, vm: VM) -> None:
        if not self._alive(vm):
            raise InvalidState(f"VM {vm.name!r} is not running ({vm.state})",
                               hint=f"banger vm start {vm.name}")

    def _lock(self, vm: VM) -> asyncio.Lock:
        return self._locks.setdefault(vm.id, asyncio.Lock())

    def _alive(self, vm: VM) -> bool:
        return vm.pid is not None and self._backend(vm)[1].is_running(vm.pid, Path(vm.dir))

    def _save(self, vm: VM) -> VM:
        self._store.put_vm(vm)
        return vm

    async def _halt(self, vm: VM) -> None:
        if vm.pid is not None and self._alive(vm):
            self._backend(vm)[1].kill(vm.pid, signal.SIGKILL)
            for _ in range(250):  # a killed VMM is gone in a few ms: poll finely (vm run --rm)
                if not self._alive(vm):
                    break
                await asyncio.sleep(0.02)
        await self._mark_stopped(vm)

    async def _mark_stopped(self, vm: VM) -> VM:
        await self._net.detach(vm.tap)
        current = self._store.get_vm(vm.id) or vm
        stopped = self._save(replace(current, state=VMState.STOPPED, pid=None))
        await self._notify(stopped)
        return stopped

    async def _notify(self, vm: VM) -> None:
        for listener in self.listeners:
            try:
                await listener(vm)
            except Exception:
                log.exception("VM listener failed for %s", vm.name)

    def _host_key(self, vm: VM) -> str:
        return (Path(vm.dir) / f"{HOST_KEY}.pub").read_text().strip()

    def _launch_spec(self, vm: VM, image: Image) -> LaunchSpec:
        identity = BootIdentity(
            ip=vm.ip,
            prefix_len=self._net.prefix_len,
            gateway=self._net.gateway,
            dns=self._config.dns_server,
            hostname=vm.name,
        )
        tsc = self._backend(vm)[0].tsc_khz if vm.accel == "tcg" else None
        return LaunchSpec(
            vm_id=vm.id,
            name=vm.name,
            vcpu=vm.spec.vcpu,
            memory_mib=vm.spec.memory_mib,
            kernel=Path(image.kernel),
            initrd=Path(image.initrd) if image.initrd else None,
            cmdline=kernel_cmdline(
                identity, tsc_khz=tsc, aslr=guest_aslr(self._config.guest_aslr, vm.accel)
            ),
            root_disk=Path(vm.dir) / "root.qcow2",
            work_disk=Path(vm.dir) / "work.ext4",
            tap=vm.tap,
            mac=vm.mac,
            vm_dir=Path(vm.dir),
            accel=vm.accel,
        )

    def _write_known_hosts(self) -> None:
        """banger's own known_hosts, regenerated from the store: each VM's pinned key under
        its IP and `<name>.vm`. Addresses are reused, so stale lines must go."""
        lines = []
        for vm in self._store.list_vms():
            try:
                lines.append(f"{vm.ip},{vm.name}.vm {self._host_key(vm)}\n")
            except OSError:
                continue
        self._known_hosts.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._known_hosts.with_suffix(".tmp")
        tmp.write_text("".join(lines))
        tmp.chmod(0o600)
        tmp.replace(self._known_hosts)


def _unsupported(vm: VM, what: str) -> Unsupported:
    return Unsupported(
        f"the {vm.backend} backend of VM {vm.name!r} does not support {what}",
        hint="create the VM with --backend firecracker for pause/resume and snapshots",
    )


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
