"""`banger mcp` end to end, driven by the official MCP SDK's own client against real guests:
over stdio (the SDK starts the server), then over streamable HTTP with and without the
token. One VM in all, made and deleted through the MCP tools themselves."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import TextContent

from tests.e2e.conftest import BANGER, BangerEnv

pytestmark = pytest.mark.e2e
VM = "mcp"
HTTP_CLIENT = Path(__file__).parent / "mcp_http_client.py"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Host", "GIT_AUTHOR_EMAIL": "host@example.test",
    "GIT_COMMITTER_NAME": "Host", "GIT_COMMITTER_EMAIL": "host@example.test",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env={**os.environ, **GIT_ENV}).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text("*.log\n")
    (root / "app.py").write_text("print('v1')\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "v1")
    (root / "draft.txt").write_text("uncommitted, copied too\n")
    (root / "debug.log").write_text("ignored, not copied\n")
    return root


@pytest.fixture
def cleanup(banger: BangerEnv) -> Iterator[None]:
    """The VM is the test's own to delete; this deletes it when the test failed first."""
    yield
    banger.run("vm", "delete", "--force", VM, check=False)


def text_of(result: Any) -> str:
    [content] = result.content
    assert isinstance(content, TextContent)
    return str(content.text)


class Tools:
    def __init__(self, session: ClientSession) -> None:
        self.session = session

    async def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        result = await self.session.call_tool(tool, arguments)
        assert not result.is_error, text_of(result)
        structured: dict[str, Any] | None = result.structured_content
        assert structured is not None
        return structured

    async def error(self, tool: str, **arguments: Any) -> str:
        result = await self.session.call_tool(tool, arguments)
        assert result.is_error, result
        return text_of(result)


