"""The real client against an in-memory transport: the bodies it sends, how it reads
answers, streams and errors, all without a daemon or a socket."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from banger.client import Client, _q
from banger.client.transport import MemoryResponse, MemoryTransport
from banger.core.errors import InvalidInput, VMNotFound
from banger.core.models import VM, ProgressEvent, VMSpec, VMState, Workspace, to_dict
from banger.core.paths import Paths

VM_DEV = VM(
    id="0123456789ab", name="dev", image="debian-bookworm", state=VMState.RUNNING,
    spec=VMSpec(2, 2048, 8 << 30), ip="172.16.0.2", mac="02:aa:bb:cc:dd:ee",
    tap="bgr0123456789ab", dir="/state/vms/0123456789ab", backend="qemu",
    created_at=1_700_000_000.0,
)


class Daemon:
    """Records each request and answers from `answers`, keyed by (method, path)."""

    def __init__(self, answers: dict[tuple[str, str], MemoryResponse]) -> None:
        self.answers = answers
        self.requests: list[tuple[str, str, Any]] = []

    def __call__(self, method: str, path: str, body: Any) -> MemoryResponse:
        self.requests.append((method, path, body))
        return self.answers[(method, path)]


def client_for(daemon: Daemon, tmp_path: Any) -> Client:
    paths = Paths(tmp_path / "c", tmp_path / "s", tmp_path / "k", tmp_path / "r")
    return Client(paths, autostart=False, transport=MemoryTransport(daemon))


def test_create_sends_the_schema_body_and_streams_progress(tmp_path: Any) -> None:
    event = {"stage": "spec", "message": "spec: 2 vCPU", "fraction": None}
    daemon = Daemon({("POST", "/v1/vms"): MemoryResponse(
        ndjson=[{"event": event}, {"result": to_dict(VM_DEV)}]
    )})
    events: list[ProgressEvent] = []
    vm = client_for(daemon, tmp_path).create_vm(
        name="dev", vcpu=2, ready="sshd", on_progress=events.append
    )
    assert vm == VM_DEV
    assert events == [ProgressEvent("spec", "spec: 2 vCPU")]
    [(_, _, body)] = daemon.requests
    assert body == {
        "name": "dev", "image": None, "vcpu": 2, "memory_mib": None, "disk_size": None,
        "start": True, "ready": "sshd", "nat": False, "backend": None, "kernel": None,
        "cold": False, "egress_allow": None, "network_group": "",
    }


def test_an_empty_required_field_fails_before_anything_is_sent(tmp_path: Any) -> None:
    daemon = Daemon({})
    with pytest.raises(InvalidInput, match="guest_path is required"):
        client_for(daemon, tmp_path).record_workspace("dev", Workspace("", "0" * 40))
    assert daemon.requests == []


def test_error_answers_become_their_exception(tmp_path: Any) -> None:
    error = {"code": "vm_not_found", "message": "no VM named 'ghost'", "hint": "banger vm list"}
    daemon = Daemon({
        ("GET", "/v1/vms/ghost"): MemoryResponse(404, json_body={"error": error}),
        ("POST", "/v1/vms/ghost/start"): MemoryResponse(ndjson=[{"error": error}]),
    })
    client = client_for(daemon, tmp_path)
    with pytest.raises(VMNotFound, match="ghost") as info:
        client.get_vm("ghost")
    assert info.value.hint == "banger vm list"
    with pytest.raises(VMNotFound):
        client.start_vm("ghost")
    assert daemon.requests[-1] == ("POST", "/v1/vms/ghost/start", {"from_snapshot": False})


def test_ping_and_plain_requests(tmp_path: Any) -> None:
    daemon = Daemon({
        ("GET", "/v1/status"): MemoryResponse(json_body={"vms": 0}),
        ("DELETE", "/v1/vms/dev?force=1"): MemoryResponse(json_body=to_dict(VM_DEV)),
    })
    client = client_for(daemon, tmp_path)
    assert client.ping()
    assert client.delete_vm("dev", force=True).name == "dev"
    assert [(m, p) for m, p, _ in daemon.requests] == [
        ("GET", "/v1/status"), ("DELETE", "/v1/vms/dev?force=1"),
    ]


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
def test_names_are_quoted_as_path_segments_like_urllib(name: str) -> None:
    from urllib.parse import quote

    assert _q(name) == quote(name, safe="")
