"""The MCP server's tools against the CLI's fake client; the workspace tools with the guest
played by `sh` on this machine (as in tests/client/test_workspace.py)."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import pytest

from banger.client.workspace import shell_command
from banger.core.errors import InvalidInput
from banger.core.models import VM, Workspace
from banger.core.paths import Paths
from banger.mcp.tools import OUTPUT_HEAD, OUTPUT_TAIL, CappedOutput, SandboxTools
from tests.support.cli import FakeClient


class WorkspaceClient(FakeClient):
    """The fake client, plus the one-shot exec and the daemon's record of workspaces."""

    def __init__(self, paths: Paths) -> None:
        super().__init__(paths)
        self.workspaces: dict[str, Workspace] = {}

    def create_vm(self, *, on_progress: Any = None, **kwargs: Any) -> VM:
        """The real client's defaults: boots, progress optional."""
        return super().create_vm(on_progress=lambda _: None, start=True, **kwargs)

    def exec_vm(self, name: str, argv: list[str] | None, **kwargs: Any) -> dict[str, Any]:
        """Answers as a guest would: `exec_result` with `exec_output` written first."""
        on_stdout, on_stderr = kwargs.pop("on_stdout"), kwargs.pop("on_stderr")
        self._call("exec_vm", name, argv, **kwargs)
        for data, stderr in self.exec_output:
            (on_stderr if stderr else on_stdout)(data)
        return self.exec_result

    def record_workspace(self, name: str, workspace: Workspace) -> Workspace:
        self._call("record_workspace", name, workspace)
        self.workspaces[workspace.guest_path] = workspace
        return workspace

    def get_workspace(self, name: str, guest_path: str) -> Workspace:
        self._call("get_workspace", name, guest_path)
        return self.workspaces[guest_path]


@pytest.fixture
def client(tmp_path: Path) -> WorkspaceClient:
    return WorkspaceClient(Paths(tmp_path / "c", tmp_path / "s", tmp_path / "k", tmp_path / "r"))


@pytest.fixture
def tools(client: WorkspaceClient) -> SandboxTools:
    return SandboxTools(client, lambda vm: shell_command)  # type: ignore[arg-type]


def test_create_boots_with_the_given_spec_and_summarises(
    tools: SandboxTools, client: FakeClient
) -> None:
    created = tools.sandbox_create(image="debian-bookworm", name="box", vcpu=4, memory_mib=512,
                                   nat=True)
    assert created["name"] == "box" and created["state"] == "running"
    [(_, kwargs)] = client.called("create_vm")
    assert kwargs == {"name": "box", "image": "debian-bookworm", "vcpu": 4, "memory_mib": 512,
                      "disk_size": None, "nat": True, "start": True}


def test_list_and_delete(tools: SandboxTools, client: FakeClient) -> None:
    names = [s["name"] for s in tools.sandbox_list()["sandboxes"]]
    assert names == ["dev", "idle"]
    assert tools.sandbox_delete("dev") == {"deleted": "dev"}
    assert client.called("delete_vm") == [(("dev",), {"force": True})]


def test_exec_runs_a_command_or_an_argv(tools: SandboxTools, client: FakeClient) -> None:
    client.exec_output = [(b"out\n", False), (b"err\n", True)]
    client.exec_result = {"exit_code": 3, "signal": None, "timed_out": False}
    reply = tools.sandbox_exec("dev", command="make test", cwd="/root/repo", env={"CI": "1"},
                               stdin="in", timeout=5)
    assert reply == {"exit_code": 3, "signal": None, "timed_out": False,
                     "stdout": "out\n", "stderr": "err\n"}
    tools.sandbox_exec("dev", argv=["ls", "-l"])
    first, second = client.called("exec_vm")
    assert first == (("dev", None), {"command": "make test", "env": {"CI": "1"},
                                     "cwd": "/root/repo", "stdin": b"in", "timeout": 5})
    assert second[0] == ("dev", ["ls", "-l"]) and second[1]["command"] is None


