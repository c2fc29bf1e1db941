"""`banger mcp --http`'s guard: the token file, loopback only, 401 without the token."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from banger.core.errors import InvalidInput, PermissionDenied
from banger.mcp.http import TOKEN_FILE, bind, load_token, loopback_address, require_bearer


def test_the_token_is_made_once_readable_only_by_its_owner(tmp_path: Path) -> None:
    config = tmp_path / "config"
    token = load_token(config)
    assert len(token) >= 32
    assert (config / TOKEN_FILE).stat().st_mode & 0o777 == 0o600
    assert load_token(config) == token


def test_a_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    load_token(tmp_path)
    (tmp_path / TOKEN_FILE).chmod(0o644)
    with pytest.raises(PermissionDenied, match="only you can read") as raised:
        load_token(tmp_path)
    assert raised.value.hint.startswith("chmod 600")


def test_a_symlinked_token_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").write_text("x" * 40)
    os.symlink(tmp_path / "elsewhere", tmp_path / TOKEN_FILE)
    with pytest.raises(OSError):
        load_token(tmp_path)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_addresses_are_served(host: str) -> None:
    assert loopback_address(host) in {"127.0.0.1", "127.0.0.2", "::1"}


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.org", ""])
def test_anything_beyond_loopback_is_refused(host: str) -> None:
    with pytest.raises(InvalidInput, match="only loopback"):
        loopback_address(host)


def test_a_taken_port_is_one_clear_error() -> None:
    first = bind("127.0.0.1", 0)
    try:
        with pytest.raises(InvalidInput, match=r"cannot listen on 127\.0\.0\.1 port "):
            bind("127.0.0.1", first.getsockname()[1])
    finally:
        first.close()


def request(app: Any, headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/mcp", "headers": headers}
    asyncio.run(app(scope, receive, send))
    return sent


async def inner(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"served"})


@pytest.mark.parametrize("headers", [
    [], [(b"authorization", b"Bearer wrong")], [(b"authorization", b"tok" * 12)],
])
def test_requests_without_the_token_get_401(headers: list[tuple[bytes, bytes]]) -> None:
    start, body = request(require_bearer(inner, "tok" * 12), headers)
    assert start["status"] == 401
    assert (b"www-authenticate", b'Bearer realm="banger"') in start["headers"]
    assert b"missing or wrong bearer token" in body["body"]


def test_requests_with_the_token_are_served() -> None:
    app = require_bearer(inner, "tok" * 12)
    start, body = request(app, [(b"authorization", b"Bearer " + b"tok" * 12)])
    assert (start["status"], body["body"]) == (200, b"served")
