"""KernelService: the kernel store. Catalog kernels (Debian cloud kernels, core/kernelcatalog.py)
are fetched on request; registered kernels point at files the user keeps. Images name a
default kernel; `vm create --kernel` overrides it."""

from __future__ import annotations

import asyncio
import builtins
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from banger.core.errors import InvalidInput, InvalidName, KernelNotFound, ResourceBusy
from banger.core.kernelcatalog import KERNEL_CATALOG
from banger.core.models import Image, Kernel, ProgressEvent
from banger.daemon.progress import Progress
from banger.daemon.store import Store
from banger.host.kernelpull import KernelFetcher

# Like VM and image names, plus dots: catalog kernels are named by version (generic-6.1).
_KERNEL_NAME = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class KernelEntry:
    """One `kernel list` line: a catalog entry and/or a local kernel."""

    name: str
    description: str
    local: bool
    catalog: bool
    version: str = ""
    source: str = ""


def _usage(path: Path) -> int:
    if path.is_file():
        return path.stat().st_blocks * 512
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


class KernelService:
    def __init__(
        self, store: Store, kernels_dir: Path, fetcher: KernelFetcher,
        archive_for: Callable[[str], str], kernels_in_use: Callable[[str], list[str]],
    ) -> None:
        self._store = store
        self._dir = kernels_dir
        self._fetcher = fetcher
        self._archive_for = archive_for
        self._in_use = kernels_in_use
        self._locks: dict[str, asyncio.Lock] = {}

    def list(self) -> builtins.list[KernelEntry]:
        local = {k.name: k for k in self._store.list_kernels()}
        entries = [
            KernelEntry(name, entry.description, name in local, True,
                        local[name].version if name in local else "",
                        local[name].source if name in local else "")
            for name, entry in KERNEL_CATALOG.items()
        ]
        entries += [
            KernelEntry(k.name, "registered", True, False, k.version, k.source)
            for k in local.values() if k.name not in KERNEL_CATALOG
        ]
        return sorted(entries, key=lambda e: e.name)

    def get(self, name: str) -> Kernel:
        kernel = self._store.get_kernel(name)
        if kernel is None:
            hint = (f"`banger kernel pull {name}` fetches it" if name in KERNEL_CATALOG
                    else f"catalog kernels: {', '.join(sorted(KERNEL_CATALOG))}")
            raise KernelNotFound(f"kernel {name!r} not found", hint=hint)
        return kernel

    async def ensure(self, name: str, progress: Progress) -> Kernel:
        kernel = self._store.get_kernel(name)
        if kernel is not None:
            return kernel
        if name not in KERNEL_CATALOG:
            self.get(name)
        return await self.pull(name, progress)

    async def pull(self, name: str, progress: Progress, *, force: bool = False) -> Kernel:
        entry = KERNEL_CATALOG.get(name)
        if entry is None:
            raise KernelNotFound(f"{name!r} is not in the kernel catalog",
                                 hint=f"catalog kernels: {', '.join(sorted(KERNEL_CATALOG))}")
        async with self._locks.setdefault(name, asyncio.Lock()):
            existing = self._store.get_kernel(name)
            if existing is not None and not force:
                progress(ProgressEvent("kernel", f"kernel {name} is already local"))
                return existing
            archive = self._archive_for(entry.suite)
            progress(ProgressEvent("kernel", f"fetching {entry.description} from {archive}"))
            fetched = await self._fetcher.fetch(
                entry=entry, archive=archive, dest_dir=self._dir / name, progress=progress
            )
            kernel = Kernel(
                name=name, vmlinuz=str(fetched.vmlinuz), initrd=str(fetched.initrd),
                managed=True, created_at=time.time(), source=f"catalog: {fetched.package}",
                version=fetched.version,
                vmlinux=str(fetched.vmlinux) if fetched.vmlinux else None,
                modules=str(fetched.modules), size_bytes=_usage(self._dir / name),
            )
            self._store.put_kernel(kernel)
            return kernel

    def register(
        self, name: str, vmlinuz: str, initrd: str | None, *, vmlinux: str | None = None,
        modules: str | None = None,
    ) -> Kernel:
        if not _KERNEL_NAME.fullmatch(name):
            raise InvalidName(f"invalid kernel name {name!r}",
                              hint="1-63 of a-z, 0-9, '.' and '-', e.g. generic-6.1")
        if self._store.get_kernel(name) is not None:
            raise InvalidInput(f"kernel {name!r} already exists", hint="delete it first")
        files = [Path(p) for p in (vmlinuz, initrd, vmlinux) if p]
        for path in [*files, *([Path(modules)] if modules else [])]:
            if not path.is_absolute():
                raise InvalidInput(f"{path} is not an absolute path")
            if not path.exists():
                raise InvalidInput(f"{path} does not exist")
        for path in files:
            if not path.is_file():
                raise InvalidInput(f"{path} is not a file")
        kernel = Kernel(
            name=name, vmlinuz=vmlinuz, initrd=initrd, managed=False, created_at=time.time(),
            source="registered", vmlinux=vmlinux, modules=modules,
            size_bytes=sum(_usage(p) for p in files),
        )
        self._store.put_kernel(kernel)
        return kernel

    def delete(self, name: str) -> Kernel:
        kernel = self.get(name)
        users = self._in_use(name)
        if users:
            raise ResourceBusy(f"kernel {name!r} is used by {', '.join(users)}",
                               hint="delete those VMs and images first (or change them)")
        self._store.delete_kernel(name)
        if kernel.managed:
            shutil.rmtree(self._dir / name, ignore_errors=True)
        return kernel

    # The VM service's view (vms.KernelChooser).

    def check(self, name: str) -> None:
        if name not in KERNEL_CATALOG:
            self.get(name)

    async def boot_image(self, kernel: str, image: Image, progress: Progress) -> Image:
        """`image` with the kernel the VM boots: the VM's choice, else the image's own
        kernel, else the image's default kernel (fetched from the catalog on first use)."""
        name = kernel or ("" if image.kernel else image.kernel_name)
        if not name:
            if not image.kernel:
                raise KernelNotFound(f"image {image.name!r} has no kernel",
                                     hint="pass --kernel NAME (see `banger kernel list`)")
            return image
        chosen = await self.ensure(name, progress)
        return replace(image, kernel=chosen.vmlinuz, initrd=chosen.initrd)
