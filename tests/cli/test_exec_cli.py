from __future__ import annotations

import io
import sys

import pytest

from banger.core.errors import InvalidState
from tests.support.cli import FakeClient, run


@pytest.fixture(autouse=True)
def piped_stdin(client: FakeClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"piped")))


def test_exec_sends_the_command_and_exits_with_its_status(
    client: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client.exec_output = [(b"out\n", False), (b"err\n", True)]
    client.exec_result = {"exit_code": 3, "signal": None, "timed_out": False}
    code, out, err = run(["vm", "exec", "dev", "--env", "A=1=2", "--cwd", "/tmp", "--",
                          "ls", "-l"], capsys)
    assert (code, out, err) == (3, "out\n", "err\n")
    [(args, kwargs)] = client.called("exec_vm")
    assert args == ("dev", ["ls", "-l"])
    assert kwargs["env"] == {"A": "1=2"} and kwargs["cwd"] == "/tmp"
    assert kwargs["stdin"] == b"piped"


def test_exec_of_a_killed_command_exits_like_a_shell(
    client: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client.exec_result = {"exit_code": None, "signal": 9, "timed_out": True}
    code, _, err = run(["vm", "exec", "dev", "--timeout", "2", "--", "sleep", "9"], capsys)
    assert code == 137
    assert "killed after 2s" in err


@pytest.mark.parametrize("args", [["vm", "exec", "dev"], ["vm", "exec", "dev", "--env", "A",
                                                         "--", "true"]])
def test_exec_refuses_bad_input(
    client: FakeClient, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code, _, err = run(args, capsys)
    assert code != 0 and err.startswith("error: ")
    assert client.called("exec_vm") == []


def test_exec_on_a_stopped_vm_says_how_to_start_it(
    client: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client.fail["exec_vm"] = InvalidState("VM 'dev' is not running (stopped)",
                                          hint="banger vm start dev")
    code, _, err = run(["vm", "exec", "dev", "--", "true"], capsys)
    assert code == 1
    assert err == "error: VM 'dev' is not running (stopped)\nhint: banger vm start dev\n"
