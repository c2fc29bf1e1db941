"""envd's Filesystem service over Connect, its plain-HTTP `/files` (download; upload as
multipart or octet-stream, gzip-encoded or not: aiohttp decodes Content-Encoding) and
`/health`. Directory watches poll the directory every WATCH_POLL seconds and report what
changed between two listings: creates, writes (size or mtime), chmods and removes."""

from __future__ import annotations

import asyncio
import posixpath
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, web

from banger.core.connect import RPCError
from banger.core.e2bfiles import Entry, watch_events
from banger.core.errors import BangerError
from banger.daemon.apiwire import send_bytes
from banger.daemon.e2b.connectwire import SANDBOX, as_rpc_error, streamed, unary, user_of
from banger.daemon.e2b.files import RECURSIVE_DEPTH, GuestFiles, resolve

PREFIX = "/filesystem.Filesystem/"
WATCH_POLL = 0.5
# An upload above this is refused (it is held in memory on its way to the guest).
MAX_UPLOAD = 512 * 1024 * 1024


@dataclass
class Watcher:
    vm: str
    path: str
    depth: int
    user: str
    seen: dict[str, Entry]


def filesystem_routes(files: GuestFiles) -> web.RouteTableDef:
    routes = web.RouteTableDef()
    watchers: dict[str, Watcher] = {}

    def path_of(request: web.Request, message: dict[str, Any], key: str = "path") -> str:
        return resolve(str(message.get(key) or ""), user_of(request))

    async def stat(request: web.Request, message: dict[str, Any]) -> dict[str, Any]:
        entry = await files.stat(request[SANDBOX].vm, path_of(request, message),
                                 user_of(request))
        return {"entry": entry.info()}

    async def make_dir(request: web.Request, message: dict[str, Any]) -> dict[str, Any]:
        entry = await files.make_dir(request[SANDBOX].vm, path_of(request, message),
                                     user_of(request))
        return {"entry": entry.info()}

    async def move(request: web.Request, message: dict[str, Any]) -> dict[str, Any]:
        entry = await files.move(request[SANDBOX].vm, path_of(request, message, "source"),
                                 path_of(request, message, "destination"), user_of(request))
        return {"entry": entry.info()}

    async def list_dir(request: web.Request, message: dict[str, Any]) -> dict[str, Any]:
        depth = max(1, int(message.get("depth") or 1))
        entries = await files.entries(request[SANDBOX].vm, path_of(request, message), depth,
                                      user_of(request))
        return {"entries": [entry.info() for entry in entries]}

    async def remove(request: web.Request, message: dict[str, Any]) -> dict[str, Any]:
        await files.remove(request[SANDBOX].vm, path_of(request, message), user_of(request))
        return {}

    async def new_watcher(request: web.Request, message: dict[str, Any]) -> Watcher:
        path = path_of(request, message)
        user = user_of(request)
        vm = request[SANDBOX].vm
        if (await files.stat(vm, path, user)).kind != "d":
            raise RPCError("invalid_argument", f"path '{path}' is not a directory")
        depth = RECURSIVE_DEPTH if message.get("recursive") else 1
        seen = await _listing(files, vm, path, depth, user)
        return Watcher(vm, path, depth, user, seen)

    async def changes(watcher: Watcher) -> list[dict[str, Any]]:
        now = await _listing(files, watcher.vm, watcher.path, watcher.depth, watcher.user)
        events = watch_events(watcher.path, watcher.seen, now)
        watcher.seen = now
        return events

    async def watch_dir(request: web.Request, message: dict[str, Any]) -> AsyncIterator[
            dict[str, Any]]:
        watcher = await new_watcher(request, message)
        yield {"start": {}}
        while True:
            await asyncio.sleep(WATCH_POLL)
            for event in await changes(watcher):
                yield {"filesystem": event}

    async def create_watcher(request: web.Request, message: dict[str, Any]) -> dict[str, Any]:
        watcher_id = secrets.token_hex(8)
        watchers[watcher_id] = await new_watcher(request, message)
        return {"watcherId": watcher_id}

    def watcher_of(request: web.Request, message: dict[str, Any]) -> str:
        watcher_id = str(message.get("watcherId") or "")
        found = watchers.get(watcher_id)
        if found is None or found.vm != request[SANDBOX].vm:
            raise RPCError("not_found", f"watcher {watcher_id!r} not found")
        return watcher_id

    async def watcher_events(request: web.Request, message: dict[str, Any]) -> dict[str, Any]:
        return {"events": await changes(watchers[watcher_of(request, message)])}

    async def remove_watcher(request: web.Request, message: dict[str, Any]) -> dict[str, Any]:
        watchers.pop(watcher_of(request, message))
        return {}

    for name, handler in (("Stat", stat), ("MakeDir", make_dir), ("Move", move),
                          ("ListDir", list_dir), ("Remove", remove),
                          ("CreateWatcher", create_watcher),
                          ("GetWatcherEvents", watcher_events),
                          ("RemoveWatcher", remove_watcher)):
        routes.post(PREFIX + name)(unary(handler))
    routes.post(PREFIX + "WatchDir")(streamed(watch_dir, {"keepalive": {}}))

    @routes.get("/files")
    async def download(request: web.Request) -> web.StreamResponse:
        user = _query_user(request)
        path = resolve(request.query.get("path", ""), user)
        try:
            pieces = files.read(request[SANDBOX].vm, path)
            first = await anext(pieces, b"")
        except (BangerError, RPCError) as exc:
            return _http_error(exc)
        return await send_bytes(
            request, first, pieces, "application/octet-stream",
            compress="gzip" in request.headers.get("Accept-Encoding", ""),
        )

    @routes.post("/files")
    async def upload(request: web.Request) -> web.Response:
        user = _query_user(request)
        vm = request[SANDBOX].vm
        written = []
        try:
            for path, data in await _uploaded(request, user):
                entry = await files.write(vm, path, data, user)
                written.append({"name": posixpath.basename(entry.path), "type": "file",
                                "path": entry.path})
        except (BangerError, RPCError) as exc:
            return _http_error(exc)
        return web.json_response(written)

    @routes.get("/health")
    async def health(_: web.Request) -> web.Response:
        return web.Response(status=204)

    return routes


async def _listing(files: GuestFiles, vm: str, path: str, depth: int,
                   user: str) -> dict[str, Entry]:
    return {entry.path: entry for entry in await files.entries(vm, path, depth, user)}


def _query_user(request: web.Request) -> str:
    return request.query.get("username") or user_of(request)


async def _uploaded(request: web.Request, user: str) -> list[tuple[str, bytes]]:
    """The (guest path, content) pairs of an upload."""
    query_path = request.query.get("path")
    if request.content_type.startswith("multipart/"):
        found = []
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            name = query_path or part.filename
            if not name:
                raise RPCError("invalid_argument", "an uploaded file needs a path")
            data = await part.read(decode=True)
            found.append((resolve(name, user), bytes(data)))
        return found
    if not query_path:
        raise RPCError("invalid_argument", "path is required")
    if (request.content_length or 0) > MAX_UPLOAD:
        raise RPCError("resource_exhausted", "upload too large")
    return [(resolve(query_path, user), await request.read())]


def _http_error(exc: BangerError | RPCError) -> web.Response:
    error = as_rpc_error(exc)
    return web.json_response({"code": error.http_status, "message": error.message},
                             status=error.http_status)
