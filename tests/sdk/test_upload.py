"""sb.upload: the workspace copy rules of `vm run ./repo`, played against a guest that is
this machine (`sh` runs the guest script; files land where the script says)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from banger.core.errors import Conflict, InvalidInput
from banger.sdk.sandbox import Sandbox
from tests.sdk.fakeclient import FakeClient


class LocalGuest(FakeClient):
    def upload_tar(self, name: str, guest_dir: str, chunks: Iterable[bytes]) -> None:
        Path(guest_dir).mkdir(parents=True, exist_ok=True)
        subprocess.run(["tar", "-x", "-f", "-", "-C", guest_dir], input=b"".join(chunks),
                       check=True)

    def exec_vm(self, name: str, argv: list[str] | None = None, **options: Any) -> dict[str, Any]:
        proc = subprocess.run(argv or [], capture_output=True, check=False)
        options["on_stdout"](proc.stdout)
        options["on_stderr"](proc.stderr)
        return {"exit_code": proc.returncode, "signal": None}


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                   check=True, capture_output=True)


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox.create(client=LocalGuest())  # type: ignore[arg-type]


def test_a_checkout_is_copied_by_the_workspace_rules(sandbox: Sandbox, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / ".gitignore").write_text("build/\n")
    (repo / "tracked.txt").write_text("t")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    (repo / "untracked.txt").write_text("u")
    (repo / "build").mkdir()
    (repo / "build" / "out.o").write_text("ignored")
    dest = tmp_path / "guest" / "repo"
    workspace = sandbox.upload(repo, str(dest))
    copied = sorted(p.name for p in dest.iterdir())
    assert copied == [".git", ".gitignore", "tracked.txt", "untracked.txt"]
    assert len(workspace.base_commit) == 40
    assert sandbox.client.workspaces == [workspace]  # type: ignore[attr-defined]
    with pytest.raises(Conflict):
        sandbox.upload(repo, str(dest))


def test_a_plain_directory_is_copied_whole(sandbox: Sandbox, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    (plain / "sub").mkdir(parents=True)
    (plain / "sub" / "a.txt").write_text("a")
    (plain / ".hidden").write_text("h")
    dest = tmp_path / "guest" / "plain"
    workspace = sandbox.upload(plain, str(dest))
    assert (dest / "sub" / "a.txt").read_text() == "a"
    assert (dest / ".hidden").read_text() == "h"
    assert workspace.base_commit == ""
    assert sandbox.client.workspaces == []  # type: ignore[attr-defined]


def test_not_a_directory(sandbox: Sandbox, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        sandbox.upload(tmp_path / "missing", "/root/repo")
