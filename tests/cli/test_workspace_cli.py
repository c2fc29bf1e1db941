"""`vm run PATH` and `vm workspace ...` against a fake client, with the copy and export
themselves replaced (they are tested in tests/client/test_workspace.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import banger.client.workspace as client_workspace
from banger.client.workspace import ExportResult, GuestCommand, PrepareResult
from banger.core.errors import Conflict, GuestAgentStopped
from banger.core.models import Workspace
from banger.core.workspace import ExportHeader
from tests.support.cli import ACCESS, FakeClient, run

BASE = "b" * 40


class WorkspaceClient(FakeClient):
    def list_workspaces(self, name: str) -> list[Workspace]:
        self._call("list_workspaces", name)
        return [Workspace("/root/repo", BASE, "/src/app", "feature", True, 1.0)]


@pytest.fixture
def ws_client(client: FakeClient) -> FakeClient:
    client.__class__ = WorkspaceClient
    return client


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


@pytest.fixture
def prepared(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record prepare_workspace calls instead of copying."""
    calls: list[dict[str, Any]] = []

    def fake(client: Any, vm: str, path: Any, guest: GuestCommand | None, **kwargs: Any) -> Any:
        calls.append({"vm": vm, "path": str(path), "guest": guest, **kwargs})
        if "fail" in kwargs.get("guest_path", ""):
            raise Conflict("/root/fail already exists in dev")
        workspace = Workspace(kwargs["guest_path"], BASE, str(path), kwargs["branch"] or "",
                              kwargs["readonly"], 5.0)
        return PrepareResult(vm, workspace, 3, 300, 0.5, "immutable" if kwargs["readonly"]
                             else "", "")

    monkeypatch.setattr(client_workspace, "prepare_workspace", fake)
    return calls


