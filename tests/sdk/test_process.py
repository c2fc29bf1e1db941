"""Background processes over a fake client: start, stdin, wait (re-attach), kill."""

from __future__ import annotations

import signal

import pytest

from banger.core.errors import ProcessNotFound
from banger.sdk.sandbox import Sandbox
from tests.sdk.fakeclient import FakeClient


def make(client: FakeClient) -> Sandbox:
    return Sandbox.create(name="p", client=client)  # type: ignore[arg-type]


def test_background_exec_returns_a_process_at_once() -> None:
    client = FakeClient()
    sb = make(client)
    p = sb.exec("sleep 100", background=True, tag="sleeper", cwd="/tmp")
    assert (p.pid, p.command, p.tag, p.vm) == (100, "sleep 100", "sleeper", "p")
    request = client.started[0]
    assert (request.command, request.cwd, request.stdin) == ("sleep 100", "/tmp", False)
    assert p.running
    p.kill()
    assert client.signals == [(100, signal.SIGKILL)]
    result = p.wait()
    assert (result.exit_code, result.signal, result.stdout) == (None, 9, "out\n")
    assert [q.pid for q in sb.processes()] == [100]


def test_stdin_true_stays_open_and_data_is_sent_then_closed() -> None:
    client = FakeClient()
    sb = make(client)
    p = sb.exec(["cat"], background=True, stdin=True)
    assert client.started[0].stdin is True and client.stdin == []
    p.send_stdin("more")
    p.close_stdin()
    sb.exec(["cat"], background=True, stdin=b"all of it")
    assert client.stdin == [(100, b"more"), (100, None), (101, b"all of it"), (101, None)]


def test_a_process_that_is_gone() -> None:
    client = FakeClient()
    p = make(client).exec("true", background=True)
    client.processes.clear()
    with pytest.raises(ProcessNotFound):
        p.info()


def test_stdin_true_is_only_for_background() -> None:
    with pytest.raises(TypeError):
        make(FakeClient()).exec("cat", stdin=True)  # type: ignore[call-overload]
