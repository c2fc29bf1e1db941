"""API routes for the guest processes the daemon holds (daemon/guestprocs.py)."""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

from aiohttp import web

from banger.core import api
from banger.core.errors import BangerError, InvalidInput
from banger.daemon.apiwire import answer, body, parse
from banger.daemon.guestprocs import Dropped, GuestProcess
from banger.daemon.services import Services
from banger.host.agentsession import Output


def process_routes(services: Services) -> web.RouteTableDef:
    table = services.guest_processes
    routes = web.RouteTableDef()

    def process(request: web.Request) -> GuestProcess:
        try:
            pid = int(request.match_info["pid"])
        except ValueError as exc:
            raise InvalidInput("pid must be an integer") from exc
        return table.get(request.match_info["name"], pid)

    @routes.post("/v1/vms/{name}/processes")
    async def start_process(request: web.Request) -> web.Response:
        info = await table.start(request.match_info["name"], await _start_request(request))
        return answer({"process": dataclasses.asdict(info)}, status=201)

    @routes.get("/v1/vms/{name}/processes")
    async def list_processes(request: web.Request) -> web.Response:
        infos = table.list(request.match_info["name"])
        return answer({"processes": [dataclasses.asdict(info) for info in infos]})

    @routes.get("/v1/vms/{name}/processes/{pid}/output")
    async def attach_process(request: web.Request) -> web.StreamResponse:
        return await _output_stream(request, process(request))

    @routes.post("/v1/vms/{name}/processes/{pid}/stdin")
    async def process_stdin(request: web.Request) -> web.Response:
        target = process(request)
        data = await body(request, api.ProcessStdin)
        await target.send_stdin(data.data_bytes(), data.close)
        return web.Response(status=204)

    @routes.post("/v1/vms/{name}/processes/{pid}/signal")
    async def signal_process(request: web.Request) -> web.Response:
        target = process(request)
        await target.signal((await body(request, api.ProcessSignal)).signal)
        return web.Response(status=204)

    @routes.post("/v1/vms/{name}/processes/{pid}/resize")
    async def resize_process(request: web.Request) -> web.Response:
        target = process(request)
        size = await body(request, api.PtySize)
        await target.resize(size.cols, size.rows)
        return web.Response(status=204)

    return routes


async def _start_request(request: web.Request) -> api.StartProcess:
    """The body as StartProcess; its `pty` object is checked on its own (the schema check
    takes a nested dataclass only as an instance)."""
    try:
        data = await request.json() if request.can_read_body else {}
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"request body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput("request body must be a JSON object")
    pty = data.pop("pty", None)
    start = parse(api.StartProcess, data)
    if pty is None:
        return start
    if not isinstance(pty, dict):
        raise InvalidInput("pty must be an object {cols, rows}")
    return dataclasses.replace(start, pty=parse(api.PtySize, pty))


async def _output_stream(request: web.Request, process: GuestProcess) -> web.StreamResponse:
    """NDJSON lines {"stdout"|"stderr": base64} and {"dropped": n}, then {"result"} or
    {"error"}. A client that goes away only detaches: the process runs on."""
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)

    async def emit(item: Output | Dropped) -> None:
        line: dict[str, Any]
        if isinstance(item, Dropped):
            line = {"dropped": item.count}
        else:
            line = {"stderr" if item.stderr else "stdout": base64.b64encode(item.data).decode()}
        await response.write(json.dumps(line).encode() + b"\n")

    try:
        try:
            line: dict[str, Any] = {"result": dataclasses.asdict(await process.attach(emit))}
        except BangerError as exc:
            line = {"error": exc.to_dict()}
        await response.write(json.dumps(line).encode() + b"\n")
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client went away: the process runs on, its output kept for the next
    return response

