"""The official MCP SDK's streamable HTTP client against `banger mcp --http`, run inside the
test's namespace (where the server's loopback is): prints one JSON object of what it saw.

    mcp_http_client.py URL TOKEN
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any

import anyio
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def session_answers(url: str, token: str | None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with anyio.fail_after(120):
        async with (
            httpx2.AsyncClient(headers=headers, timeout=120) as http,
            streamable_http_client(url, http_client=http) as (read, write, *_),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            tools = [tool.name for tool in (await session.list_tools()).tools]
            listed = await session.call_tool("sandbox_list", {})
            return {"tools": tools, "sandboxes": listed.structured_content}


async def refusal(url: str, token: str | None) -> str:
    try:
        await session_answers(url, token)
    except BaseException as exc:  # an ExceptionGroup from the client's task groups
        return type(exc).__name__
    return "served"


def raw_status(url: str) -> int:
    request = urllib.request.Request(url, data=b"{}", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def main() -> None:
    url, token = sys.argv[1], sys.argv[2]
    print(json.dumps({
        "with_token": anyio.run(session_answers, url, token),
        "without_token": anyio.run(refusal, url, None),
        "wrong_token": anyio.run(refusal, url, "x" * 43),
        "raw_status": raw_status(url),
    }))


if __name__ == "__main__":
    main()
