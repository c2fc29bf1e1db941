"""Images pulled from OCI registries: naming, the size cap, and the store record. The pull
itself (registry, flattening, boot contract, ext4) is the ImagePuller adapter."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from banger.core.errors import ResourceBusy
from banger.core.models import Image, ProgressEvent
from banger.core.names import validate_name
from banger.core.oci import default_size_cap, image_name_for, parse_reference
from banger.core.units import format_size
from banger.daemon.progress import Progress
from banger.daemon.store import Store
from banger.host.ocipull import ImagePuller


def free_bytes(path: Path) -> int:
    path.mkdir(parents=True, exist_ok=True)
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize


class OCIImages:
    def __init__(
        self, store: Store, images_dir: Path, puller: ImagePuller, *,
        catalog: Callable[[str], bool], images_in_use: Callable[[str], list[str]],
        default_kernel: str, max_bytes: int | None = None,
    ) -> None:
        self._store = store
        self._dir = images_dir
        self._puller = puller
        self._is_catalog = catalog
        self._in_use = images_in_use
        self._default_kernel = default_kernel
        self._max_bytes = max_bytes
        self._locks: dict[str, asyncio.Lock] = {}

    def name_for(self, reference: str, as_name: str | None) -> str:
        if as_name:
            return validate_name(as_name)
        name = image_name_for(parse_reference(reference))
        # A pulled debian:bookworm must not shadow the catalog's debian-bookworm.
        return f"{name}-oci"[:63] if self._is_catalog(name) else name

    async def pull(
        self, reference: str, progress: Progress, *, force: bool, as_name: str | None,
        kernel: str | None,
    ) -> Image:
        ref = parse_reference(reference)
        name = self.name_for(reference, as_name)
        async with self._locks.setdefault(name, asyncio.Lock()):
            existing = self._store.get_image(name)
            if existing is not None and not force:
                progress(ProgressEvent("image", f"image {name} is already local "
                                       "(--force pulls it again)"))
                return existing
            if existing is not None and self._in_use(name):
                raise ResourceBusy(
                    f"image {name!r} is used by VMs: {', '.join(self._in_use(name))}",
                    hint="delete those VMs first, or pull under another --name",
                )
            cap = self._max_bytes or default_size_cap(free_bytes(self._dir))
            progress(ProgressEvent("pull", f"pulling {ref} as image {name} "
                                   f"(size limit {format_size(cap)})", 0.0))
            staging = self._dir / f".{name}.pulling"
            shutil.rmtree(staging, ignore_errors=True)
            started = time.monotonic()
            try:
                pulled = await self._puller.pull(
                    reference=ref, dest_dir=staging, max_bytes=cap, progress=progress
                )
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            final = self._dir / name
            shutil.rmtree(final, ignore_errors=True)
            staging.rename(final)
            if not pulled.has_systemd:
                progress(ProgressEvent(
                    "warning", "warning: the image has no systemd; banger's boot contract "
                    "needs it, so VMs of this image will not come up (see `vm logs`)",
                ))
            if not pulled.has_sshd:
                progress(ProgressEvent(
                    "warning", "note: the image has no openssh-server; each VM installs it on "
                    "its first boot, which needs network (vm create --nat)",
                ))
            image = Image(
                name=name,
                rootfs=str(final / pulled.rootfs.name),
                kernel=str(final / pulled.kernel.name) if pulled.kernel and not kernel else "",
                initrd=str(final / pulled.initrd.name) if pulled.initrd and not kernel
                else None,
                managed=True,
                created_at=time.time(),
                source=f"oci: {ref}",
                size_bytes=_usage(final),
                kernel_name=kernel or ("" if pulled.kernel else self._default_kernel),
                ssh_on_first_boot=not pulled.has_sshd,
                digest=pulled.digest,
            )
            self._store.put_image(image)
            progress(ProgressEvent(
                "image", f"image {name} ready in {time.monotonic() - started:.0f}s "
                f"({pulled.layers} layers, {format_size(pulled.downloaded_bytes)} downloaded)",
                1.0,
            ))
            return image


def _usage(path: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())
