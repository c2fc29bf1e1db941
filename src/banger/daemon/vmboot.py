"""VMBoot: bringing a VM up. Its disks when it is created; then each start: a cold boot, or
on a VM's first start a restore from its image's warm template (the VM gets its identity from
banger-agent), or a restore from its own snapshot; then the wait for ssh."""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from banger.core.agent import SEED_BYTES, Identity
from banger.core.config import Config
from banger.core.errors import (
    BangerError,
    GuestSetupFailed,
    InvalidState,
    SSHTimeout,
)
from banger.core.guest import (
    SEED_DIR,
    BootIdentity,
    guest_aslr,
    kernel_cmdline,
    ssh_install_failure,
)
from banger.core.models import VM, Image, ProgressEvent, VMSpec, VMState
from banger.core.sizing import SizeDefaults
from banger.core.slirp import ssh_endpoint
from banger.core.vmdir import HOST_KEY, VMDir
from banger.daemon.bootwatch import rebooting_stalled_boots
from banger.daemon.filesync import stage_file_sync
from banger.daemon.images import ImageService
from banger.daemon.network import GuestNetwork
from banger.daemon.progress import Progress, no_progress
from banger.daemon.templates import Template, TemplateService
from banger.daemon.vmrecords import VMRecords, unsupported
from banger.host.consolelog import ConsoleFollower
from banger.host.disks import DiskAdapter
from banger.host.ssh import GuestProbe, KeyMaker
from banger.host.vmm.base import (
    Hypervisor,
    LaunchSpec,
    PreparesRoot,
    Snapshots,
    Templates,
)

log = logging.getLogger("banger.vms")

# Extra seconds to wait for ssh on an image that installs openssh-server on its first boot
# (apt under TCG takes minutes); a failed install ends the wait at once anyway.
SSH_INSTALL_ALLOWANCE = 600.0
# From loading a template to the agent's answer; ~1 s on an idle host even under TCG.
AGENT_TIMEOUT = 60.0

# Opens a VM's agent channel, waiting up to the given seconds for the agent to answer.
ConnectAgent = Callable[[VM, float], Awaitable[None]]


class KernelChooser(Protocol):
    """Which kernel a VM boots: its --kernel, else its image's own or default kernel."""

    def check(self, name: str) -> None: ...
    async def boot_image(self, kernel: str, image: Image, progress: Progress) -> Image: ...


