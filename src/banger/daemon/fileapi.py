"""API routes for files in running guests beyond read and write (daemon/guestfiles.py):
listings, stat, mkdir, remove, rename, and directories as tar streams."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator

from aiohttp import web

from banger.core import guestapi
from banger.core.agentframe import MAX_PAYLOAD
from banger.core.errors import InvalidInput
from banger.daemon.apiwire import answer, body, send_bytes
from banger.daemon.guestfiles import GuestFiles
from banger.daemon.services import Services


def file_routes(services: Services) -> web.RouteTableDef:
    files = GuestFiles(services.guest_exec)
    routes = web.RouteTableDef()

    @routes.get("/v1/vms/{name}/files/entries")
    async def list_entries(request: web.Request) -> web.StreamResponse:
        """{"entries": [...]}, written as the agent walks: errors found before the first
        batch (a missing path) are plain error answers; one after it cuts the answer short."""
        try:
            depth = int(request.query.get("depth", "1"))
        except ValueError as exc:
            raise InvalidInput("depth must be an integer") from exc
        batches = files.entries(request.match_info["name"], request.query.get("path", ""), depth)
        first: list[guestapi.FileEntry] = await anext(batches, [])
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"entries": [')
        written = 0

        async def write(batch: list[guestapi.FileEntry]) -> None:
            nonlocal written
            for entry in batch:
                prefix = b", " if written else b""
                await response.write(prefix + json.dumps(dataclasses.asdict(entry)).encode())
                written += 1

        await write(first)
        async for batch in batches:
            await write(batch)
        await response.write(b"]}")
        await response.write_eof()
        return response

    @routes.get("/v1/vms/{name}/files/stat")
    async def stat_path(request: web.Request) -> web.Response:
        entry = await files.stat(request.match_info["name"], request.query.get("path", ""))
        return answer({"entry": dataclasses.asdict(entry)})

    @routes.post("/v1/vms/{name}/files/mkdir")
    async def make_dir(request: web.Request) -> web.Response:
        data = await body(request, guestapi.MakeDir)
        entry = await files.mkdir(request.match_info["name"], data.path, data.mode)
        return answer({"entry": dataclasses.asdict(entry)})

    @routes.post("/v1/vms/{name}/files/remove")
    async def remove_path(request: web.Request) -> web.Response:
        data = await body(request, guestapi.RemovePath)
        await files.remove(request.match_info["name"], data.path, data.recursive)
        return web.Response(status=204)

    @routes.post("/v1/vms/{name}/files/rename")
    async def rename_path(request: web.Request) -> web.Response:
        data = await body(request, guestapi.RenamePath)
        entry = await files.rename(request.match_info["name"], data.source, data.destination)
        return answer({"entry": dataclasses.asdict(entry)})

    @routes.get("/v1/vms/{name}/files/tar")
    async def download_tar(request: web.Request) -> web.StreamResponse:
        """The directory's contents as tar; like a file read, an error after the first
        bytes cuts the answer short (the client's tar reader then fails)."""
        pieces = files.download_tar(request.match_info["name"], request.query.get("path", ""))
        first = await anext(pieces, b"")
        return await send_bytes(request, first, pieces, "application/x-tar")

    @routes.put("/v1/vms/{name}/files/tar")
    async def upload_tar(request: web.Request) -> web.Response:
        async def content() -> AsyncIterator[bytes]:
            async for piece in request.content.iter_chunked(MAX_PAYLOAD):
                yield piece

        await files.upload_tar(request.match_info["name"], request.query.get("path", ""),
                               content())
        return web.Response(status=204)

    return routes
