"""API routes for VMs and their workspaces."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

from aiohttp import web

from banger.core import api, guestapi
from banger.core.agentframe import MAX_PAYLOAD
from banger.core.errors import InvalidInput
from banger.core.models import Workspace, to_dict
from banger.daemon.apiwire import answer, body, exec_stream, plain, send_bytes, stream
from banger.daemon.services import Services
from banger.daemon.workspaces import WorkspaceService


def vm_routes(services: Services) -> web.RouteTableDef:
    vms = services.vms
    workspaces = WorkspaceService(services.store, vms)
    routes = web.RouteTableDef()

    @routes.get("/v1/vms")
    async def list_vms(_: web.Request) -> web.Response:
        return answer([to_dict(vm) for vm in vms.all()])

    @routes.get("/v1/vms/{name}")
    async def show_vm(request: web.Request) -> web.Response:
        return answer(to_dict(vms.get(request.match_info["name"])))

    @routes.post("/v1/vms")
    async def create_vm(request: web.Request) -> web.StreamResponse:
        data = await body(request, api.CreateVM)
        if data.nat:
            services.vm_followers.require_nat()
        return await stream(request, lambda progress: vms.create(
            name=data.name,
            image=data.image,
            vcpu=data.vcpu,
            memory_mib=data.memory_mib,
            disk_size=data.disk_size,
            start=data.start,
            progress=progress,
            login_check=data.waits_for_login,
            agent_ready=data.ready == "agent",
            nat=data.nat,
            backend=data.backend,
            kernel=data.kernel,
            cold=data.cold,
            egress_allow=data.egress_allow,
            network_group=data.network_group,
        ))

    @routes.post("/v1/vms/{name}/start")
    async def start_vm(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        data = await body(request, api.StartVM)
        vms.get(name)
        return await stream(
            request, lambda progress: vms.start(name, progress, from_snapshot=data.from_snapshot)
        )

    @routes.post("/v1/vms/{name}/pause")
    async def pause_vm(request: web.Request) -> web.Response:
        return answer(to_dict(await vms.pause(request.match_info["name"])))

    @routes.post("/v1/vms/{name}/resume")
    async def resume_vm(request: web.Request) -> web.Response:
        return answer(to_dict(await vms.resume(request.match_info["name"])))

    @routes.post("/v1/vms/{name}/snapshot")
    async def snapshot_vm(request: web.Request) -> web.Response:
        return answer(to_dict(await vms.snapshot(request.match_info["name"])))

    @routes.post("/v1/vms/{name}/restart")
    async def restart_vm(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        vms.get(name)
        return await stream(request, lambda progress: vms.restart(name, progress))

    @routes.post("/v1/vms/{name}/stop")
    async def stop_vm(request: web.Request) -> web.Response:
        return answer(to_dict(await vms.stop(request.match_info["name"])))

    @routes.post("/v1/vms/{name}/kill")
    async def kill_vm(request: web.Request) -> web.Response:
        data = await body(request, api.KillVM)
        return answer(to_dict(await vms.kill(request.match_info["name"], data.signal)))

    @routes.patch("/v1/vms/{name}")
    async def set_vm(request: web.Request) -> web.Response:
        data = await body(request, api.SetVM)
        if data.nat:
            services.vm_followers.require_nat()
        vm = await vms.set(
            request.match_info["name"], vcpu=data.vcpu, memory_mib=data.memory_mib,
            disk_size=data.disk_size, nat=data.nat, egress_allow=data.egress_allow,
            network_group=data.network_group,
        )
        return answer(to_dict(vm))

    @routes.delete("/v1/vms/{name}")
    async def delete_vm(request: web.Request) -> web.Response:
        force = request.query.get("force", "") in ("1", "true")
        return answer(to_dict(await vms.delete(request.match_info["name"], force=force)))

    @routes.post("/v1/vms/{name}/exec")
    async def exec_in_vm(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        data = await body(request, guestapi.ExecVM)
        vms.access(name)  # a stopped VM is a plain error answer, before the stream starts
        return await exec_stream(request, lambda emit: services.guest_exec.run(name, data, emit))

    @routes.get("/v1/vms/{name}/files")
    async def read_guest_file(request: web.Request) -> web.StreamResponse:
        """The file's bytes. Errors found before the first byte (a missing path) are plain
        error answers; one after it cuts the response short."""
        pieces = services.guest_exec.read_file(
            request.match_info["name"], request.query.get("path", "")
        )
        first = await anext(pieces, b"")
        return await send_bytes(request, first, pieces, "application/octet-stream")

    @routes.put("/v1/vms/{name}/files")
    async def write_guest_file(request: web.Request) -> web.Response:
        path = request.query.get("path", "")
        try:
            mode = int(request.query.get("mode", "644"), 8)
        except ValueError as exc:
            raise InvalidInput("mode must be octal, e.g. 644") from exc
        if not 0 <= mode <= 0o7777:
            raise InvalidInput("mode must be octal, e.g. 644")
        size = 0

        async def content() -> AsyncIterator[bytes]:
            nonlocal size
            async for piece in request.content.iter_chunked(MAX_PAYLOAD):
                size += len(piece)
                yield piece

        owner = request.query.get("owner") or None
        await services.guest_exec.write_file(
            request.match_info["name"], path, content(), mode, owner
        )
        return answer({"path": path, "size": size})

    @routes.get("/v1/vms/{name}/logs")
    async def vm_logs(request: web.Request) -> web.Response:
        try:
            offset = int(request.query.get("offset", "0"))
        except ValueError as exc:
            raise InvalidInput("offset must be an integer") from exc
        data, next_offset = vms.console_log(request.match_info["name"], max(0, offset))
        return answer(to_dict(api.ConsoleLog(
            data=base64.b64encode(data).decode(), offset=next_offset
        )))

    @routes.get("/v1/vms/{name}/stats")
    async def vm_stats(request: web.Request) -> web.Response:
        return answer(plain(await services.vm_followers.stats.stats(request.match_info["name"])))

    @routes.get("/v1/vms/{name}/access")
    async def vm_access(request: web.Request) -> web.Response:
        return answer(to_dict(await vms.login_access(request.match_info["name"])))

    @routes.get("/v1/vms/{name}/workspaces")
    async def list_workspaces(request: web.Request) -> web.Response:
        return answer([to_dict(w) for w in workspaces.of_vm(request.match_info["name"])])

    @routes.get("/v1/vms/{name}/workspace")
    async def show_workspace(request: web.Request) -> web.Response:
        path = request.query.get("guest_path", "")
        return answer(to_dict(workspaces.get(request.match_info["name"], path)))

    @routes.put("/v1/vms/{name}/workspace")
    async def record_workspace(request: web.Request) -> web.Response:
        data = await body(request, api.RecordWorkspace)
        workspace = Workspace(
            guest_path=data.guest_path, base_commit=data.base_commit, source=data.source,
            branch=data.branch, readonly=data.readonly,
        )
        return answer(to_dict(workspaces.record(request.match_info["name"], workspace)))

    return routes
