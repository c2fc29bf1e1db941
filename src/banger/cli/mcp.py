"""`banger mcp`: serve banger's sandboxes to MCP clients (the server is banger.mcp, loaded
only when this command runs: the SDK costs ~0.5 s to import)."""

from __future__ import annotations

import os

from banger.cli.context import Context
from banger.cli.spec import Command, Opt, echo
from banger.mcp.http import DEFAULT_HOST, DEFAULT_PORT


def _mcp(ctx: Context, http: bool, host: str, port: int, print_token: bool) -> None:
    """Serve banger's sandboxes to MCP clients (coding agents).

    Speaks the Model Context Protocol over stdin/stdout, for clients that start it
    themselves: {"mcpServers": {"banger": {"command": "banger", "args": ["mcp"]}}}.
    With --http, streamable HTTP on loopback instead; every request must carry
    `Authorization: Bearer TOKEN` (the token, kept in banger's config dir, is shown at
    start-up and by --print-token).
    """
    from banger.core.paths import paths_from_env
    from banger.mcp.http import load_token

    if print_token:
        echo(load_token(paths_from_env(os.environ).config_dir))
        return
    from banger.cli.workspace import guest_command
    from banger.mcp.server import build_server, serve_http, serve_stdio
    from banger.mcp.tools import SandboxTools

    server = build_server(SandboxTools(ctx.client, lambda vm: guest_command(ctx, vm)))
    if not http:
        serve_stdio(server)
        return
    from banger.mcp.http import bind, url_of

    sock = bind(host, port)
    token = load_token(paths_from_env(os.environ).config_dir)
    echo(f"banger mcp: serving {url_of(sock)} (Authorization: Bearer {token}); "
         "Ctrl-C stops", err=True)
    serve_http(server, sock, token)


mcp = Command("mcp", _mcp, [
    Opt("--http", flag=True,
        help="Serve streamable HTTP on loopback (token-guarded) instead of stdio."),
    Opt("--host", default=DEFAULT_HOST, metavar="ADDRESS",
        help="Loopback address to listen on with --http (127.0.0.1 or ::1)."),
    Opt("--port", type=int, default=DEFAULT_PORT, metavar="N",
        help=f"Port to listen on with --http (default: {DEFAULT_PORT}; 0: any free port)."),
    Opt("--print-token", flag=True, help="Print the HTTP bearer token (made if missing)."),
])