@pytest.mark.parametrize("given", [{}, {"command": "ls", "argv": ["ls"]}])
def test_exec_needs_exactly_one_of_command_and_argv(
    tools: SandboxTools, given: dict[str, Any]
) -> None:
    with pytest.raises(InvalidInput, match="exactly one of command and argv"):
        tools.sandbox_exec("dev", **given)


def test_a_long_output_keeps_its_start_and_end_with_a_note(
    tools: SandboxTools, client: FakeClient
) -> None:
    chunk = b"x" * 10_000
    client.exec_output = [(b"FIRST", False), *[(chunk, False)] * 20, (b"LAST", False)]
    reply = tools.sandbox_exec("dev", command="yes")
    total = 5 + 20 * len(chunk) + 4
    omitted = total - OUTPUT_HEAD - OUTPUT_TAIL
    assert reply["stdout"].startswith("FIRST") and reply["stdout"].endswith("LAST")
    assert f"[... {omitted} bytes omitted ...]" in reply["stdout"]
    assert reply["truncated"].startswith(f"stdout lost {omitted} bytes from its middle")
    assert "stderr" not in reply["truncated"]


def test_capped_output_keeps_short_output_whole() -> None:
    out = CappedOutput(head=4, tail=4)
    for piece in (b"ab", b"cd", b"ef", b"gh"):
        out.write(piece)
    assert (out.text(), out.omitted) == ("abcdefgh", 0)
    out.write(b"ij")
    assert (out.text(), out.omitted) == ("abcd\n[... 2 bytes omitted ...]\nghij", 2)


def test_files_round_trip_as_text_and_base64(tools: SandboxTools, client: FakeClient) -> None:
    assert tools.sandbox_write_file("dev", "/root/a.sh", "echo hi\n", mode="755") == {
        "path": "/root/a.sh", "size": 8, "mode": "755"}
    assert client.called("write_file") == [(("dev", "/root/a.sh"), {"mode": 0o755})]
    assert tools.sandbox_read_file("dev", "/root/a.sh")["content"] == "echo hi\n"
    binary = bytes(range(256))
    tools.sandbox_write_file("dev", "/b", base64.b64encode(binary).decode(), encoding="base64")
    assert client.guest_files["/b"] == binary
    read = tools.sandbox_read_file("dev", "/b", encoding="base64")
    assert base64.b64decode(read["content_base64"]) == binary and read["size"] == 256


def test_bad_base64_is_refused(tools: SandboxTools) -> None:
    with pytest.raises(InvalidInput, match="not valid base64"):
        tools.sandbox_write_file("dev", "/b", "not base64!", encoding="base64")


def test_a_big_file_is_read_in_part_with_a_note(tools: SandboxTools, client: FakeClient) -> None:
    client.guest_files["/big"] = b"y" * (2 << 20)
    read = tools.sandbox_read_file("dev", "/big")
    assert read["size"] == 2 << 20 and len(read["content"]) == 1 << 20
    assert "only the first" in read["truncated"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "test@example.test")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / "app.py").write_text("print('v1')\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "v1")
    (root / "notes.txt").write_text("untracked, copied too\n")
    return root


def test_workspace_copy_then_export_of_the_guest_change(
    tools: SandboxTools, client: WorkspaceClient, repo: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "guest" / "repo"
    copied = tools.sandbox_copy_workspace("dev", str(repo), guest_path=str(dest))
    assert copied["base_commit"] == git(repo, "rev-parse", "HEAD").strip()
    assert copied["guest_path"] == str(dest) and copied["files"] == 2
    assert (dest / "notes.txt").read_text() == "untracked, copied too\n"
    (dest / "app.py").write_text("print('v2')\n")
    exported = tools.sandbox_export_workspace("dev", guest_path=str(dest))
    assert exported["apply_with"] == "git apply"
    assert "-print('v1')\n+print('v2')" in exported["patch"]
    output = tmp_path / "change.patch"
    written = tools.sandbox_export_workspace("dev", guest_path=str(dest), output=str(output))
    assert "patch" not in written and output.read_text() == exported["patch"]
