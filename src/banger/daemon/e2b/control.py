"""E2B's control plane (REST, camelCase JSON, errors as `{"code": HTTP status, "message"}`):
sandboxes created, listed, looked at, given a new timeout, paused, resumed and killed.
What banger does not serve (template builds, volumes, snapshots as templates, secrets,
logs) answers 501 with the reason, at once."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from banger.core import e2bwire
from banger.core.errors import BangerError, InvalidInput
from banger.daemon.e2b.sandboxes import SandboxService

UNSUPPORTED = {
    "templates": "template builds: build a banger image instead (`banger image pull/build`) "
                 "and pass its name as the template",
    "v2/templates": "template builds: build a banger image instead",
    "v3/templates": "template builds: build a banger image instead",
    "volumes": "volumes: banger sandboxes have their own persistent disk",
    "snapshots": "snapshots as templates: use `banger vm snapshot` and warm templates",
    "secrets": "secrets are not kept by banger's E2B endpoint",
}


def error(status: int, message: str) -> web.Response:
    return web.json_response({"code": status, "message": message}, status=status)


@web.middleware
async def rest_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BangerError as exc:
        return error(exc.http_status, exc.message)


def control_routes(sandboxes: SandboxService) -> web.RouteTableDef:
    routes = web.RouteTableDef()

    async def create(request: web.Request) -> web.Response:
        data = await _json(request)
        for unsupported in ("volumeMounts", "mcp", "network"):
            if data.get(unsupported):
                raise InvalidInput(f"{unsupported} is not supported by banger's E2B endpoint")
        metadata = data.get("metadata") or {}
        envs = data.get("envVars") or {}
        if not isinstance(metadata, dict) or not isinstance(envs, dict):
            raise InvalidInput("metadata and envVars must be objects of strings")
        record = await sandboxes.create(
            data.get("templateID"), _timeout(data), {str(k): str(v) for k, v in metadata.items()},
            {str(k): str(v) for k, v in envs.items()},
        )
        return web.json_response(e2bwire.created(record), status=201)

    async def connect(request: web.Request) -> web.Response:
        sandbox_id = request.match_info["id"]
        was_paused = sandboxes.get(sandbox_id).paused
        record = await sandboxes.connect(sandbox_id, _timeout(await _json(request)))
        return web.json_response(e2bwire.created(record), status=201 if was_paused else 200)

    async def list_sandboxes(request: web.Request) -> web.Response:
        states = {s for value in request.query.getall("state", []) for s in value.split(",")
                  if s}
        metadata = e2bwire.metadata_filter(request.query.get("metadata"))
        try:
            limit = max(1, min(int(request.query.get("limit", "100")), 1000))
        except ValueError as exc:
            raise InvalidInput("limit must be a number") from exc
        template = request.query.get("template")
        chosen = [r for r in sandboxes.all()
                  if e2bwire.matches(r, metadata, states, template)]
        shown, next_token = e2bwire.page(chosen, limit, request.query.get("nextToken"))
        headers = {"x-next-token": next_token} if next_token else {}
        return web.json_response([e2bwire.listed(r) for r in shown], headers=headers)

    @routes.get("/sandboxes/{id}")
    async def get_sandbox(request: web.Request) -> web.Response:
        return web.json_response(e2bwire.detail(sandboxes.get(request.match_info["id"])))

    @routes.delete("/sandboxes/{id}")
    async def kill(request: web.Request) -> web.Response:
        await sandboxes.kill(request.match_info["id"])
        return web.Response(status=204)

    @routes.post("/sandboxes/{id}/timeout")
    async def set_timeout(request: web.Request) -> web.Response:
        sandboxes.set_timeout(request.match_info["id"], _timeout(await _json(request)))
        return web.Response(status=204)

    @routes.post("/sandboxes/{id}/refreshes")
    async def refresh(request: web.Request) -> web.Response:
        data = await _json(request)
        sandboxes.set_timeout(request.match_info["id"],
                              e2bwire.timeout_of(data.get("duration")))
        return web.Response(status=204)

    @routes.post("/sandboxes/{id}/pause")
    async def pause(request: web.Request) -> web.Response:
        if sandboxes.get(request.match_info["id"]).paused:
            return error(409, f"sandbox {request.match_info['id']} is already paused")
        await sandboxes.pause(request.match_info["id"])
        return web.Response(status=204)

    @routes.get("/sandboxes/{id}/metrics")
    async def metrics(request: web.Request) -> web.Response:
        sandboxes.get(request.match_info["id"])
        return web.json_response([])

    async def unsupported(request: web.Request) -> web.Response:
        top = request.path.strip("/").split("/")
        key = "/".join(top[:2]) if top[0] in ("v2", "v3") else top[0]
        if len(top) > 2 and top[0] == "sandboxes":
            key = top[2] if top[2] in UNSUPPORTED else ""
        reason = UNSUPPORTED.get(key, "this call")
        return error(501, f"not supported by banger's E2B endpoint: {reason}")

    for path in ("/sandboxes", "/v2/sandboxes"):
        routes.post(path)(create)
        routes.get(path)(list_sandboxes)
        routes.post(path + "/{id}/connect")(connect)
    routes.post("/sandboxes/{id}/resume")(connect)
    routes.get("/sandboxes/{id}/logs")(unsupported)
    routes.route("*", "/sandboxes/{id}/snapshots")(unsupported)
    routes.post("/sandboxes/{id}/fork")(unsupported)
    for prefix in ("templates", "v2/templates", "v3/templates", "volumes", "snapshots",
                   "secrets"):
        routes.route("*", f"/{prefix}")(unsupported)
        routes.route("*", f"/{prefix}/{{rest:.*}}")(unsupported)
    return routes


async def _json(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = json.loads(await request.read() or b"{}")
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"request body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput("request body must be a JSON object")
    return data


def _timeout(data: dict[str, Any]) -> int:
    try:
        return e2bwire.timeout_of(data.get("timeout"))
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
