from __future__ import annotations

import json

import pytest

from banger.cli.main import main
from banger.client import system


@pytest.fixture(autouse=True)
def fake_program(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system, "PROGRAM", "tests.support.fake_system")


def test_setup_shows_progress_then_the_network(capsys: pytest.CaptureFixture[str]) -> None:
    main(["system", "setup", "--user", "alice"])
    out, err = capsys.readouterr()
    assert "bridge bgu0 10.213.0.1/24" in err
    assert "bgu0 (10.213.0.0/24)" in out and "10.213.0.1:53 -> :5300" in out
    assert "not persisted" in out


def test_setup_json_is_the_result_only(capsys: pytest.CaptureFixture[str]) -> None:
    main(["system", "setup", "--user", "alice", "--json"])
    out, err = capsys.readouterr()
    assert json.loads(out)["network"]["bridge"] == "bgu0"
    assert err == ""


def test_an_error_is_one_line_and_a_hint(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["system", "setup", "--user", "nobody-here"])
    assert exited.value.code == 1
    assert capsys.readouterr().err == (
        "error: no user named 'nobody-here' on this host\n"
        "hint: create the account first (useradd)\n"
    )


def test_teardown_names_whose_network_went(capsys: pytest.CaptureFixture[str]) -> None:
    main(["system", "teardown", "--user", "alice"])
    assert capsys.readouterr().out == "removed the network of alice\n"
    main(["system", "teardown"])
    assert capsys.readouterr().out == "nothing to remove\n"
