"""ImageService: the image store. Catalog images are built from Debian packages on first use
and cached; registered images point at files the user keeps; all are shared read-only."""

from __future__ import annotations

import asyncio
import builtins
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from banger.core.errors import ImageNotFound, InvalidInput, ResourceBusy
from banger.core.imagerecipe import RECIPE_VERSION
from banger.core.models import VM, Image, ProgressEvent
from banger.core.names import validate_name
from banger.core.vmstates import ACTIVE_STATES
from banger.daemon.progress import Progress
from banger.daemon.store import Store
from banger.host.files import sparse_copy
from banger.host.imagebuild import ImageBuilder

if TYPE_CHECKING:
    from banger.daemon.ociimages import OCIImages

# name -> Debian suite built by the image builder.
CATALOG: dict[str, str] = {"debian-bookworm": "bookworm", "debian-trixie": "trixie"}


class ImageUsers(Protocol):
    """The VMs `delete_with_vms` deletes with an image (VMService)."""

    def list(self) -> builtins.list[VM]: ...
    def is_running(self, vm: VM) -> bool: ...
    async def delete(self, name: str, *, force: bool) -> VM: ...


class ImageService:
    def __init__(
        self,
        store: Store,
        images_dir: Path,
        builder: ImageBuilder,
        apt_sources: Callable[[str], list[str]],
        images_in_use: Callable[[str], list[str]],
        oci: OCIImages | None = None,
    ) -> None:
        self._oci = oci
        self._store = store
        self._dir = images_dir
        self._builder = builder
        self._apt_sources = apt_sources
        self._in_use = images_in_use
        self._locks: dict[str, asyncio.Lock] = {}

    def list(self) -> builtins.list[Image]:
        return self._store.list_images()

    def get(self, name: str) -> Image:
        image = self._store.get_image(name)
        if image is None:
            hint = (
                f"`banger image pull {name}` builds it" if name in CATALOG
                else f"catalog images: {', '.join(sorted(CATALOG))}; or `banger image register`"
            )
            raise ImageNotFound(f"image {name!r} not found", hint=hint)
        return image

    async def ensure(self, name: str, progress: Progress) -> Image:
        """The image, building it from the catalog first if it is not local yet."""
        image = self._store.get_image(name)
        if image is not None:
            return image
        if name not in CATALOG:
            self.get(name)
        return await self.pull(name, progress)

    async def pull(
        self, name: str, progress: Progress, *, force: bool = False, as_name: str | None = None,
        kernel: str | None = None,
    ) -> Image:
        """A catalog image by name, or else `name` is an OCI reference (docker.io/...)."""
        if name not in CATALOG and self._oci is not None:
            return await self._oci.pull(name, progress, force=force, as_name=as_name,
                                        kernel=kernel)
        if name not in CATALOG:
            raise ImageNotFound(
                f"{name!r} is not in the image catalog",
                hint=f"catalog images: {', '.join(sorted(CATALOG))}",
            )
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            existing = self._store.get_image(name)
            if existing is not None and not force:
                progress(ProgressEvent("image", f"image {name} is already local"))
                return existing
            if existing is not None and self._in_use(name):
                raise ResourceBusy(
                    f"image {name!r} is used by VMs: {', '.join(self._in_use(name))}",
                    hint="delete those VMs first",
                )
            suite = CATALOG[name]
            final = self._dir / name
            staging = self._dir / f".{name}.building"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            progress(ProgressEvent("image", f"building {name} from Debian {suite} packages"))
            started = time.monotonic()
            try:
                built = await self._builder.build(
                    suite=suite, dest_dir=staging, apt_sources=self._apt_sources(suite),
                    progress=progress,
                )
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            shutil.rmtree(final, ignore_errors=True)
            staging.rename(final)
            image = Image(
                name=name,
                rootfs=str(final / built.rootfs.name),
                kernel=str(final / built.kernel.name),
                initrd=str(final / built.initrd.name) if built.initrd else None,
                managed=True,
                created_at=time.time(),
                source=f"catalog: Debian {suite}",
                size_bytes=_disk_usage(final),
                recipe_version=RECIPE_VERSION,
            )
            self._store.put_image(image)
            progress(ProgressEvent(
                "image", f"image {name} ready in {time.monotonic() - started:.0f}s"
            ))
            return image

    def register(
        self, name: str, rootfs: str, kernel: str, initrd: str | None
    ) -> Image:
        validate_name(name)
        if self._store.get_image(name) is not None:
            raise InvalidInput(f"image {name!r} already exists", hint="delete it first")
        paths = [Path(p) for p in (rootfs, kernel, initrd) if p]
        for path in paths:
            if not path.is_absolute():
                raise InvalidInput(f"{path} is not an absolute path")
            if not path.is_file():
                raise InvalidInput(f"{path} does not exist or is not a file")
        image = Image(
            name=name, rootfs=rootfs, kernel=kernel, initrd=initrd, managed=False,
            created_at=time.time(), source="registered",
            size_bytes=sum(_disk_usage(p) for p in paths),
        )
        self._store.put_image(image)
        return image

    def delete(self, name: str) -> Image:
        image = self.get(name)
        users = self._in_use(name)
        if users:
            raise ResourceBusy(
                f"image {name!r} is used by VMs: {', '.join(users)}",
                hint="delete those VMs first, or `banger image delete --force "
                f"{name}` deletes them with it",
            )
        self._store.delete_image(name)
        if image.managed:
            shutil.rmtree(self._dir / name, ignore_errors=True)
        return image


    async def delete_with_vms(self, name: str, vms: ImageUsers) -> Image:
        """`image delete --force`: the image and every VM created from it (their disks are
        built on its files), like `podman rmi --force`. Refused while any of them runs:
        stopping someone's work is not what deleting an image should do quietly."""
        self.get(name)
        users = [vm for vm in vms.list() if vm.image == name]
        busy = [vm.name for vm in users if vm.state in ACTIVE_STATES or vms.is_running(vm)]
        if busy:
            raise ResourceBusy(
                f"image {name!r} is used by running VMs: {', '.join(busy)}",
                hint=f"stop them first (banger vm stop {' '.join(busy)})",
            )
        for vm in users:
            await vms.delete(vm.id, force=False)
        return self.delete(name)

    async def promote(self, name: str) -> Image:
        """Copy a registered image's files into banger's own storage; the record then points
        there (and `image delete` removes them). The originals are left alone."""
        image = self.get(name)
        if image.managed:
            raise InvalidInput(f"image {name!r} is already managed by banger")
        users = self._in_use(name)
        if users:
            # Their disks are overlays on the original rootfs path.
            raise ResourceBusy(f"image {name!r} is used by VMs: {', '.join(users)}",
                               hint="delete those VMs first")
        final = self._dir / name
        staging = self._dir / f".{name}.promoting"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            copies = {"rootfs": "rootfs.ext4", "kernel": "vmlinuz", "initrd": "initrd.img"}
            paths: dict[str, str] = {}
            for field, target in copies.items():
                source = getattr(image, field)
                if source:
                    await asyncio.to_thread(sparse_copy, Path(source), staging / target)
                    paths[field] = str(final / target)
            shutil.rmtree(final, ignore_errors=True)
            staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        promoted = replace(
            image, managed=True, source=f"{image.source} (promoted)",
            rootfs=paths.get("rootfs", image.rootfs), kernel=paths.get("kernel", image.kernel),
            initrd=paths.get("initrd", image.initrd),
        )
        self._store.put_image(promoted)
        return promoted


def _disk_usage(path: Path) -> int:
    """Bytes actually allocated (rootfs files are sparse)."""
    if path.is_file():
        return path.stat().st_blocks * 512
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())
