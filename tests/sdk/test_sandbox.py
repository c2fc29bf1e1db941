"""Sandbox over a fake client: the requests it makes and what it hands back."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from banger.core.errors import InvalidState, SSHTimeout, VMNotFound
from banger.core.models import VMState
from banger.sdk.sandbox import Sandbox
from tests.sdk.fakeclient import FakeClient, a_vm


def make(client: FakeClient, **options: Any) -> Sandbox:
    return Sandbox.create(image="debian-bookworm", client=client, **options)  # type: ignore[arg-type]


def test_create_deletes_at_the_end_of_the_block_unless_kept() -> None:
    client = FakeClient()
    with make(client, name="a", vcpu=2) as sb:
        assert sb.name == "a"
        assert client.calls[0][1]["vcpu"] == 2
    assert "a" not in client.vms
    with make(client, name="b", keep=True):
        pass
    assert "b" in client.vms


def test_get_and_list_find_existing_vms_and_keep_them() -> None:
    client = FakeClient()
    client.vms = {"x": a_vm("x"), "y": a_vm("y", VMState.STOPPED)}
    with Sandbox.get("x", client=client) as sb:  # type: ignore[arg-type]
        assert sb.state == VMState.RUNNING
    assert "x" in client.vms
    assert [s.name for s in Sandbox.list(client=client)] == ["x", "y"]  # type: ignore[arg-type]
    with pytest.raises(VMNotFound) as raised:
        Sandbox.get("z", client=client)  # type: ignore[arg-type]
    assert "Sandbox.list()" in raised.value.hint


def test_exec_a_string_through_the_shell_and_a_list_as_argv() -> None:
    client = FakeClient()
    sb = make(client)
    seen: list[str] = []
    result = sb.exec("make test", cwd="/root/repo", env={"A": "1"}, on_stdout=seen.append,
                     stdin="in")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "make test", "err")
    assert seen == ["make test"]
    call = client.calls[-1][1]
    assert (call["argv"], call["command"], call["cwd"], call["env"], call["stdin"]) == (
        None, "make test", "/root/repo", {"A": "1"}, b"in"
    )
    sb.exec(["ls", "-l"])
    assert client.calls[-1][1]["argv"] == ["ls", "-l"]


def test_exec_reports_a_signal_and_a_timeout() -> None:
    client = FakeClient(lambda *_: ([], [], {"exit_code": None, "signal": 9,
                                              "timed_out": True}))
    result = make(client).exec("sleep 100", timeout=1)
    assert (result.exit_code, result.signal, result.timed_out, result.ok) == (
        None, 9, True, False
    )


def test_a_stopped_sandbox_says_to_call_start() -> None:
    client = FakeClient()
    sb = make(client)
    sb.stop()
    with pytest.raises(InvalidState) as raised:
        sb.exec("true")
    assert raised.value.hint == "the sandbox is stopped: call sb.start()"
    sb.start()
    assert sb.exec("true").ok


def test_files_round_trip() -> None:
    client = FakeClient()
    sb = make(client)
    sb.files.write("/root/x.txt", "hi")
    assert sb.files.read("/root/x.txt") == b"hi"
    assert sb.files.read_text("/root/x.txt") == "hi"
    assert client.files[(sb.name, "/root/x.txt")][1] == 0o644


def test_ports_come_from_the_guests_socket_report() -> None:
    report = "@ss\ntcp LISTEN 0 4096 0.0.0.0:8080 0.0.0.0:* users:((\"python3\",pid=7,fd=3))\n"
    client = FakeClient(lambda *_: ([report.encode()], [], {"exit_code": 0, "signal": None}))
    [port] = make(client, name="web").ports()
    assert (port.port, port.process, port.reach) == (8080, "python3", "web.vm:8080")


def test_threads_share_one_sandbox() -> None:
    client = FakeClient()
    sb = make(client)
    results: dict[int, str] = {}

    def run(n: int) -> None:
        results[n] = sb.exec(f"echo {n}").stdout

    threads = [threading.Thread(target=run, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {n: f"echo {n}" for n in range(20)}


def test_a_failed_boot_is_cleaned_up_unless_kept() -> None:
    class FailingBoot(FakeClient):
        def create_vm(self, *, name: str | None = None, **options: Any) -> Any:
            self.vms[name or ""] = a_vm(name or "", VMState.ERROR)
            raise SSHTimeout(f"{name}: ssh not ready after 180s")

    client = FailingBoot()
    client.vms["taken"] = a_vm("taken")
    with pytest.raises(SSHTimeout) as raised:
        make(client)
    assert list(client.vms) == ["taken"]
    assert "keep=True" in raised.value.hint
    with pytest.raises(SSHTimeout) as raised:
        make(client, name="kept", keep=True)
    assert "kept" in client.vms
    assert "Sandbox.get('kept').logs()" in raised.value.hint


def test_a_sandbox_deleted_inside_its_block_is_fine() -> None:
    client = FakeClient()
    with make(client) as sb:
        sb.delete()
