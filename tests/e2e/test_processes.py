"""Guest processes the daemon holds, end to end in a cold-booted guest: a background process
re-attached after its client went away, stdin streamed in piece by piece, signals, a PTY
and its resize, the list; and `banger vm exec` with -i/-t and Ctrl-C."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from banger.client import Client
from banger.core import guestapi
from tests.e2e.conftest import BANGER, BangerEnv
from tests.e2e.test_interactive import _read_until

pytestmark = pytest.mark.e2e
VM = "pr"


@pytest.fixture(scope="module")
def vm(banger: BangerEnv) -> Iterator[str]:
    with banger.vm(VM) as name:
        yield name


@pytest.fixture
def client(banger: BangerEnv) -> Client:
    """The API client on the test daemon's socket (never starts a daemon itself)."""
    return Client(env=banger.env, autostart=False)


class Attached:
    """An attach running in a thread, its output collected."""

    def __init__(self, client: Client, pid: int) -> None:
        self.out = bytearray()
        self.result: guestapi.ExecResult | None = None
        self._thread = threading.Thread(target=self._run, args=(client, pid), daemon=True)
        self._thread.start()

    def _run(self, client: Client, pid: int) -> None:
        self.result = client.attach_process(VM, pid, self.out.extend, self.out.extend)

    def wait_for(self, text: bytes, timeout: float = 60) -> None:
        wait_until(lambda: text in self.out, timeout, f"{text!r} in {bytes(self.out)!r}")

    def join(self, timeout: float = 60) -> guestapi.ExecResult:
        self._thread.join(timeout)
        assert self.result is not None, bytes(self.out)
        return self.result


def wait_until(done: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_background_process_is_reattached_after_its_client_left(
    client: Client, vm: str,
) -> None:
    info = client.start_process(vm, guestapi.StartProcess(
        command="echo first; sleep 2; echo second", tag="background job",
    ))
    seen: list[bytes] = []

    def leave(data: bytes) -> None:
        seen.append(data)
        raise ConnectionAbortedError  # the client goes away mid-stream

    with pytest.raises(ConnectionAbortedError):
        client.attach_process(vm, info.pid, leave)
    assert seen == [b"first\n"]
    [listed] = [p for p in client.list_processes(vm) if p.pid == info.pid]
    assert (listed.tag, listed.running) == ("background job", True)
    wait_until(lambda: not any(p.running for p in client.list_processes(vm) if p.pid == info.pid),
               60, "the process to end")
    out: list[bytes] = []
    result = client.attach_process(vm, info.pid, out.append)
    assert (b"".join(out), result.exit_code) == (b"second\n", 0)
    assert all(p.pid != info.pid for p in client.list_processes(vm))


def test_stdin_is_streamed_piece_by_piece(client: Client, vm: str) -> None:
    info = client.start_process(vm, guestapi.StartProcess(argv=["cat"], stdin=True))
    attached = Attached(client, info.pid)
    client.send_stdin(vm, info.pid, b"one\n")
    attached.wait_for(b"one\n")
    client.send_stdin(vm, info.pid, b"two\n")
    attached.wait_for(b"one\ntwo\n")
    client.close_stdin(vm, info.pid)
    assert attached.join().exit_code == 0
    assert bytes(attached.out) == b"one\ntwo\n"


def test_a_signal_reaches_the_process(client: Client, vm: str) -> None:
    info = client.start_process(vm, guestapi.StartProcess(
        command="trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.1; done",
    ))
    attached = Attached(client, info.pid)
    attached.wait_for(b"ready\n")
    client.signal_process(vm, info.pid, signal.SIGTERM)
    assert attached.join().exit_code == 7
    assert b"got TERM" in attached.out


def test_a_pty_process_has_a_terminal_that_resizes(client: Client, vm: str) -> None:
    info = client.start_process(vm, guestapi.StartProcess(
        command="tty; stty size; read x; stty size", pty=guestapi.PtySize(cols=80, rows=24),
        stdin=True,
    ))
    attached = Attached(client, info.pid)
    attached.wait_for(b"24 80")
    client.resize_process(vm, info.pid, 120, 40)
    client.send_stdin(vm, info.pid, b"\n")
    assert attached.join().exit_code == 0
    lines = bytes(attached.out).decode().replace("\r\n", "\n").splitlines()
    assert lines[0].startswith("/dev/pts/"), lines
    assert lines[1:] == ["24 80", "", "40 120"]


def test_vm_exec_forwards_ctrl_c_as_sigint(banger: BangerEnv, vm: str) -> None:
    proc = subprocess.Popen(
        banger.netns.exec_argv([*BANGER, "vm", "exec", vm, "--", "sh", "-c",
                                "trap 'echo got INT; exit 5' INT; echo ready; "
                                "while :; do sleep 0.1; done"]),
        env=banger.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (proc.returncode, out) == (5, b"got INT\n"), err


def test_vm_exec_it_runs_on_a_terminal(banger: BangerEnv, vm: str) -> None:
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        banger.netns.exec_argv([*BANGER, "vm", "exec", "-it", vm, "--", "sh"]),
        stdin=terminal, stdout=terminal, stderr=terminal, env=banger.env, close_fds=True,
        start_new_session=True,
    )
    os.close(terminal)
    try:
        os.write(controller, b"tty; echo $((6*7)); exit 3\r")
        seen = _read_until(controller, b"42", timeout=120)
        assert b"/dev/pts/" in seen
        assert proc.wait(timeout=60) == 3
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(controller)
