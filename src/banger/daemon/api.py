"""The HTTP API on the daemon's Unix socket: JSON bodies, NDJSON streams for long operations,
errors as {"error": {"code", "message", "hint"}}."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from banger import __version__
from banger.core.errors import BangerError, InvalidInput
from banger.core.models import ProgressEvent, Workspace, to_dict
from banger.daemon.progress import Progress
from banger.daemon.services import Services
from banger.daemon.workspaces import WorkspaceService

log = logging.getLogger("banger.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Operations outlive the request that started them; keep a reference until they finish.
_TASKS = web.AppKey("tasks", set[asyncio.Task[None]])


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda v: json.dumps(v, default=str))


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BangerError as exc:
        return _json({"error": exc.to_dict()}, exc.http_status)
    except web.HTTPException:
        raise
    except Exception as exc:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return _json({"error": BangerError(f"internal error: {exc!r}",
                      hint="see bangerd.log").to_dict()}, 500)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"request body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput("request body must be a JSON object")
    return data


async def _stream(
    request: web.Request, operation: Callable[[Progress], Awaitable[Any]]
) -> web.StreamResponse:
    """Run `operation` and stream its progress events, then its result or error, as NDJSON.
    The operation runs to completion even if the client goes away: half-done work would be
    worse than finished work the user can delete."""
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def progress(event: ProgressEvent) -> None:
        queue.put_nowait({"event": to_dict(event)})

    async def run() -> None:
        try:
            result = await operation(progress)
            queue.put_nowait({"result": _plain(result)})
        except BangerError as exc:
            queue.put_nowait({"error": exc.to_dict()})
        except BaseException as exc:
            # Also on cancellation (daemon shutdown): the stream must always end.
            log.exception("operation failed")
            queue.put_nowait({"error": BangerError(f"internal error: {exc!r}",
                              hint="see bangerd.log").to_dict()})
            if not isinstance(exc, Exception):
                raise

    task = asyncio.create_task(run())
    request.app[_TASKS].add(task)
    task.add_done_callback(request.app[_TASKS].discard)
    client_gone = False
    while True:
        item = await queue.get()
        if not client_gone:
            try:
                await response.write(json.dumps(item, default=str).encode() + b"\n")
            except (ConnectionResetError, RuntimeError):
                client_gone = True
        if "result" in item or "error" in item:
            break
    if not client_gone:
        await response.write_eof()
    return response


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _opt_int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(f"{key} must be an integer")
    return value


def _opt_bool(data: dict[str, Any], key: str) -> bool | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise InvalidInput(f"{key} must be true or false")
    return value


def _opt_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{key} must be a string")
    return value


def _opt_str_list(data: dict[str, Any], key: str) -> list[str] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{key} must be a list of strings")
    return value


def make_app(services: Services, on_shutdown: Callable[[], None]) -> web.Application:
    app = web.Application(middlewares=[_errors])
    app[_TASKS] = set()
    vms = services.vms
    images = services.images
    workspaces = WorkspaceService(services.store, vms)
    routes = web.RouteTableDef()

    @routes.get("/v1/status")
    async def status(_: web.Request) -> web.Response:
        return _json({
            "pid": os.getpid(),
            "version": __version__,
            "socket": str(services.paths.socket),
            "log": str(services.paths.daemon_log),
            "state_dir": str(services.paths.state_dir),
            "backend": services.machine.backend,
            "accel": services.machine.accel,
            "vms": len(vms.list()),
        })

    @routes.post("/v1/shutdown")
    async def shutdown(_: web.Request) -> web.Response:
        asyncio.get_running_loop().call_soon(on_shutdown)
        return _json({"ok": True})

    @routes.get("/v1/doctor")
    async def doctor(_: web.Request) -> web.Response:
        await services.integration.nat.verify()
        return _json([to_dict(c) for c in services.doctor()])

    @routes.get("/v1/vms")
    async def list_vms(_: web.Request) -> web.Response:
        return _json([to_dict(vm) for vm in vms.list()])

    @routes.get("/v1/vms/{name}")
    async def show_vm(request: web.Request) -> web.Response:
        return _json(to_dict(vms.get(request.match_info["name"])))

    @routes.post("/v1/vms")
    async def create_vm(request: web.Request) -> web.StreamResponse:
        data = await _body(request)
        nat = _opt_bool(data, "nat") or False
        if nat:
            services.integration.nat.require()
        return await _stream(request, lambda progress: vms.create(
            name=_opt_str(data, "name"),
            image=_opt_str(data, "image"),
            vcpu=_opt_int(data, "vcpu"),
            memory_mib=_opt_int(data, "memory_mib"),
            disk_size=_opt_str(data, "disk_size"),
            start=bool(data.get("start", True)),
            progress=progress,
            login_check=data.get("ready", "login") != "sshd",
            nat=nat,
            backend=_opt_str(data, "backend"),
            kernel=_opt_str(data, "kernel"),
            cold=_opt_bool(data, "cold") or False,
            egress_allow=_opt_str_list(data, "egress_allow"),
            network_group=_opt_str(data, "network_group") or "",
        ))

    @routes.post("/v1/vms/{name}/start")
    async def start_vm(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        from_snapshot = bool(_opt_bool(await _body(request), "from_snapshot"))
        vms.get(name)
        return await _stream(
            request, lambda progress: vms.start(name, progress, from_snapshot=from_snapshot)
        )

    @routes.post("/v1/vms/{name}/pause")
    async def pause_vm(request: web.Request) -> web.Response:
        return _json(to_dict(await vms.pause(request.match_info["name"])))

    @routes.post("/v1/vms/{name}/resume")
    async def resume_vm(request: web.Request) -> web.Response:
        return _json(to_dict(await vms.resume(request.match_info["name"])))

    @routes.post("/v1/vms/{name}/snapshot")
    async def snapshot_vm(request: web.Request) -> web.Response:
        return _json(to_dict(await vms.snapshot(request.match_info["name"])))

    @routes.post("/v1/vms/{name}/restart")
    async def restart_vm(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        vms.get(name)
        return await _stream(request, lambda progress: vms.restart(name, progress))

    @routes.post("/v1/vms/{name}/stop")
    async def stop_vm(request: web.Request) -> web.Response:
        return _json(to_dict(await vms.stop(request.match_info["name"])))

    @routes.post("/v1/vms/{name}/kill")
    async def kill_vm(request: web.Request) -> web.Response:
        data = await _body(request)
        signal_name = _opt_str(data, "signal") or "KILL"
        return _json(to_dict(await vms.kill(request.match_info["name"], signal_name)))

    @routes.patch("/v1/vms/{name}")
    async def set_vm(request: web.Request) -> web.Response:
        data = await _body(request)
        nat = _opt_bool(data, "nat")
        if nat:
            services.integration.nat.require()
        vm = await vms.set(
            request.match_info["name"],
            vcpu=_opt_int(data, "vcpu"),
            memory_mib=_opt_int(data, "memory_mib"),
            disk_size=_opt_str(data, "disk_size"),
            nat=nat,
            egress_allow=_opt_str_list(data, "egress_allow"),
            network_group=_opt_str(data, "network_group"),
        )
        return _json(to_dict(vm))

    @routes.delete("/v1/vms/{name}")
    async def delete_vm(request: web.Request) -> web.Response:
        force = request.query.get("force", "") in ("1", "true")
        return _json(to_dict(await vms.delete(request.match_info["name"], force=force)))

    @routes.get("/v1/vms/{name}/logs")
    async def vm_logs(request: web.Request) -> web.Response:
        try:
            offset = int(request.query.get("offset", "0"))
        except ValueError as exc:
            raise InvalidInput("offset must be an integer") from exc
        data, next_offset = vms.console_log(request.match_info["name"], max(0, offset))
        return _json({"data": base64.b64encode(data).decode(), "offset": next_offset})

    @routes.get("/v1/vms/{name}/stats")
    async def vm_stats(request: web.Request) -> web.Response:
        return _json(_plain(await services.integration.stats.stats(request.match_info["name"])))

    @routes.get("/v1/vms/{name}/access")
    async def vm_access(request: web.Request) -> web.Response:
        return _json(to_dict(vms.access(request.match_info["name"])))

    @routes.get("/v1/vms/{name}/workspaces")
    async def list_workspaces(request: web.Request) -> web.Response:
        return _json([to_dict(w) for w in workspaces.list(request.match_info["name"])])

    @routes.get("/v1/vms/{name}/workspace")
    async def show_workspace(request: web.Request) -> web.Response:
        path = request.query.get("guest_path", "")
        return _json(to_dict(workspaces.get(request.match_info["name"], path)))

    @routes.put("/v1/vms/{name}/workspace")
    async def record_workspace(request: web.Request) -> web.Response:
        data = await _body(request)
        path = _opt_str(data, "guest_path")
        if not path:
            raise InvalidInput("guest_path is required")
        workspace = Workspace(
            guest_path=path,
            base_commit=_opt_str(data, "base_commit") or "",
            source=_opt_str(data, "source") or "",
            branch=_opt_str(data, "branch") or "",
            readonly=bool(_opt_bool(data, "readonly")),
        )
        return _json(to_dict(workspaces.record(request.match_info["name"], workspace)))

    @routes.get("/v1/images")
    async def list_images(_: web.Request) -> web.Response:
        return _json([to_dict(i) for i in images.list()])

    @routes.get("/v1/images/{name}")
    async def show_image(request: web.Request) -> web.Response:
        image = images.get(request.match_info["name"])
        # "template": the default backend's; "templates": every backend's that has one.
        described = {
            backend: templates.describe(image.name)
            for backend, templates in services.templates.items()
        }
        return _json({
            **to_dict(image), "template": described.get(services.machine.backend),
            "templates": {backend: t for backend, t in described.items() if t is not None},
        })

    @routes.post("/v1/images/pull")
    async def pull_image(request: web.Request) -> web.StreamResponse:
        data = await _body(request)
        name = _opt_str(data, "name")
        if not name:
            raise InvalidInput("name is required")
        force = bool(data.get("force", False))
        as_name, kernel = _opt_str(data, "as_name"), _opt_str(data, "kernel")
        return await _stream(request, lambda progress: images.pull(
            name, progress, force=force, as_name=as_name, kernel=kernel,
        ))

    @routes.post("/v1/images/register")
    async def register_image(request: web.Request) -> web.Response:
        data = await _body(request)
        name, rootfs, kernel = (_opt_str(data, k) for k in ("name", "rootfs", "kernel"))
        if not (name and rootfs and kernel):
            raise InvalidInput("name, rootfs and kernel are required")
        image = images.register(name, rootfs, kernel, _opt_str(data, "initrd"))
        return _json(to_dict(image))

    @routes.delete("/v1/images/{name}")
    async def delete_image(request: web.Request) -> web.Response:
        force = request.query.get("force", "") in ("1", "true")
        name = request.match_info["name"]
        image = await images.delete_with_vms(name, vms) if force else images.delete(name)
        for templates in services.templates.values():
            templates.discard(image.name)
        return _json(to_dict(image))

    app.add_routes(routes)
    from banger.daemon.imageapi import image_routes

    app.add_routes(image_routes(services))
    return app