async def drive_over_stdio(banger: BangerEnv, repo: Path) -> None:
    argv = banger.netns.exec_argv([*BANGER, "mcp"])
    server = StdioServerParameters(command=argv[0], args=argv[1:], env=banger.env)
    with anyio.fail_after(900):
        async with (
            stdio_client(server) as (read, write, *_),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            listed = [tool.name for tool in (await session.list_tools()).tools]
            assert {"sandbox_create", "sandbox_list", "sandbox_exec", "sandbox_read_file",
                    "sandbox_write_file", "sandbox_delete", "sandbox_copy_workspace",
                    "sandbox_export_workspace"} <= set(listed)
            await walk_through(Tools(session), repo)


async def walk_through(tools: Tools, repo: Path) -> None:
    created = await tools.call("sandbox_create", name=VM)
    assert (created["name"], created["state"]) == (VM, "running")
    names = [s["name"] for s in (await tools.call("sandbox_list"))["sandboxes"]]
    assert VM in names

    ran = await tools.call("sandbox_exec", name=VM, command="echo out; echo err >&2; exit 3")
    assert (ran["exit_code"], ran["stdout"], ran["stderr"]) == (3, "out\n", "err\n")
    ran = await tools.call("sandbox_exec", name=VM, argv=["sh", "-c", 'echo "$A"; pwd; cat'],
                           env={"A": "from env"}, cwd="/tmp", stdin="from stdin")
    assert (ran["exit_code"], ran["stdout"]) == (0, "from env\n/tmp\nfrom stdin")
    missing = await tools.call("sandbox_exec", name=VM, command="no-such-command")
    assert missing["exit_code"] == 127 and "not found" in missing["stderr"]
    big = await tools.call("sandbox_exec", name=VM, command="seq 1 200000")
    assert big["stdout"].startswith("1\n2\n") and big["stdout"].endswith("199999\n200000\n")
    assert "bytes omitted" in big["stdout"] and "stdout lost" in big["truncated"]

    await tools.call("sandbox_write_file", name=VM, path="/root/hello.sh",
                     content="echo hello from a file\n", mode="755")
    ran = await tools.call("sandbox_exec", name=VM, command="/root/hello.sh")
    assert ran["stdout"] == "hello from a file\n"
    read = await tools.call("sandbox_read_file", name=VM, path="/root/hello.sh")
    assert read["content"] == "echo hello from a file\n"
    binary = bytes(range(256)) * 4
    await tools.call("sandbox_write_file", name=VM, path="/root/blob",
                     content=base64.b64encode(binary).decode(), encoding="base64")
    read = await tools.call("sandbox_read_file", name=VM, path="/root/blob", encoding="base64")
    assert base64.b64decode(read["content_base64"]) == binary

    error = await tools.error("sandbox_read_file", name=VM, path="/root/no-such-file")
    assert "/root/no-such-file" in error and "\nhint: " in error
    assert "Traceback" not in error
    error = await tools.error("sandbox_exec", name="no-such-vm", command="true")
    assert "vm_not_found" in error and "\nhint: " in error

    copied = await tools.call("sandbox_copy_workspace", name=VM, path=str(repo))
    assert copied["guest_path"] == "/root/repo"
    assert copied["base_commit"] == git(repo, "rev-parse", "HEAD").strip()
    ran = await tools.call("sandbox_exec", name=VM, cwd="/root/repo",
                           command="cat draft.txt; ls; echo \"print('v2')\" > app.py")
    assert ran["stdout"].startswith("uncommitted, copied too\n")
    assert "debug.log" not in ran["stdout"]
    exported = await tools.call("sandbox_export_workspace", name=VM)
    assert exported["apply_with"] == "git apply"
    patch = exported["patch"]
    assert "-print('v1')\n+print('v2')" in patch
    # The guest's state against the base: the edit, and the copied untracked file as new.
    clone = repo.parent / "clone"
    git(repo.parent, "clone", "-q", str(repo), str(clone))
    subprocess.run(["git", "-C", str(clone), "apply"], input=patch, text=True, check=True)
    assert (clone / "app.py").read_text() == "print('v2')\n"
    assert (clone / "draft.txt").read_text() == "uncommitted, copied too\n"

    assert (await tools.call("sandbox_delete", name=VM)) == {"deleted": VM}
    names = [s["name"] for s in (await tools.call("sandbox_list"))["sandboxes"]]
    assert VM not in names


def test_stdio_drives_a_sandbox_from_create_to_delete(
    banger: BangerEnv, repo: Path, cleanup: None
) -> None:
    anyio.run(drive_over_stdio, banger, repo)


def test_http_serves_only_requests_with_the_token(banger: BangerEnv) -> None:
    server = subprocess.Popen(
        banger.netns.exec_argv([*BANGER, "mcp", "--http", "--port", "0"]), env=banger.env,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert server.stderr is not None
        started = server.stderr.readline()
        found = re.search(r"serving (http://127\.0\.0\.1:\d+/mcp) \(Authorization: Bearer (\S+)\)",
                          started)
        assert found, started
        url, token = found.groups()
        printed = banger.run("mcp", "--print-token").stdout.strip()
        assert printed == token
        token_file = Path(banger.env["XDG_CONFIG_HOME"]) / "banger" / "mcp-token"
        assert token_file.stat().st_mode & 0o777 == 0o600
        seen = subprocess.run(
            banger.netns.exec_argv([sys.executable, str(HTTP_CLIENT), url, token]),
            env=banger.env, capture_output=True, text=True, timeout=300, check=True,
        )
        answers = json.loads(seen.stdout)
        assert "sandbox_exec" in answers["with_token"]["tools"]
        assert "sandboxes" in answers["with_token"]["sandboxes"]
        assert answers["without_token"] != "served"
        assert answers["wrong_token"] != "served"
        assert answers["raw_status"] == 401
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_http_refuses_to_listen_beyond_loopback(banger: BangerEnv) -> None:
    refused = banger.run("mcp", "--http", "--host", "0.0.0.0", check=False)
    assert refused.returncode == 1
    assert "refusing to serve MCP on 0.0.0.0" in refused.stderr
