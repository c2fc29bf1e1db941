"""The HTTP API on the daemon's Unix socket: the app, and the daemon's own routes. VM, image
and kernel routes live in vmapi.py, imageapi.py and kernelapi.py, guest files beyond read
and write in fileapi.py; what they share in apiwire.py; the request and response schema in
core/api.py."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from aiohttp import web

from banger._version import __version__
from banger.core.api import Status
from banger.core.models import to_dict
from banger.daemon import e2b
from banger.daemon.apiwire import TASKS, answer, errors
from banger.daemon.fileapi import file_routes
from banger.daemon.imageapi import image_routes
from banger.daemon.kernelapi import kernel_routes
from banger.daemon.processapi import process_routes
from banger.daemon.services import Services
from banger.daemon.vmapi import vm_routes


def make_app(services: Services, on_shutdown: Callable[[], None]) -> web.Application:
    app = web.Application(middlewares=[errors])
    app[TASKS] = set()
    app.add_routes(daemon_routes(services, on_shutdown))
    app.add_routes(vm_routes(services))
    app.add_routes(file_routes(services))
    app.add_routes(image_routes(services))
    app.add_routes(kernel_routes(services))
    app.add_routes(process_routes(services))
    e2b.install(app, e2b.build_endpoint(services))

    async def close_agent_channels(_: web.Application) -> None:
        await services.guest_processes.close()
        await services.guest_exec.close()

    app.on_cleanup.append(close_agent_channels)
    return app


def daemon_routes(services: Services, on_shutdown: Callable[[], None]) -> web.RouteTableDef:
    routes = web.RouteTableDef()

    @routes.get("/v1/status")
    async def status(_: web.Request) -> web.Response:
        return answer(to_dict(Status(
            pid=os.getpid(),
            version=__version__,
            socket=str(services.paths.socket),
            log=str(services.paths.daemon_log),
            state_dir=str(services.paths.state_dir),
            backend=services.profile.backend,
            accel=services.profile.accel,
            vms=len(services.vms.all()),
            network=services.network.mode.value,
        )))

    @routes.post("/v1/shutdown")
    async def shutdown(_: web.Request) -> web.Response:
        asyncio.get_running_loop().call_soon(on_shutdown)
        return answer({"ok": True})

    @routes.get("/v1/doctor")
    async def doctor(_: web.Request) -> web.Response:
        await services.vm_followers.nat.verify()
        return answer([to_dict(c) for c in services.doctor()])

    return routes
