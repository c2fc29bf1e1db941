"""API routes for kernels and image promotion (the image basics live in api.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import socket
import struct
from dataclasses import replace
from pathlib import Path

from aiohttp import web

from banger.core.errors import InvalidInput, MissingTool, ResourceBusy
from banger.core.models import Image, to_dict
from banger.daemon.imagebundle import ImageBundles, Peer
from banger.daemon.kernels import KernelService
from banger.daemon.progress import Progress
from banger.daemon.services import Services


def image_routes(services: Services) -> web.RouteTableDef:
    from banger.daemon.api import _body, _json, _opt_str, _stream

    routes = web.RouteTableDef()

    def kernels() -> KernelService:
        if services.kernels is None:
            raise MissingTool("kernels are not available in this daemon")
        return services.kernels

    @routes.get("/v1/kernels")
    async def list_kernels(_: web.Request) -> web.Response:
        return _json([dataclasses.asdict(k) for k in kernels().list()])

    @routes.get("/v1/kernels/{name}")
    async def show_kernel(request: web.Request) -> web.Response:
        return _json(to_dict(kernels().get(request.match_info["name"])))

    @routes.post("/v1/kernels/pull")
    async def pull_kernel(request: web.Request) -> web.StreamResponse:
        data = await _body(request)
        name = _opt_str(data, "name")
        if not name:
            raise InvalidInput("name is required")
        force = bool(data.get("force", False))
        return await _stream(request, lambda progress: kernels().pull(name, progress,
                                                                      force=force))

    @routes.post("/v1/kernels/register")
    async def register_kernel(request: web.Request) -> web.Response:
        data = await _body(request)
        name, vmlinuz = _opt_str(data, "name"), _opt_str(data, "vmlinuz")
        if not (name and vmlinuz):
            raise InvalidInput("name and vmlinuz are required")
        kernel = kernels().register(
            name, vmlinuz, _opt_str(data, "initrd"), vmlinux=_opt_str(data, "vmlinux"),
            modules=_opt_str(data, "modules"),
        )
        return _json(to_dict(kernel))

    @routes.delete("/v1/kernels/{name}")
    async def delete_kernel(request: web.Request) -> web.Response:
        return _json(to_dict(kernels().delete(request.match_info["name"])))

    def bundles() -> ImageBundles:
        if services.bundles is None:
            raise MissingTool("image export/import are not available in this daemon")
        return services.bundles

    @routes.post("/v1/images/{name}/export")
    async def export_image(request: web.Request) -> web.StreamResponse:
        data = await _body(request)
        path = _opt_str(data, "path")
        if not path:
            raise InvalidInput("path is required")
        name, peer = request.match_info["name"], peer_of(request)
        services.images.get(name)
        return await _stream(request, lambda progress: bundles().export(
            name, path, peer, progress))

    @routes.post("/v1/images/import")
    async def import_image(request: web.Request) -> web.StreamResponse:
        data = await _body(request)
        path = _opt_str(data, "path")
        if not path:
            raise InvalidInput("path is required")
        as_name, peer = _opt_str(data, "as_name"), peer_of(request)
        return await _stream(request, lambda progress: bundles().import_(
            path, as_name, peer, progress))

    @routes.post("/v1/images/{name}/warm")
    async def warm_image(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        data = await _body(request)
        templates = services.templates_for(_opt_str(data, "backend"))

        async def warm(progress: Progress) -> dict[str, object]:
            if bool(data.get("force", False)):
                await templates.build(name, progress)
            else:
                await templates.ensure(name, progress)
            return {"image": name, "template": templates.describe(name)}

        return await _stream(request, warm)

    @routes.delete("/v1/images/{name}/warm")
    async def unwarm_image(request: web.Request) -> web.Response:
        name = services.images.get(request.match_info["name"]).name
        services.templates_for(None)  # the same error as `image warm` where there are none
        deleted = [t.discard(name) for t in services.templates.values()]
        return _json({"image": name, "deleted": any(deleted)})

    @routes.post("/v1/images/{name}/promote")
    async def promote_image(request: web.Request) -> web.Response:
        image = await promote(services, request.match_info["name"])
        return _json(to_dict(image))

    return routes


def peer_of(request: web.Request) -> Peer | None:
    """The requesting process's uid/gid (SO_PEERCRED on the Unix socket)."""
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    _, uid, gid = struct.unpack("3i", raw)
    return Peer(uid, gid)


async def promote(services: Services, name: str) -> Image:
    """Copy a registered image's files into banger's own storage; the record then points
    there (and `image delete` removes them). The originals are left alone."""
    image = services.images.get(name)
    if image.managed:
        raise InvalidInput(f"image {name!r} is already managed by banger")
    users = services.vms.images_in_use(name)
    if users:
        # Their disks are overlays on the original rootfs path.
        raise ResourceBusy(f"image {name!r} is used by VMs: {', '.join(users)}",
                           hint="delete those VMs first")
    final = services.paths.images_dir / name
    staging = services.paths.images_dir / f".{name}.promoting"
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
    services.store.put_image(promoted)
    return promoted


def sparse_copy(source: Path, target: Path) -> None:
    """Copy keeping holes (root filesystems are mostly sparse)."""
    with open(source, "rb") as src, open(target, "wb") as dst:
        size = os.fstat(src.fileno()).st_size
        offset = 0
        while offset < size:
            try:
                data_start = os.lseek(src.fileno(), offset, os.SEEK_DATA)
            except OSError:  # only a hole is left
                break
            hole = os.lseek(src.fileno(), data_start, os.SEEK_HOLE)
            src.seek(data_start)
            dst.seek(data_start)
            remaining = hole - data_start
            while remaining > 0:
                chunk = src.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                dst.write(chunk)
                remaining -= len(chunk)
            offset = hole
        dst.truncate(size)
