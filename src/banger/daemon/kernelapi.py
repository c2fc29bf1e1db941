"""API routes for kernels."""

from __future__ import annotations

import dataclasses

from aiohttp import web

from banger.core import api
from banger.core.errors import MissingTool
from banger.core.models import to_dict
from banger.daemon.apiwire import answer, body, stream
from banger.daemon.kernels import KernelService
from banger.daemon.services import Services


def kernel_routes(services: Services) -> web.RouteTableDef:
    routes = web.RouteTableDef()

    def kernels() -> KernelService:
        if services.kernels is None:
            raise MissingTool("kernels are not available in this daemon")
        return services.kernels

    @routes.get("/v1/kernels")
    async def list_kernels(_: web.Request) -> web.Response:
        return answer([dataclasses.asdict(k) for k in kernels().list()])

    @routes.get("/v1/kernels/{name}")
    async def show_kernel(request: web.Request) -> web.Response:
        return answer(to_dict(kernels().get(request.match_info["name"])))

    @routes.post("/v1/kernels/pull")
    async def pull_kernel(request: web.Request) -> web.StreamResponse:
        data = await body(request, api.PullKernel)
        return await stream(
            request, lambda progress: kernels().pull(data.name, progress, force=data.force)
        )

    @routes.post("/v1/kernels/register")
    async def register_kernel(request: web.Request) -> web.Response:
        data = await body(request, api.RegisterKernel)
        kernel = kernels().register(
            data.name, data.vmlinuz, data.initrd, vmlinux=data.vmlinux, modules=data.modules,
        )
        return answer(to_dict(kernel))

    @routes.delete("/v1/kernels/{name}")
    async def delete_kernel(request: web.Request) -> web.Response:
        return answer(to_dict(kernels().delete(request.match_info["name"])))

    return routes
