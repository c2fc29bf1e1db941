"""API routes for images: the store, bundles (export/import), warm templates, promotion."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import PurePosixPath

from aiohttp import web

from banger.core import api
from banger.core.errors import MissingTool
from banger.core.models import to_dict
from banger.daemon.apiwire import answer, body, send_bytes, stream
from banger.daemon.imagebundle import ImageBundles
from banger.daemon.progress import Progress
from banger.daemon.services import Services

_UPLOAD_PIECE = 1 << 20
_MAX_FILE_NAME = 255


def image_routes(services: Services) -> web.RouteTableDef:
    images = services.images
    routes = web.RouteTableDef()

    @routes.get("/v1/images")
    async def list_images(_: web.Request) -> web.Response:
        return answer([to_dict(i) for i in images.all()])

    @routes.get("/v1/images/{name}")
    async def show_image(request: web.Request) -> web.Response:
        image = images.get(request.match_info["name"])
        # "template": the default backend's; "templates": every backend's that has one.
        described = {
            backend: templates.describe(image.name)
            for backend, templates in services.templates.items()
        }
        return answer({
            **to_dict(image), "template": described.get(services.profile.backend),
            "templates": {backend: t for backend, t in described.items() if t is not None},
        })

    @routes.post("/v1/images/pull")
    async def pull_image(request: web.Request) -> web.StreamResponse:
        data = await body(request, api.PullImage)
        return await stream(request, lambda progress: images.pull(
            data.name, progress, force=data.force, as_name=data.as_name, kernel=data.kernel,
        ))

    @routes.post("/v1/images/register")
    async def register_image(request: web.Request) -> web.Response:
        data = await body(request, api.RegisterImage)
        return answer(to_dict(images.register(data.name, data.rootfs, data.kernel, data.initrd)))

    @routes.delete("/v1/images/{name}")
    async def delete_image(request: web.Request) -> web.Response:
        force = request.query.get("force", "") in ("1", "true")
        name = request.match_info["name"]
        image = await images.delete_with_vms(name, services.vms) if force else images.delete(name)
        for templates in services.templates.values():
            templates.discard(image.name)
        return answer(to_dict(image))

    def bundles() -> ImageBundles:
        if services.bundles is None:
            raise MissingTool("image export/import are not available in this daemon")
        return services.bundles

    @routes.get("/v1/images/{name}/bundle")
    async def export_image(request: web.Request) -> web.StreamResponse:
        """The bundle's bytes as they are made; an error after the first cuts the answer
        short (the client then removes what it wrote)."""
        pieces = bundles().export(request.match_info["name"])
        async with contextlib.aclosing(pieces):
            first = await anext(pieces, b"")
            return await send_bytes(request, first, pieces, "application/octet-stream")

    @routes.post("/v1/images/bundle")
    async def import_image(request: web.Request) -> web.StreamResponse:
        """The request's body is the bundle; `as_name` and `file` (the client's file name,
        for the image's source) are in the query."""
        as_name = request.query.get("as_name") or None
        bundles().check_new_name(as_name)
        file_name = PurePosixPath(request.query.get("file", "")).name[:_MAX_FILE_NAME]

        async def content() -> AsyncIterator[bytes]:
            async for piece in request.content.iter_chunked(_UPLOAD_PIECE):
                yield piece

        return await stream(request, lambda progress: bundles().import_(
            content(), as_name, file_name or "upload", progress))

    @routes.post("/v1/images/{name}/warm")
    async def warm_image(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        data = await body(request, api.WarmImage)
        templates = services.templates_for(data.backend)

        async def warm(progress: Progress) -> dict[str, object]:
            if data.force:
                await templates.build(name, progress)
            else:
                await templates.ensure(name, progress)
            return {"image": name, "template": templates.describe(name)}

        return await stream(request, warm)

    @routes.delete("/v1/images/{name}/warm")
    async def unwarm_image(request: web.Request) -> web.Response:
        name = images.get(request.match_info["name"]).name
        services.templates_for(None)  # the same error as `image warm` where there are none
        deleted = [t.discard(name) for t in services.templates.values()]
        return answer({"image": name, "deleted": any(deleted)})

    @routes.post("/v1/images/{name}/promote")
    async def promote_image(request: web.Request) -> web.Response:
        return answer(to_dict(await images.promote(request.match_info["name"])))

    return routes
