"""API routes for the guest processes the daemon holds (daemon/guestprocs.py)."""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

from aiohttp import web

from banger.core import guestapi
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
    async def start_process(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        info = await table.start(name, await _start_request(request))
        if request.query.get("attach") not in ("1", "true"):
            return answer({"process": dataclasses.asdict(info)}, status=201)
        # Started and attached to in one request (what `banger vm exec` does): the output
        # stream, its first line the process.
        return await _output_stream(request, table.get(name, info.pid),
                                    {"process": dataclasses.asdict(info)})

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
        data = await body(request, guestapi.ProcessStdin)
        await target.send_stdin(data.data_bytes(), data.close)
        return web.Response(status=204)

    @routes.post("/v1/vms/{name}/processes/{pid}/signal")
    async def signal_process(request: web.Request) -> web.Response:
        target = process(request)
        await target.signal((await body(request, guestapi.ProcessSignal)).signal)
        return web.Response(status=204)

    @routes.post("/v1/vms/{name}/processes/{pid}/resize")
    async def resize_process(request: web.Request) -> web.Response:
        target = process(request)
        size = await body(request, guestapi.PtySize)
        await target.resize(size.cols, size.rows)
        return web.Response(status=204)

    return routes


async def _start_request(request: web.Request) -> guestapi.StartProcess:
    """The body as StartProcess; its `pty` object is checked on its own (the schema check
    takes a nested dataclass only as an instance)."""
    try:
        data = await request.json() if request.can_read_body else {}
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"request body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput("request body must be a JSON object")
    pty = data.pop("pty", None)
    start = parse(guestapi.StartProcess, data)
    if pty is None:
        return start
    if not isinstance(pty, dict):
        raise InvalidInput("pty must be an object {cols, rows}")
    return dataclasses.replace(start, pty=parse(guestapi.PtySize, pty))


async def _output_stream(request: web.Request, process: GuestProcess,
                         first: dict[str, Any] | None = None) -> web.StreamResponse:
    """NDJSON lines (after `first`, if given) {"stdout"|"stderr": base64} and {"dropped":
    n}, then {"result"} or {"error"}. A client that goes away only detaches: the process
    runs on."""
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
        if first is not None:
            await response.write(json.dumps(first).encode() + b"\n")
        try:
            line: dict[str, Any] = {"result": dataclasses.asdict(await process.attach(emit))}
        except BangerError as exc:
            line = {"error": exc.to_dict()}
        await response.write(json.dumps(line).encode() + b"\n")
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client went away: the process runs on, its output kept for the next
    return response

