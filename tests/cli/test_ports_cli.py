"""`banger vm ports`: the guest script goes over banger's ssh, its answer becomes a table or
JSON, and failures become one-line errors."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from banger.client import ports as client_ports
from tests.support.cli import ACCESS, FakeClient, run
from tests.support.guest_reports import GUEST_SS


class FakeGuest:
    def __init__(self) -> None:
        self.argv: list[str] = []
        self.answer = subprocess.CompletedProcess[bytes]([], 0, GUEST_SS.encode(), b"")

    def __call__(self, argv: list[str], **_: Any) -> subprocess.CompletedProcess[bytes]:
        self.argv = argv
        return self.answer


@pytest.fixture
def guest(monkeypatch: pytest.MonkeyPatch) -> FakeGuest:
    fake = FakeGuest()
    monkeypatch.setattr(client_ports.subprocess, "run", fake)
    return fake


def test_table(client: FakeClient, guest: FakeGuest, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["vm", "ports", "dev"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["PROTO", "ADDRESS", "PORT", "PROCESS", "PID", "REACH"]
    assert lines[1].split() == ["tcp", "0.0.0.0", "22", "sshd", "330", "dev.vm:22"]
    assert lines[4].split() == ["tcp", "127.0.0.1", "3001", "python3", "351", "-"]
    # Over banger's own ssh: its key and the VM's pinned host key.
    assert guest.argv[0] == "ssh"
    assert f"UserKnownHostsFile={ACCESS['known_hosts']}" in guest.argv
    assert "StrictHostKeyChecking=yes" in guest.argv
    assert client.called("vm_access") == [(("dev",), {})]


def test_json(client: FakeClient, guest: FakeGuest, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["vm", "ports", "dev", "--json"], capsys)
    assert code == 0
    rows = json.loads(out)
    assert rows[2] == {
        "proto": "tcp", "address": "0.0.0.0", "port": 3000, "process": "python3",
        "pids": [349], "reach": "dev.vm:3000",
    }
    assert [r["reach"] for r in rows].count("") == 3


@pytest.mark.parametrize(("status", "stdout", "stderr", "message"), [
    (255, b"", b"ssh: connect to host 172.16.0.2 port 22: No route to host\n",
     "error: could not reach dev over ssh: ssh: connect to host 172.16.0.2 port 22: No route"),
    (1, b"", b"sh: 1: ls: not found\n",
     "error: listing the sockets of dev failed: sh: 1: ls: not found"),
    (0, b"what is this\n", b"", "error: unreadable socket list from dev"),
])
def test_guest_failures_are_one_line_errors(
    client: FakeClient, guest: FakeGuest, capsys: pytest.CaptureFixture[str],
    status: int, stdout: bytes, stderr: bytes, message: str,
) -> None:
    guest.answer = subprocess.CompletedProcess([], status, stdout, stderr)
    code, out, err = run(["vm", "ports", "dev"], capsys)
    assert code == 1
    assert out == ""
    assert err.startswith(message)
    assert "Traceback" not in err
