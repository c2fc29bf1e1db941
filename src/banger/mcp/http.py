"""`banger mcp --http`: streamable HTTP on loopback, every request checked for a bearer
token. Anyone who can reach the port can otherwise drive sandboxes, and loopback is shared
by every local user and by the browser's pages (the SDK's Host/Origin checks also apply)."""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import secrets
import socket
import stat
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from banger.core.errors import InvalidInput, PermissionDenied

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TOKEN_FILE = "mcp-token"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7391
ENDPOINT = "/mcp"


def load_token(config_dir: Path) -> str:
    """The server's bearer token, made (random, file mode 0600) on first use."""
    path = config_dir / TOKEN_FILE
    config_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return _read_private(path)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def _read_private(path: Path) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd) as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o077 or st.st_uid != os.getuid():
            raise PermissionDenied(
                f"{path} must be a file of yours that only you can read",
                hint=f"chmod 600 {path} (or delete it: banger mcp makes a new token)",
            )
        token = f.read().strip()
    if len(token) < 32:
        raise PermissionDenied(
            f"{path} holds no usable token", hint=f"delete {path}: banger mcp makes a new one"
        )
    return token


def loopback_address(host: str) -> str:
    """`host` as an address to bind, if it is a loopback one: nothing else is served."""
    address = "127.0.0.1" if host == "localhost" else host
    try:
        loopback = ipaddress.ip_address(address).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise InvalidInput(
            f"refusing to serve MCP on {host}: only loopback addresses (127.0.0.1, ::1)",
            hint="MCP clients on other machines can run `banger mcp` over ssh (stdio)",
        )
    return address


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on loopback (port 0: any free port)."""
    address = loopback_address(host)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        raise InvalidInput(
            f"cannot listen on {address} port {port}: {exc.strerror}",
            hint="pick another with --port N (0: any free port)",
        ) from None
    sock.listen(128)
    return sock


def url_of(sock: socket.socket) -> str:
    address, port = sock.getsockname()[:2]
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}{ENDPOINT}"


def require_bearer(app: ASGIApp, token: str) -> ASGIApp:
    """`app`, answering 401 to every HTTP request without `Authorization: Bearer TOKEN`."""
    expected = f"Bearer {token}".encode()

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, expected):
                await _unauthorized(send)
                return
        await app(scope, receive, send)

    return guarded


async def _unauthorized(send: Send) -> None:
    body = json.dumps({"error": {
        "code": "unauthorized", "message": "missing or wrong bearer token",
        "hint": "send Authorization: Bearer TOKEN (banger mcp --print-token prints it)",
    }}).encode()
    await send({"type": "http.response.start", "status": 401, "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b'Bearer realm="banger"'),
    ]})
    await send({"type": "http.response.body", "body": body})
