from __future__ import annotations

import io
import os
import signal
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from banger.core import guestapi
from banger.core.errors import DaemonUnavailable, InvalidState
from tests.support.cli import PID, FakeClient, run


@pytest.fixture(autouse=True)
def piped_stdin(client: FakeClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    read, write = os.pipe()
    os.write(write, b"piped")
    os.close(write)
    with open(read) as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        yield


def test_exec_sends_the_command_and_exits_with_its_status(
    client: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client.exec_output = [(b"out\n", False), (b"err\n", True)]
    client.exec_result = {"exit_code": 3, "signal": None, "timed_out": False}
    code, out, err = run(["vm", "exec", "dev", "--env", "A=1=2", "--cwd", "/tmp", "--",
                          "ls", "-l"], capsys)
    assert (code, out, err) == (3, "out\n", "err\n")
    [(args, _)] = client.called("start_attached")
    body = args[1]
    assert args[0] == "dev" and body["argv"] == ["ls", "-l"]
    assert body["env"] == {"A": "1=2"} and body["cwd"] == "/tmp"
    assert body["stdin"] and body["pty"] is None
    assert client.guest_stdin == b"piped"  # not a terminal: passed on
    assert client.called("signal_process") == []
    guestapi.StartProcess(**body)  # what the daemon checks it against


def test_exec_with_a_terminal_stdin_passes_it_only_with_i(
    client: FakeClient, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    assert run(["vm", "exec", "dev", "--", "true"], capsys)[0] == 0
    assert client.started is not None and not client.started["stdin"]
    assert client.called("send_stdin") == []
    assert run(["vm", "exec", "-i", "dev", "--", "cat"], capsys)[0] == 0
    assert client.started["stdin"] and client.guest_stdin == b"piped"


def test_exec_does_not_pass_on_dev_null(
    client: FakeClient, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    with open(os.devnull) as null:
        monkeypatch.setattr(sys, "stdin", null)
        assert run(["vm", "exec", "dev", "--", "true"], capsys)[0] == 0
    assert client.started is not None and not client.started["stdin"]


def test_exec_with_t_asks_for_a_pty_of_the_terminal_size(
    client: FakeClient, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "get_terminal_size", lambda fd: os.terminal_size((132, 43)))
    monkeypatch.setenv("TERM", "screen")
    assert run(["vm", "exec", "-it", "dev", "--", "bash"], capsys)[0] == 0
    body = client.started
    assert body is not None and body["pty"] == {"cols": 132, "rows": 43}
    assert body["env"] == {"TERM": "screen"} and body["stdin"]


def test_exec_of_a_killed_command_exits_like_a_shell(
    client: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client.exec_result = {"exit_code": None, "signal": 9, "timed_out": True}
    code, _, err = run(["vm", "exec", "dev", "--timeout", "2", "--", "sleep", "9"], capsys)
    assert code == 137
    assert "killed after 2s" in err
    assert client.started is not None and client.started["timeout"] == 2


def test_exec_warns_of_dropped_output(
    client: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client.exec_dropped = 1234
    _, _, err = run(["vm", "exec", "dev", "--", "true"], capsys)
    assert err == "warning: 1234 bytes of output were dropped\n"


def test_ctrl_c_is_forwarded_as_sigint(
    client: FakeClient, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    def interrupted(name: str, body: object, on_started: Callable[[int], None],
                    *callbacks: object) -> dict[str, Any]:
        signal.raise_signal(signal.SIGINT)  # before the daemon named the process: held
        on_started(PID)
        signal.raise_signal(signal.SIGINT)
        return {"exit_code": None, "signal": 2, "timed_out": False}

    monkeypatch.setattr(client, "start_attached", interrupted)
    code, _, _ = run(["vm", "exec", "dev", "--", "sleep", "60"], capsys)
    assert code == 130
    assert client.called("signal_process") == [(("dev", PID, signal.SIGINT), {})] * 2


def test_a_failing_exec_command_does_not_leave_its_process_behind(
    client: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client.fail["attached"] = DaemonUnavailable("bangerd closed the output stream early")
    code, _, err = run(["vm", "exec", "dev", "--", "sleep", "60"], capsys)
    assert code == 1 and "closed the output stream" in err
    assert client.called("signal_process") == [(("dev", PID, 9), {})]


@pytest.mark.parametrize("args", [["vm", "exec", "dev"], ["vm", "exec", "dev", "--env", "A",
                                                         "--", "true"]])
def test_exec_refuses_bad_input(
    client: FakeClient, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code, _, err = run(args, capsys)
    assert code != 0 and err.startswith("error: ")
    assert client.called("start_attached") == []


def test_exec_on_a_stopped_vm_says_how_to_start_it(
    client: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client.fail["start_attached"] = InvalidState("VM 'dev' is not running (stopped)",
                                                hint="banger vm start dev")
    code, _, err = run(["vm", "exec", "dev", "--", "true"], capsys)
    assert code == 1
    assert err == "error: VM 'dev' is not running (stopped)\nhint: banger vm start dev\n"


def test_cp_into_and_out_of_a_vm(
    client: FakeClient, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    local = tmp_path / "build.sh"
    local.write_bytes(b"#!/bin/sh\n")
    local.chmod(0o750)
    assert run(["vm", "cp", str(local), "dev:/root/"], capsys)[0] == 0
    assert client.called("write_file") == [(("dev", "/root/build.sh"), {"mode": 0o750})]
    assert client.guest_files["/root/build.sh"] == b"#!/bin/sh\n"
    assert run(["vm", "cp", "dev:/root/build.sh", str(tmp_path / "back")], capsys)[0] == 0
    assert (tmp_path / "back").read_bytes() == b"#!/bin/sh\n"
    out_dir = tmp_path / "d"
    out_dir.mkdir()
    assert run(["vm", "cp", "dev:/root/build.sh", str(out_dir)], capsys)[0] == 0
    assert (out_dir / "build.sh").exists()


@pytest.mark.parametrize("args", [["a", "b"], ["dev:/a", "dev:/b"], ["./x:y", "z"]])
def test_cp_wants_exactly_one_guest_side(
    client: FakeClient, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code, _, err = run(["vm", "cp", *args], capsys)
    assert code == 1 and "exactly one side" in err


def test_cp_of_a_missing_local_file_names_it(
    client: FakeClient, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(["vm", "cp", str(tmp_path / "nope"), "dev:/root/"], capsys)
    assert code == 1
    missing = tmp_path / "nope"
    assert err.splitlines()[0] == f"error: cannot read {missing}: No such file or directory"


def test_cp_of_directories_into_and_out_of_a_vm(
    client: FakeClient, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src = tmp_path / "repo"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_text("f")
    client.guest_dirs.add("/root")
    assert run(["vm", "cp", str(src), "dev:/root"], capsys)[0] == 0  # inside: /root/repo
    assert run(["vm", "cp", str(src) + "/", "dev:/srv/new"], capsys)[0] == 0  # as /srv/new
    assert [args for method, args, _ in client.calls if method == "upload_tar"] == [
        ("dev", "/root/repo"), ("dev", "/srv/new"),
    ]
    client.guest_dirs.add("/srv/new")
    client.guest_tars["/srv/new"] = client.guest_tars["/root/repo"]
    assert run(["vm", "cp", "dev:/srv/new", str(tmp_path / "back")], capsys)[0] == 0
    assert (tmp_path / "back" / "sub" / "f").read_text() == "f"
    assert run(["vm", "cp", "dev:/srv/new", str(tmp_path)], capsys)[0] == 0  # inside
    assert (tmp_path / "new" / "sub" / "f").read_text() == "f"


def test_cp_warns_of_what_a_directory_left_out(
    client: FakeClient, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        link = tarfile.TarInfo("escape")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
        tar.addfile(link)
    client.guest_dirs.add("/d")
    client.guest_tars["/d"] = out.getvalue()
    code, _, err = run(["vm", "cp", "dev:/d", str(tmp_path / "d")], capsys)
    assert code == 0
    assert err == ("warning: left out 1 entries that are not plain files, directories or links "
                   "inside it: escape -> /etc/shadow\n")
    assert not (tmp_path / "d" / "escape").exists()


def test_cp_of_a_missing_guest_path_names_it(
    client: FakeClient, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(["vm", "cp", "dev:/no/such", str(tmp_path)], capsys)
    assert code == 1
    assert err.splitlines()[0] == "error: cannot stat /no/such: No such file or directory"
