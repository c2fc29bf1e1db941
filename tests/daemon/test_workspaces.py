"""The daemon's workspace records, through the real client over the API socket."""

from __future__ import annotations

import json

import pytest

from banger.core.errors import InvalidInput, NotFound, VMNotFound
from banger.core.models import Workspace, vm_from_dict
from tests.support.api import Api

BASE = "c0ffee" + "0" * 34


async def test_record_and_read_a_workspace(api: Api) -> None:
    await api.call(api.client.create_vm, name="dev")
    recorded = await api.call(
        api.client.record_workspace, "dev",
        Workspace(guest_path="~/repo/", base_commit=BASE, source="/home/u/src/app",
                  branch="feature", readonly=True),
    )
    assert recorded.guest_path == "/root/repo"
    assert recorded.prepared_at > 0
    assert (recorded.base_commit, recorded.branch, recorded.readonly) == (BASE, "feature", True)
    assert await api.call(api.client.get_workspace, "dev", "/root/repo") == recorded
    assert await api.call(api.client.list_workspaces, "dev") == [recorded]
    assert (await api.call(api.client.get_vm, "dev")).workspaces == [recorded]


async def test_a_new_prepare_at_the_same_path_replaces_the_record(api: Api) -> None:
    await api.call(api.client.create_vm, name="dev")
    await api.call(api.client.record_workspace, "dev", Workspace("/root/repo", BASE))
    await api.call(api.client.record_workspace, "dev", Workspace("/root/other", ""))
    newer = "d" * 40
    await api.call(api.client.record_workspace, "dev", Workspace("/root/repo", newer))
    listed = await api.call(api.client.list_workspaces, "dev")
    assert sorted((w.guest_path, w.base_commit) for w in listed) == [
        ("/root/other", ""), ("/root/repo", newer),
    ]


async def test_records_survive_a_restart_of_the_vm(api: Api) -> None:
    await api.call(api.client.create_vm, name="dev")
    await api.call(api.client.record_workspace, "dev", Workspace("/root/repo", BASE))
    await api.call(api.client.stop_vm, "dev")
    await api.call(api.client.start_vm, "dev")
    assert (await api.call(api.client.get_workspace, "dev", "/root/repo")).base_commit == BASE


async def test_workspace_errors(api: Api) -> None:
    with pytest.raises(VMNotFound):
        await api.call(api.client.record_workspace, "ghost", Workspace("/root/repo", BASE))
    await api.call(api.client.create_vm, name="dev")
    with pytest.raises(NotFound, match="no workspace recorded at /root/repo") as info:
        await api.call(api.client.get_workspace, "dev", "/root/repo")
    assert "banger vm workspace prepare dev" in info.value.hint
    with pytest.raises(InvalidInput, match="invalid commit id"):
        await api.call(api.client.record_workspace, "dev", Workspace("/root/repo", "HEAD"))
    with pytest.raises(InvalidInput, match="invalid guest path"):
        await api.call(api.client.record_workspace, "dev", Workspace("repo", BASE))
    with pytest.raises(InvalidInput, match="guest_path is required"):
        await api.call(api.client.request, "PUT", "/v1/vms/dev/workspace", {})


def test_vm_rows_from_before_workspaces_still_load() -> None:
    old = {
        "id": "0123456789ab", "name": "dev", "image": "debian-bookworm", "state": "stopped",
        "spec": {"vcpu": 2, "memory_mib": 1024, "disk_size_bytes": 1 << 33},
        "ip": "172.16.0.2", "mac": "02:00:00:00:00:01", "tap": "bgr0123456789ab",
        "dir": "/s/vms/0123456789ab", "backend": "qemu", "created_at": 1.0,
    }
    assert vm_from_dict(json.loads(json.dumps(old))).workspaces == []
    newer = {**old, "workspaces": [{"guest_path": "/root/repo", "base_commit": BASE,
                                    "added_later": True}]}
    assert vm_from_dict(newer).workspaces == [Workspace("/root/repo", BASE)]