class VMBoot:
    def __init__(
        self,
        *,
        records: VMRecords,
        config: Config,
        images: ImageService,
        network: GuestNetwork,
        disks: DiskAdapter,
        keys: KeyMaker,
        probe: GuestProbe,
        client_key: Path,
        size_defaults: SizeDefaults,
        kernels: KernelChooser | None = None,
        templates: Mapping[str, TemplateService] | None = None,
    ) -> None:
        """`templates`: the warm templates of each backend that has them."""
        self._records = records
        self._config = config
        self._images = images
        self._net = network
        self._disks = disks
        self._keys = keys
        self._probe = probe
        self._client_key = client_key
        self.size_defaults = size_defaults
        self._kernels = kernels
        self._templates = dict(templates or {})
        # Set once the daemon's GuestExec exists (it needs the VMService this feeds).
        self.connect_agent: ConnectAgent | None = None
        # By VM id: sshd's wait, still running after a start that returned on the agent.
        self._sshd_waits: dict[str, asyncio.Future[None]] = {}
        # Tasks that outlive the start that began them (the event loop holds them weakly).
        self._background: set[asyncio.Future[None]] = set()

    async def find_template(
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

    async def make_disks(
        self, vm: VM, image: Image, progress: Progress = no_progress,
        template: Template | None = None,
    ) -> None:
        vm_dir = Path(vm.dir)
        files = VMDir(vm_dir)
        vm_dir.mkdir(parents=True, mode=0o700)
        host_key = await self._keys.make_ed25519(files.host_key, f"banger-{vm.name}")
        staging = files.work_staging
        seed = staging / SEED_DIR
        (staging / ".ssh").mkdir(parents=True, mode=0o700)
        seed.mkdir(mode=0o700)
        client_pub = self._client_key.with_name(self._client_key.name + ".pub")
        authorized = staging / ".ssh" / "authorized_keys"
        authorized.write_text(client_pub.read_text())
        authorized.chmod(0o600)
        # The guest's own host key pair: the private half belongs to the guest, not the host
        # user, and the daemon pins the public half before the first connection.
        shutil.copy(files.host_key, seed / HOST_KEY)
        (seed / f"{HOST_KEY}.pub").write_text(host_key + "\n")
        (seed / "machine-id").write_text(secrets.token_hex(16) + "\n")
        for warning in await asyncio.to_thread(
            stage_file_sync, self._config.file_sync, staging, Path.home()
        ):
            log.warning("%s: %s", vm.name, warning)
            progress(ProgressEvent("warning", f"warning: {warning}"))
        hypervisor = self._records.backend(vm)[1]
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
                await asyncio.to_thread(shutil.copyfile, template.root, files.root_disk)
            else:
                await self._disks.create_overlay(Path(image.rootfs), files.root_disk)
            await self._disks.create_work_disk(
                files.work_disk, vm.spec.disk_size_bytes, staging
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    async def start(
        self, name: str, progress: Progress = no_progress, *, login_check: bool = True,
        from_snapshot: bool = False, agent_ready: bool = False,
    ) -> VM:
        """Boot and wait for ssh. `login_check=False` returns once sshd answers, for callers
        that log in right away themselves (`vm run`): one ssh handshake fewer per run.
        `agent_ready` (with login_check=False) returns as soon as the guest agent answers,
        if that is before sshd, for callers that go through the agent (`vm run -- CMD`).
        `from_snapshot` restores the VM's last `snapshot` instead of booting it."""
        vm = self._records.get(name)
        async with self._records.lock(vm):
            vm = self._records.get(vm.id)
            profile, hypervisor = self._records.backend(vm)
            if from_snapshot and not isinstance(hypervisor, Snapshots):
                raise unsupported(vm, "snapshots")
            if not self._records.allows(vm, "start"):
                raise InvalidState(
                    f"VM {vm.name!r} is already running",
                    hint=f"banger vm resume {vm.name}" if vm.state == VMState.PAUSED
                    else f"banger vm ssh {vm.name}, or banger vm restart {vm.name}",
                )
            profile.preflight()
            image = self._images.get(vm.image)
            if self._kernels is not None:
                image = await self._kernels.boot_image(vm.kernel, image, progress)
            if from_snapshot:
                progress(ProgressEvent("boot", f"restoring {vm.name} from its snapshot"))
            else:
                progress(ProgressEvent("boot", f"booting {vm.name} ({vm.accel})"))
            first_boot = vm.started_at is None
            vm = self._with_ssh_port(vm)
            await self._net.attach(vm.tap)
            try:
                launch = self._launch_spec(vm, image)
                pid, vm, restored = await self._launch(
                    vm, image, launch, hypervisor, from_snapshot, progress
                )
            except BaseException:
                await self._net.detach(vm.tap)
                raise
            vm = self._records.save(replace(
                vm, state=VMState.STARTING, pid=pid, started_at=time.time(), last_error=""
            ))
            await self._records.notify(vm)
            started = time.monotonic()
            agent_first = agent_ready and not login_check and self.connect_agent is not None
            if restored and not login_check:
                # The agent answered only once this VM's host key was in place and the sshd
                # the template started was listening: a banner probe would only cost the
                # guest one more sshd exec before the caller's own login.
                progress(ProgressEvent("ready", f"{vm.name} is up (restored)"))
                vm = self._records.save(replace(vm, state=VMState.RUNNING))
                await self._records.notify(vm)
                if agent_first:
                    assert self.connect_agent is not None
                    # The exec channel, opened while the caller reads this answer: the agent
                    # looks for a new host only every 50 ms once the identity step's left.
                    self._in_background(self.connect_agent(vm, AGENT_TIMEOUT))
                return vm
            progress(ProgressEvent(
                "ssh", f"waiting for {'the guest agent or ' if agent_first else ''}ssh on {vm.ip}"
            ))
            probe = self._probe.wait_ready(
                *ssh_endpoint(vm.ip, vm.ssh_port),
                client_key=self._client_key,
                host_key=self._records.host_key(vm),
                timeout=self._config.boot_timeout
                + (SSH_INSTALL_ALLOWANCE if image.ssh_on_first_boot else 0),
                alive=lambda: hypervisor.is_running(pid, Path(vm.dir)),
                login=login_check,
            )
            booting = hypervisor if not (restored or from_snapshot) else None
            reached = "ssh"
            try:
                async with rebooting_stalled_boots(booting, launch, progress):
                    if image.ssh_on_first_boot:
                        await self._wait_installing_ssh(vm, image, probe, progress)
                    elif agent_first:
                        reached = await self._agent_or_sshd(vm, probe)
                    else:
                        await probe
            except (SSHTimeout, GuestSetupFailed) as exc:
                await self._records.notify(
                    self._records.save(replace(vm, state=VMState.ERROR, last_error=exc.message))
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
                await self._records.halt(vm)
                message = exc.message if isinstance(exc, BangerError) else repr(exc)
                self._records.save(replace(self._records.get(vm.id), last_error=message))
                raise
            progress(ProgressEvent(
                "ready", f"{vm.name} is up ({time.monotonic() - started:.1f}s to {reached})"
            ))
            vm = self._records.save(replace(vm, state=VMState.RUNNING))
        await self._records.notify(vm)
        if first_boot and not restored and not from_snapshot:
            self._offer_template(vm, image)
        return vm

    async def _agent_or_sshd(self, vm: VM, sshd: Awaitable[None]) -> str:
        """Until the guest agent or sshd answers, whichever first ("agent" or "ssh"; an
        image without perl has no agent). A cold boot starts both at about the same time,
        and the agent's channel needs no handshake. Once the agent answered, the wait for
        sshd goes on in the background (`sshd_started`), so a login right after works."""
        assert self.connect_agent is not None
        # After sshd won, the agent's answer only opens the channel early, for the first exec.
        agent = self._in_background(self.connect_agent(vm, self._config.boot_timeout))
        waiting = asyncio.ensure_future(sshd)
        try:
            await asyncio.wait({agent, waiting}, return_when=asyncio.FIRST_COMPLETED)
            if agent.done() and agent.exception() is None and not waiting.done():
                self._sshd_waits[vm.id] = self._in_background(waiting)  # `vm ssh` waits for it
                waiting.add_done_callback(lambda _: self._sshd_waits.pop(vm.id, None))
                return "agent"
            await waiting
            return "ssh"
        except BaseException:
            waiting.cancel()
            raise

    def _in_background(self, work: Awaitable[None]) -> asyncio.Future[None]:
        """`work` as a task held until it ends, its failure logged by nobody (whoever needs
        its outcome awaits it: a login reports its own failure)."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_consume)
        return task

    async def sshd_started(self, vm: VM) -> None:
        """Until sshd answers, if a start returned on the agent's answer before it did (or
        until that wait gave up: ssh then says why itself)."""
        waiting = self._sshd_waits.get(vm.id)
        if waiting is not None:
            await asyncio.wait({waiting})

    async def _launch(
        self, vm: VM, image: Image, launch: LaunchSpec, hypervisor: Hypervisor,
        from_snapshot: bool, progress: Progress,
    ) -> tuple[int, VM, bool]:
        """Start the VMM: from the VM's own snapshot, else on its first start from its
        image's warm template (`_warm_start`), else by a cold boot. Returns its PID, the VM
        as recorded now, and whether a template was restored."""
        if from_snapshot:
            assert isinstance(hypervisor, Snapshots)
            return await hypervisor.start_from_snapshot(launch), vm, False
        if vm.template and vm.started_at is None:
            warm_pid, vm = await self._warm_start(vm, image, launch, progress)
            if warm_pid is not None:
                return warm_pid, vm, True
        return await hypervisor.start(launch), vm, False  # a cold boot

    async def _wait_installing_ssh(
        self, vm: VM, image: Image, probe: Awaitable[None], progress: Progress
    ) -> None:
        """Wait for ssh on an image that installs openssh-server on its first boot; fail as
        soon as the guest's install unit reports on the console that it cannot."""
        progress(ProgressEvent("ssh", f"{image.name} has no openssh-server: the guest "
                               "installs it on its first boot"))
        console = ConsoleFollower(VMDir(Path(vm.dir)).console_log)

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

    async def _warm_start(
        self, vm: VM, image: Image, launch: LaunchSpec, progress: Progress
    ) -> tuple[int | None, VM]:
        """Start `vm` from its image's warm template and hand it its identity. Never fails
        the start: a missing or broken template means a cold boot (and the VM's root disk is
        remade over the base image), with a warning. Returns the VMM's PID, or None when
        the caller must boot cold."""
        hypervisor = self._records.backend(vm)[1]
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
                # The guest's network rules go in while it applies its identity, not after.
                admitted = asyncio.ensure_future(self._net.admit(vm))
                try:
                    await templates.agent.send_identity(
                        hypervisor.agent_socket(warm.vm_dir), self._identity(vm),
                        AGENT_TIMEOUT, alive=lambda: hypervisor.is_running(started, Path(vm.dir)),
                    )
                finally:
                    await _settled(admitted)
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
        return None, self._records.save(replace(vm, template=""))

    async def _fresh_root(self, vm: VM, image: Image) -> None:
        """Remake a VM's root over its image's base (it had a copy of a template's)."""
        hypervisor = self._records.backend(vm)[1]
        if isinstance(hypervisor, PreparesRoot):
            await hypervisor.prepare_root(Path(image.rootfs), Path(vm.dir), vm.spec.disk_size_bytes)
            return
        root = VMDir(Path(vm.dir)).root_disk
        root.unlink(missing_ok=True)
        await self._disks.create_overlay(Path(image.rootfs), root)

    def _with_ssh_port(self, vm: VM) -> VM:
        """The VM with the loopback port its sshd is forwarded to on this start (user-mode
        networking), recorded (with the pinned key's new name) when it changed."""
        port = self._net.ssh_port(vm)
        if port == vm.ssh_port:
            return vm
        vm = self._records.save(replace(vm, ssh_port=port))
        self._records.write_known_hosts()
        return vm

    def _identity(self, vm: VM) -> Identity:
        return Identity(
            ip_cidr=f"{vm.ip}/{self._net.prefix_len}",
            gateway=self._net.gateway,
            dns=self._net.dns_server,
            hostname=vm.name,
            mac=vm.mac,
            now_ns=time.time_ns(),
            seed=secrets.token_bytes(SEED_BYTES),
        )

    async def _kill_and_wait(self, vm: VM, pid: int) -> None:
        hypervisor = self._records.backend(vm)[1]
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

    def _launch_spec(self, vm: VM, image: Image) -> LaunchSpec:
        identity = BootIdentity(
            ip=vm.ip,
            prefix_len=self._net.prefix_len,
            gateway=self._net.gateway,
            dns=self._net.dns_server,
            hostname=vm.name,
        )
        tsc = self._records.backend(vm)[0].tsc_khz if vm.accel == "tcg" else None
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
            root_disk=VMDir(Path(vm.dir)).root_disk,
            work_disk=VMDir(Path(vm.dir)).work_disk,
            tap=vm.tap,
            mac=vm.mac,
            vm_dir=Path(vm.dir),
            accel=vm.accel,
            agent=True,  # every VM's exec channel (core/agentframe.py), cold boots too
            user_net=self._net.vmm_net(vm),
        )



def _consume(task: asyncio.Future[None]) -> None:
    """Retrieve a background task's outcome, so that asyncio does not log it as lost."""
    if not task.cancelled():
        task.exception()


async def _settled(admission: asyncio.Future[None]) -> None:
    """Wait for an `admit`; its failure is logged, not raised, as a VM listener's is: the
    sync that follows the VM's start tries again, and doctor reports what is missing."""
    try:
        await admission
    except Exception as exc:
        log.warning("network rules not updated ahead of the start: %s", exc)
