"""`banger mcp`: serve banger's sandboxes to MCP clients. The server (banger.mcp) loads only
when it starts: the SDK and its web stack took 2.7 s to import on the 2-core test machine,
this module 0.06 s (so `banger mcp --help` and --print-token stay fast)."""

from __future__ import annotations

import os

from banger.cli.context import Context
from banger.cli.spec import Command, Opt, echo
from banger.core.errors import InvalidInput
from banger.mcp.http import DEFAULT_HOST, DEFAULT_PORT

TYPE_CHECKING = False  # not typing's: see banger.core.xdg
if TYPE_CHECKING:
    from typing import Any

    from mcp.server.mcpserver import MCPServer


def _mcp(ctx: Context, http: bool, host: str, port: int, print_token: bool) -> None:
    """Serve banger's sandboxes to MCP clients (coding agents).

    Speaks the Model Context Protocol over stdin/stdout, for clients that start it
    themselves: {"mcpServers": {"banger": {"command": "banger", "args": ["mcp"]}}}.
    With --http, streamable HTTP on loopback instead; every request must carry
    `Authorization: Bearer TOKEN` (the token, kept in banger's config dir, is shown at
    start-up and by --print-token).
    """
    if print_token:
        echo(_token())
        return
    if http:
        _serve_http(ctx, host, port)
        return
    if (host, port) != (DEFAULT_HOST, DEFAULT_PORT):
        raise InvalidInput("--host and --port need --http", hint="banger mcp --http --port N")
    from banger.mcp.server import serve_stdio

    serve_stdio(_server(ctx))


def _serve_http(ctx: Context, host: str, port: int) -> None:
    from banger.mcp.http import bind, url_of
    from banger.mcp.server import serve_http

    sock = bind(host, port)  # first: a refused address costs nothing else
    token = _token()
    server = _server(ctx)
    echo(f"banger mcp: serving {url_of(sock)} (Authorization: Bearer {token}); "
         "Ctrl-C stops", err=True)
    serve_http(server, sock, token)


def _server(ctx: Context) -> MCPServer[Any]:
    from banger.cli.workspace import guest_command
    from banger.mcp.server import build_server
    from banger.mcp.tools import SandboxTools

    return build_server(SandboxTools(ctx.client, lambda vm: guest_command(ctx, vm)))


def _token() -> str:
    from banger.core.paths import paths_from_env
    from banger.mcp.http import load_token

    return load_token(paths_from_env(os.environ).config_dir)


mcp = Command("mcp", _mcp, [
    Opt("--http", flag=True,
        help="Serve streamable HTTP on loopback (token-guarded) instead of stdio."),
    Opt("--host", default=DEFAULT_HOST, metavar="ADDRESS",
        help="Loopback address to listen on with --http (127.0.0.1 or ::1)."),
    Opt("--port", type=int, default=DEFAULT_PORT, metavar="N",
        help=f"Port to listen on with --http (default: {DEFAULT_PORT}; 0: any free port)."),
    Opt("--print-token", flag=True, help="Print the HTTP bearer token (made if missing)."),
])
