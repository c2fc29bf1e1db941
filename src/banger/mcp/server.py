"""The MCP server: banger's sandbox tools (banger.mcp.tools) on the official `mcp` SDK's
MCPServer, over stdio or streamable HTTP on loopback (banger.mcp.http guards it).

Tool functions are sync and blocking (the client speaks HTTP over bangerd's socket); the
SDK runs each call in a worker thread, so calls run at once and the event loop stays free."""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

from banger import __version__
from banger.core.errors import BangerError
from banger.mcp.tools import TOOL_NAMES, SandboxTools

INSTRUCTIONS = """\
banger sandboxes are microVMs with their own kernel, root filesystem and network, made and
deleted in seconds. Create one with sandbox_create, run commands in it with sandbox_exec,
move files with sandbox_read_file/sandbox_write_file, copy a local git checkout in with
sandbox_copy_workspace and get the changes back as a patch with sandbox_export_workspace.
Delete sandboxes you no longer need with sandbox_delete. A sandbox reaches no network but
the host's DNS unless created with nat."""


# Hints for clients that ask before a tool changes something (the rest: may change the guest).
ANNOTATIONS = {
    "sandbox_list": ToolAnnotations(read_only_hint=True),
    "sandbox_read_file": ToolAnnotations(read_only_hint=True),
    "sandbox_create": ToolAnnotations(destructive_hint=False),
    "sandbox_export_workspace": ToolAnnotations(destructive_hint=False),
    "sandbox_delete": ToolAnnotations(destructive_hint=True),
}


def tool_error(exc: BangerError) -> ToolError:
    """banger's one-line message and its hint, as the CLI prints them, for the model."""
    text = f"{exc.message}\nhint: {exc.hint}" if exc.hint else exc.message
    return ToolError(f"{exc.code}: {text}")


def reported(method: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """`method` with banger's errors (and the OS's, e.g. a patch file that cannot be
    written) raised as tool errors: the SDK hides any other exception's text."""

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return method(*args, **kwargs)
        except BangerError as exc:
            raise tool_error(exc) from None
        except OSError as exc:
            raise ToolError(f"host_error: {exc}") from None

    return call


def build_server(tools: SandboxTools) -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer(
        "banger", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING",
    )
    for name in TOOL_NAMES:
        server.add_tool(
            reported(getattr(tools, name)), name=name, annotations=ANNOTATIONS.get(name)
        )
    return server


def serve_stdio(server: MCPServer[Any]) -> None:
    import anyio

    anyio.run(server.run_stdio_async)


def serve_http(server: MCPServer[Any], sock: socket.socket, token: str) -> None:
    """Serve streamable HTTP on `sock` (bound to loopback by banger.mcp.http.bind) until
    interrupted; requests without the bearer token get 401."""
    import uvicorn

    from banger.mcp.http import ENDPOINT, require_bearer

    host = sock.getsockname()[0]
    app = server.streamable_http_app(streamable_http_path=ENDPOINT, host=host)
    config = uvicorn.Config(
        require_bearer(app, token), log_level="warning", access_log=False, lifespan="on",
    )
    import anyio

    anyio.run(uvicorn.Server(config).serve, [sock])
