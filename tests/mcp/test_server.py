"""The MCP server through the official SDK's own client: in-process, and over streamable
HTTP on loopback with and without the token (against the fake client; tests/e2e/test_mcp.py
drives real guests)."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp.types import TextContent

from banger.client.workspace import shell_command
from banger.core.errors import GuestPathNotFound
from banger.core.paths import Paths
from banger.mcp.http import bind, url_of
from banger.mcp.server import build_server, reported, serve_http
from banger.mcp.tools import TOOL_NAMES, SandboxTools
from tests.support.cli import FakeClient

TOKEN = "t" * 43


@pytest.fixture
def fake(tmp_path: Path) -> FakeClient:
    return FakeClient(Paths(tmp_path / "c", tmp_path / "s", tmp_path / "k", tmp_path / "r"))


def server_of(fake: FakeClient) -> Any:
    return build_server(SandboxTools(fake, lambda vm: shell_command))  # type: ignore[arg-type]


def text_of(result: Any) -> str:
    [content] = result.content
    assert isinstance(content, TextContent)
    return content.text


def test_tools_are_listed_with_their_schemas(fake: FakeClient) -> None:
    async def main() -> None:
        async with Client(server_of(fake)) as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            assert list(tools) == list(TOOL_NAMES)
            exec_tool = tools["sandbox_exec"]
            assert exec_tool.description and "exit code" in exec_tool.description
            assert exec_tool.input_schema["required"] == ["name"]
            assert "cwd" in exec_tool.input_schema["properties"]
            listing = tools["sandbox_list"].annotations
            deletion = tools["sandbox_delete"].annotations
            assert listing and listing.read_only_hint
            assert deletion and deletion.destructive_hint

    anyio.run(main)


def test_banger_errors_are_tool_errors_with_message_and_hint(fake: FakeClient) -> None:
    fake.fail["read_file"] = GuestPathNotFound("/nope: no such file in dev", hint="check it")

    async def main() -> None:
        async with Client(server_of(fake)) as client:
            result = await client.call_tool("sandbox_read_file", {"name": "dev", "path": "/nope"})
            assert result.is_error
            text = text_of(result)
            assert "guest_path_missing: /nope: no such file in dev\nhint: check it" in text
            assert "Traceback" not in text
            bad = await client.call_tool("sandbox_exec", {"name": "dev"})
            assert bad.is_error and "exactly one of command and argv" in text_of(bad)

    anyio.run(main)


@pytest.fixture
def http_url(fake: FakeClient) -> Iterator[str]:
    sock = bind("127.0.0.1", 0)
    url = url_of(sock)
    threading.Thread(target=serve_http, args=(server_of(fake), sock, TOKEN), daemon=True).start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=5)
        except urllib.error.HTTPError:
            break  # answering (401)
        except OSError:
            time.sleep(0.05)
    yield url


async def list_sandboxes(url: str, token: str | None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with anyio.fail_after(30):
        async with (
            httpx2.AsyncClient(headers=headers) as http,
            streamable_http_client(url, http_client=http) as (read, write, *_),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return await session.call_tool("sandbox_list", {})


def test_http_serves_the_sdk_client_with_the_token(http_url: str) -> None:
    result = anyio.run(list_sandboxes, http_url, TOKEN)
    assert not result.is_error
    assert [s["name"] for s in result.structured_content["sandboxes"]] == ["dev", "idle"]


@pytest.mark.parametrize("token", [None, "wrong"])
def test_http_refuses_the_sdk_client_without_the_token(http_url: str, token: str | None) -> None:
    with pytest.raises(ExceptionGroup) as raised:  # from the client's task groups
        anyio.run(list_sandboxes, http_url, token)
    assert raised.group_contains(MCPError)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(http_url, data=b"{}", method="POST"))
    assert refused.value.code == 401


def test_os_errors_are_tool_errors_other_exceptions_stay_the_sdks() -> None:
    def write_patch() -> dict[str, Any]:
        raise PermissionError(13, "Permission denied", "/etc/x.patch")

    with pytest.raises(ToolError, match=r"^host_error: \[Errno 13\] Permission denied: "):
        reported(write_patch)()

    def broken() -> dict[str, Any]:
        raise KeyError("internal")

    with pytest.raises(KeyError):  # the SDK answers "Error executing tool" and logs it
        reported(broken)()
