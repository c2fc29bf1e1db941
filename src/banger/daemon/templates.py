"""TemplateService: warm templates of images (see banger.core.template and core.agent), one
service per VMM backend that can make them, each in its own directory.

`build` boots a template VM of an image with no identity, waits for banger-agent to say the
boot settled, saves its device state next to its memory file and root disk, and stops it.
VMService then starts VMs of that image by restoring the template instead of booting."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from banger.core.config import Config
from banger.core.errors import BangerError, ImageNotFound, Unsupported
from banger.core.guest import guest_aslr, kernel_cmdline
from banger.core.models import Image, ProgressEvent
from banger.core.sizing import DEFAULT_DISK_BYTES
from banger.core.template import (
    MEMORY_FILE,
    META_FILE,
    STATE_FILE,
    WORK_PLACEHOLDER_BYTES,
    FileFacts,
    TemplateInputs,
    TemplateMeta,
    differences,
    template_key,
)
from banger.core.vmdir import VMDir
from banger.daemon.bootwatch import rebooting_stalled_boots
from banger.daemon.images import ImageService
from banger.daemon.network import GuestNetwork
from banger.daemon.progress import Progress, no_progress
from banger.host.agent import AgentChannel
from banger.host.disks import DiskAdapter
from banger.host.vmm.base import (
    Hypervisor,
    LaunchSpec,
    PreparesRoot,
    Releases,
    Templates,
    TemplatesSometimes,
)

log = logging.getLogger("banger.templates")

_BUILD_PREFIX = ".build-"


class BootImages(Protocol):
    async def boot_image(self, kernel: str, image: Image, progress: Progress) -> Image: ...


@dataclass(frozen=True)
class Template:
    dir: Path
    meta: TemplateMeta

    @property
    def root(self) -> Path:
        return VMDir(self.dir).root_disk

    @property
    def memory(self) -> Path:
        return self.dir / MEMORY_FILE

    @property
    def state(self) -> Path:
        return self.dir / STATE_FILE


@dataclass(frozen=True)
class Lookup:
    """A usable template, or why there is none (`stale` lists what changed)."""

    template: Template | None
    stale: list[str]


class TemplateService:
    def __init__(
        self,
        *,
        backend: str,
        templates_dir: Path,
        config: Config,
        images: ImageService,
        kernels: BootImages | None,
        network: GuestNetwork,
        disks: DiskAdapter,
        hypervisor: Hypervisor,
        agent: AgentChannel,
        accel: str,
        tsc_khz: int | None,
        default_size: Callable[[], tuple[int, int]],
        vmm_version: Callable[[], str],
        disk_size_bytes: int = DEFAULT_DISK_BYTES,
    ) -> None:
        """`templates_dir`: this backend's own. `disk_size_bytes`: the root overlay of a
        template on a backend that makes its own roots (every VM restored from it has a
        copy of that overlay)."""
        self.backend = backend
        self._dir = templates_dir
        self._config = config
        self._images = images
        self._kernels = kernels
        self._net = network
        self._disks = disks
        self._hv = hypervisor
        self._agent = agent
        self._accel = accel
        self._tsc_khz = tsc_khz
        self._default_size = default_size
        self._vmm_version = vmm_version
        self._disk_size = disk_size_bytes
        self._locks: dict[str, asyncio.Lock] = {}
        self._background: dict[str, asyncio.Task[None]] = {}
        # Images whose template failed to build in the background: not retried after every
        # cold boot (an image without perl, say, never settles), only by `image warm`.
        self._failed: set[str] = set()

    @property
    def enabled(self) -> bool:
        if not (self._config.warm_start and isinstance(self._hv, Templates)):
            return False
        return not isinstance(self._hv, TemplatesSometimes) or self._hv.makes_templates()

    @property
    def agent(self) -> AgentChannel:
        return self._agent

    # Queries

    def inputs(self, boot: Image, vcpu: int, memory_mib: int) -> TemplateInputs:
        """`boot`: the image with the kernel its VMs boot (see KernelService.boot_image)."""
        return TemplateInputs(
            backend=self.backend,
            image=boot.name,
            rootfs=_facts(boot.rootfs),
            kernel=_facts(boot.kernel),
            initrd=_facts(boot.initrd) if boot.initrd else None,
            vmm_version=self._vmm_version(),
            accel=self._accel,
            vcpu=vcpu,
            memory_mib=memory_mib,
            aslr=self._aslr,
            nic="user" if self._net.vmm_net(None) is not None else "",
        )

    @property
    def _aslr(self) -> bool:
        return guest_aslr(self._config.guest_aslr, self._accel)

    def find(self, boot: Image, vcpu: int, memory_mib: int) -> Lookup:
        """The template for VMs of this image, kernel and size, if it is current."""
        meta = self._meta(boot.name)
        if meta is None:
            return Lookup(None, [])
        try:
            wanted = self.inputs(boot, vcpu, memory_mib)
        except OSError:
            return Lookup(None, [])
        if template_key(wanted) == meta.key:
            return Lookup(Template(self._dir / boot.name, meta), [])
        if (meta.inputs.vcpu, meta.inputs.memory_mib) != (vcpu, memory_mib) and (
            (vcpu, memory_mib) != self._default_size()
        ):
            return Lookup(None, [])  # a VM of another size than templates are made for
        return Lookup(None, differences(meta.inputs, wanted) or ["it is out of date"])

    def get(self, image: str, key: str) -> Template | None:
        meta = self._meta(image)
        if meta is None or meta.key != key:
            return None
        return Template(self._dir / image, meta)

    def describe(self, image: str) -> dict[str, object] | None:
        """For `image show`: whether a template exists and what it costs on disk."""
        meta = self._meta(image)
        if meta is None:
            building = image in self._background
            return {"backend": self.backend, "building": True} if building else None
        return {
            "backend": self.backend,
            "vcpu": meta.inputs.vcpu,
            "memory_mib": meta.inputs.memory_mib,
            "created_at": meta.created_at,
            "build_seconds": round(meta.build_seconds, 1),
            "disk_bytes": _disk_usage(self._dir / image),
            "building": image in self._background,
        }

    # Making and dropping templates

    async def build(self, image_name: str, progress: Progress = no_progress) -> Template:
        if not isinstance(self._hv, Templates):
            raise Unsupported(
                f"the {self._hv.name} backend cannot make warm templates",
                hint="warm templates need the qemu or firecracker backend",
            )
        self._failed.discard(image_name)
        lock = self._locks.setdefault(image_name, asyncio.Lock())
        async with lock:
            image = self._images.get(image_name)
            if image.ssh_on_first_boot:
                # Its template would have no sshd to hand each restored VM.
                raise Unsupported(
                    f"image {image_name} has no openssh-server (its VMs install it on their "
                    "first boot), so it cannot have a warm template",
                    hint="its VMs boot cold; an image with openssh-server can be warm",
                )
            boot = image
            if self._kernels is not None:
                boot = await self._kernels.boot_image("", image, progress)
            vcpu, memory_mib = self._default_size()
            inputs = self.inputs(boot, vcpu, memory_mib)
            started = time.monotonic()
            build_id = secrets.token_hex(6)
            work = self._dir / f"{_BUILD_PREFIX}{build_id}"
            work.mkdir(parents=True, mode=0o700)
            try:
                await self._boot_and_save(work, build_id, boot, vcpu, memory_mib, progress)
                meta = TemplateMeta(
                    inputs=inputs, key=template_key(inputs), created_at=time.time(),
                    build_seconds=time.monotonic() - started,
                )
                (work / META_FILE).write_text(meta.to_json())
                files = VMDir(work)
                for leftover in work.iterdir():
                    if leftover.is_socket() or leftover in (files.work_disk, files.pid_file):
                        leftover.unlink()
                final = self._dir / image_name
                old = self._dir / f"{_BUILD_PREFIX}old-{build_id}"
                if final.exists():
                    final.rename(old)
                work.rename(final)
                shutil.rmtree(old, ignore_errors=True)
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
        progress(ProgressEvent(
            "template", f"warm template of {image_name} ready "
            f"({meta.build_seconds:.0f}s, {_disk_usage(final) / 2**20:.0f} MiB on disk)"
        ))
        log.info("warm template of %s (%s) made in %.1fs", image_name, self.backend,
                 meta.build_seconds)
        return Template(final, meta)

    async def _boot_and_save(
        self, work: Path, build_id: str, boot: Image, vcpu: int, memory_mib: int,
        progress: Progress,
    ) -> None:
        assert isinstance(self._hv, Templates)
        files = VMDir(work)
        if isinstance(self._hv, PreparesRoot):
            await self._hv.prepare_root(Path(boot.rootfs), work, self._disk_size)
        else:
            await self._disks.create_overlay(Path(boot.rootfs), files.root_disk)
        with open(files.work_disk, "wb") as placeholder:
            placeholder.truncate(WORK_PLACEHOLDER_BYTES)
        address = self._net.address_for(build_id, nat=None)
        spec = LaunchSpec(
            vm_id=build_id,
            name=f"template-{boot.name}",
            vcpu=vcpu,
            memory_mib=memory_mib,
            kernel=Path(boot.kernel),
            initrd=Path(boot.initrd) if boot.initrd else None,
            cmdline=kernel_cmdline(
                None, tsc_khz=self._tsc_khz if self._accel == "tcg" else None,
                aslr=self._aslr,
            ),
            root_disk=files.root_disk,
            work_disk=files.work_disk,
            tap=address.tap,
            mac=address.mac,
            vm_dir=work,
            accel=self._accel,
            memory_file=work / MEMORY_FILE,
            memory_shared=True,
            agent=True,
            user_net=self._net.vmm_net(None),
        )
        progress(ProgressEvent("template", f"booting a template VM of {boot.name}"))
        await self._net.attach(spec.tap)
        pid: int | None = None
        try:
            pid = await self._hv.start(spec)
            # For `clean_leftovers` after a crash (QEMU writes it too, from -pidfile).
            files.pid_file.write_text(f"{pid}\n")
            running_pid = pid
            async with rebooting_stalled_boots(self._hv, spec, progress):
                await self._agent.wait_ready(
                    self._hv.agent_socket(work), self._config.boot_timeout * 3,
                    alive=lambda: self._hv.is_running(running_pid, work),
                )
            progress(ProgressEvent("template", "saving the template"))
            await self._hv.save_template(work, work / STATE_FILE, work / MEMORY_FILE)
        finally:
            if pid is not None:
                await self._kill(pid, work)
            await self._net.detach(spec.tap)

    async def _kill(self, pid: int, work: Path) -> None:
        self._hv.kill(pid, signal.SIGKILL)
        for _ in range(100):
            if not self._hv.is_running(pid, work):
                break
            await asyncio.sleep(0.05)
        if isinstance(self._hv, Releases):
            await self._hv.release(work)  # the template's VMM never starts again

    async def ensure(self, image_name: str, progress: Progress = no_progress) -> Template:
        """The image's current template for the default VM size, made if missing or stale."""
        image = self._images.get(image_name)
        boot = image
        if self._kernels is not None:
            boot = await self._kernels.boot_image("", image, progress)
        found = self.find(boot, *self._default_size())
        if found.template is not None:
            return found.template
        return await self.build(image_name, progress)

    def schedule(self, image_name: str) -> None:
        """Make the image's template in the background (after a VM of it booted cold)."""
        if not self.enabled or image_name in self._background or image_name in self._failed:
            return

        async def run() -> None:
            try:
                await self.ensure(image_name)
            except ImageNotFound:
                pass
            except BangerError as exc:
                self._failed.add(image_name)
                log.warning("warm template of %s failed: %s (its VMs boot cold; retry with "
                            "banger image warm %s)", image_name, exc.message, image_name)
            except Exception:
                self._failed.add(image_name)
                log.exception("warm template of %s failed", image_name)
            finally:
                self._background.pop(image_name, None)

        self._background[image_name] = asyncio.get_running_loop().create_task(run())

    def discard(self, image_name: str) -> bool:
        """Delete the image's template (VMs restored from it keep running: they hold their
        own copy of its root disk and the kernel keeps the memory file they map)."""
        path = self._dir / image_name
        existed = path.exists()
        shutil.rmtree(path, ignore_errors=True)
        return existed

    def clean_leftovers(self) -> None:
        """Remove builds a crashed daemon left behind, and stop their VMMs."""
        if not self._dir.is_dir():
            return
        for entry in self._dir.iterdir():
            if not entry.name.startswith(_BUILD_PREFIX):
                continue
            with contextlib.suppress(OSError, ValueError):
                pid = int(VMDir(entry).pid_file.read_text().strip())
                if self._hv.is_running(pid, entry):
                    self._hv.kill(pid, signal.SIGKILL)
            shutil.rmtree(entry, ignore_errors=True)

    async def close(self) -> None:
        tasks = list(self._background.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    def _meta(self, image: str) -> TemplateMeta | None:
        try:
            return TemplateMeta.from_json((self._dir / image / META_FILE).read_text())
        except (OSError, ValueError, KeyError, TypeError):
            return None


def remove_old_layout(root: Path) -> None:
    """Remove templates from before they were kept per backend (`root/<image>`): their
    format is stale anyway, and nothing looks there any more."""
    if not root.is_dir():
        return
    for entry in root.iterdir():
        if (entry / META_FILE).is_file():
            shutil.rmtree(entry, ignore_errors=True)


def _facts(path: str) -> FileFacts:
    st = os.stat(path)
    return FileFacts(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def _disk_usage(path: Path) -> int:
    total = 0
    for entry in path.rglob("*"):
        with contextlib.suppress(OSError):
            if entry.is_file():
                total += entry.stat().st_blocks * 512
    return total
