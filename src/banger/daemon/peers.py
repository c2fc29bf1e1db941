"""Who is on the other end of an API connection, from the kernel (SO_PEERCRED).

The socket is 0600 in a 0700 directory, but a mode is one mistake away from open (a shared
XDG_RUNTIME_DIR, a umask-less copy, a socket handed on through a bind mount). bangerd checks
each request's peer as well: only its own user, or root, is served."""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

from banger.core.errors import Forbidden

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int


PEER = web.RequestKey("peer", Peer)


def peer_of(sock: socket.socket) -> Peer:
    pid, uid, gid = _UCRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    )
    return Peer(pid, uid, gid)


def serving_only(owner_uid: int) -> Middleware:
    """Middleware: requests from any uid but `owner_uid` and root get a 403 `forbidden`."""

    @web.middleware
    async def check_peer(request: web.Request, handler: Handler) -> web.StreamResponse:
        sock = request.transport.get_extra_info("socket") if request.transport else None
        peer = peer_of(sock) if sock is not None else None
        if peer is None or peer.uid not in (owner_uid, 0):
            who = f"uid {peer.uid}" if peer else "an unknown peer"
            error = Forbidden(f"bangerd of uid {owner_uid} does not serve {who}")
            return web.json_response({"error": error.to_dict()}, status=error.http_status,
                                     dumps=json.dumps)
        request[PEER] = peer
        return await handler(request)

    return check_peer