def test_run_with_a_repo_copies_it_then_runs_the_command_there(
    ws_client: FakeClient, ssh: dict[str, list[list[str]]], prepared: list[dict[str, Any]],
    repo: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, _ = run(["vm", "run", str(repo / "."), "--name", "dev", "--", "make", "test"],
                     capsys)
    assert code == 0
    [call] = prepared
    assert (call["vm"], call["path"], call["guest_path"]) == ("dev", str(repo), "/root/repo")
    assert call["bootstrap_tooling"] is False
    assert call["repo"].root == repo
    [(args, kwargs)] = ws_client.called("exec_vm")
    assert args == ("dev", ["make", "test"]) and kwargs["cwd"] == "/root/repo"
    assert call["guest"] is None  # the copy goes through the guest agent too: no ssh


def test_run_with_a_repo_copies_it_over_ssh_in_a_vm_without_an_agent(
    ws_client: FakeClient, ssh: dict[str, list[list[str]]], prepared: list[dict[str, Any]],
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    def no_agent_first(client: Any, vm: str, path: Any, guest: Any, **kwargs: Any) -> Any:
        if guest is None:
            raise GuestAgentStopped("the guest agent cannot start: no perl")
        return recording(client, vm, path, guest, **kwargs)

    recording = client_workspace.prepare_workspace
    monkeypatch.setattr(client_workspace, "prepare_workspace", no_agent_first)
    code, _, err = run(["vm", "run", str(repo), "--name", "dev", "--", "make"], capsys)
    assert code == 0
    assert "warning: the guest agent cannot start: no perl: copying the workspace over ssh" in err
    [call] = prepared
    # The copy goes over the system ssh with banger's key and pinned host key.
    guest_argv = call["guest"]("echo 'hi'")
    assert guest_argv[0] == "ssh"
    assert "StrictHostKeyChecking=yes" in guest_argv
    assert f"UserKnownHostsFile={ACCESS['known_hosts']}" in guest_argv
    assert guest_argv[-2:] == ["--", "sh -c 'echo '\"'\"'hi'\"'\"''"]


def test_run_with_a_repo_and_no_command_opens_a_shell_there_and_bootstraps_tooling(
    ws_client: FakeClient, ssh: dict[str, list[list[str]]], prepared: list[dict[str, Any]],
    repo: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, _ = run(["vm", "run", str(repo), "--branch", "feat", "--from", "main"], capsys)
    assert code == 0
    [call] = prepared
    assert call["bootstrap_tooling"] is True
    assert (call["branch"], call["from_ref"]) == ("feat", "main")
    assert ssh["exec"][0][-1] == 'cd /root/repo && exec "$SHELL" -l'


def test_run_rm_deletes_the_vm_when_the_copy_fails(
    ws_client: FakeClient, ssh: dict[str, list[list[str]]], repo: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    def failing(*args: Any, **kwargs: Any) -> Any:
        raise Conflict("/root/repo already exists in dev", hint="pick another --guest-path")

    monkeypatch.setattr(client_workspace, "prepare_workspace", failing)
    code, _, err = run(["vm", "run", "--rm", "--name", "dev", str(repo), "--", "true"], capsys)
    assert code == 1
    assert "error: /root/repo already exists in dev\nhint: pick another --guest-path\n" in err
    assert ws_client.called("delete_vm") == [(("dev",), {"force": True})]
    assert ssh["run"] == [] and ssh["exec"] == []
    code, _, _ = run(["vm", "run", "--name", "dev", str(repo), "--", "true"], capsys)
    assert code == 1
    assert len(ws_client.called("delete_vm")) == 1  # without --rm the VM stays


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--branch", "x"], "--branch/--from need a workspace PATH"),
        (["--from", "main"], "--branch/--from need a workspace PATH"),
        (["REPO", "--from", "main"], "--from needs --branch"),
    ],
)
def test_branch_flags_are_checked_before_anything_happens(
    ws_client: FakeClient, ssh: dict[str, list[list[str]]], repo: Path, args: list[str],
    message: str, capsys: pytest.CaptureFixture[str],
) -> None:
    args = [str(repo) if a == "REPO" else a for a in args]
    code, _, err = run(["vm", "run", *args], capsys)
    assert code == 1
    assert err.startswith(f"error: {message}\n")
    assert ws_client.calls == []


def test_workspace_prepare(
    ws_client: FakeClient, prepared: list[dict[str, Any]], repo: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(["vm", "workspace", "prepare", "dev", str(repo), "--guest-path",
                        "/root/ro", "--readonly"], capsys)
    assert code == 0
    assert out == f"dev:/root/ro {BASE}\n"
    [call] = prepared
    assert (call["readonly"], call["guest_path"], call["bootstrap_tooling"]) == (
        True, "/root/ro", False
    )
    assert ws_client.called("vm_access") == [(("dev",), {})]
    code, out, _ = run(["vm", "workspace", "prepare", "dev", str(repo), "--json"], capsys)
    data = json.loads(out)
    assert data["workspace"]["base_commit"] == BASE
    assert data["files"] == 3


def test_workspace_prepare_defaults_to_the_current_directory(
    ws_client: FakeClient, prepared: list[dict[str, Any]], repo: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(repo)
    assert run(["vm", "workspace", "prepare", "dev"], capsys)[0] == 0
    assert prepared[0]["path"] == "."


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    header = ExportHeader("mbox", BASE, "c" * 40, 2, True, "")

    def fake(client: Any, vm: str, guest: GuestCommand, **kwargs: Any) -> ExportResult:
        calls.append({"vm": vm, **kwargs})
        return ExportResult(vm, kwargs["guest_path"], header, b"From abc\n\xff binary-safe\n")

    monkeypatch.setattr(client_workspace, "export_workspace", fake)
    return calls


def test_workspace_export_to_stdout_says_how_to_apply_on_stderr(
    ws_client: FakeClient, exported: list[dict[str, Any]],
    capfdbinary: pytest.CaptureFixture[bytes],
) -> None:
    from banger.cli.main import main

    main(["vm", "workspace", "export", "dev", "--base", "main~2"])
    out, err = capfdbinary.readouterr()
    assert out == b"From abc\n\xff binary-safe\n"
    assert b"3 patches" in err and b"`git am`" in err
    assert exported == [{"vm": "dev", "guest_path": "/root/repo", "base": "main~2"}]


def test_workspace_export_to_a_file_with_json_summary(
    ws_client: FakeClient, exported: list[dict[str, Any]], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = tmp_path / "out.mbox"
    code, out, err = run(["vm", "workspace", "export", "dev", "-o", str(target), "--json",
                          "--guest-path", "/root/other"], capsys)
    assert code == 0
    assert target.read_bytes() == b"From abc\n\xff binary-safe\n"
    summary = json.loads(out)
    assert (summary["format"], summary["apply_with"], summary["commits"]) == (
        "mbox", "git am", 2
    )
    assert summary["guest_path"] == "/root/other"
    assert "git am" in err
    assert exported[0]["base"] is None


def test_workspace_export_json_needs_a_file(
    ws_client: FakeClient, exported: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["vm", "workspace", "export", "dev", "--json"], capsys)
    assert code == 1
    assert err.startswith("error: --json needs -o FILE\n")
    assert exported == []


def test_workspace_show(ws_client: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["vm", "workspace", "show", "dev"], capsys)
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["GUEST", "PATH", "BASE", "BRANCH", "READONLY", "SOURCE"]
    assert row.split() == ["/root/repo", BASE[:12], "feature", "yes", "/src/app"]
    _, out, _ = run(["vm", "workspace", "show", "dev", "--json"], capsys)
    assert json.loads(out)[0]["base_commit"] == BASE


def test_workspace_commands_need_no_heavy_imports() -> None:
    code = (
        "import json, sys\nfrom banger.cli.main import main\n"
        "try:\n    main(['vm', 'workspace', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True).stdout
    loaded = {name.split(".")[0] for name in json.loads(out.splitlines()[-1])}
    assert loaded.isdisjoint({"asyncssh", "aiohttp", "pydantic", "rich"})
