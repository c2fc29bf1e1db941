from __future__ import annotations

import json
from pathlib import Path

import pytest

from banger.daemon import system
from banger.host.usernet import UserNetworks
from tests.support.host_fakes import FakeRunner
from tests.support.usernet import layout


def networks(tmp_path: Path) -> UserNetworks:
    return UserNetworks(FakeRunner(), layout(tmp_path), euid=lambda: 0,
                        lookup_uid={"alice": 1000}.__getitem__, banger="/usr/bin/banger")


async def test_setup_and_teardown_answer_with_plain_values(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nets = networks(tmp_path)
    made = await system.run(nets, ["setup", "--user", "alice", "--taps", "2", "--no-persist"])
    assert made["network"]["bridge"] == "bgu0" and len(made["network"]["slots"]) == 2
    assert made["persisted"] == "re-applied (--no-persist)"
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["event"]["stage"] for e in events][-1] == "ready"
    assert await system.run(nets, ["teardown"]) == {"users": ["alice"]}


def test_errors_become_the_error_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(system, "UserNetworks", lambda *a, **k: UserNetworks(
        FakeRunner(), layout(tmp_path), euid=lambda: 1000))
    with pytest.raises(SystemExit):
        system.main(["setup", "--user", "alice"])
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["error"]["code"] == "permission_denied"
