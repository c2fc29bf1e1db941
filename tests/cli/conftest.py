from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

import banger.client
from banger.cli import sshexec
from banger.core.paths import Paths
from tests.support.cli import FakeClient


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeClient:
    fake = FakeClient(Paths(tmp_path / "c", tmp_path / "s", tmp_path / "k", tmp_path / "r"))
    monkeypatch.setattr(banger.client, "Client", lambda *args, **kwargs: fake)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO()))
    return fake


@pytest.fixture
def ssh(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[list[str]]]:
    """Record instead of running ssh; exec ends the process like the real one."""
    calls: dict[str, list[list[str]]] = {"exec": [], "run": []}

    def exec_ssh(argv: list[str]) -> None:
        calls["exec"].append(argv)
        raise SystemExit(0)

    def run_ssh(argv: list[str]) -> int:
        calls["run"].append(argv)
        return 3

    monkeypatch.setattr(sshexec, "exec_ssh", exec_ssh)
    monkeypatch.setattr(sshexec, "run_ssh", run_ssh)
    return calls
