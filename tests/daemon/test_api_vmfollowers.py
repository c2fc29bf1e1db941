"""The API's NAT flags and stats endpoint, through the real client."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest

from banger.core.errors import InvalidInput, MissingTool, NameTaken, ResourceBusy
from banger.core.models import ProgressEvent
from tests.support.api import Api
from tests.support.host_fakes import FakeNat


async def test_create_and_set_nat(api: Api) -> None:
    created = await api.call(api.client.create_vm, name="out", nat=True)
    assert created.nat
    nat = cast(FakeNat, api.env.services.adapters.vm_followers.nat)
    assert [(g.ip, g.nat) for g in nat.guests["banger0"]] == [(created.ip, True)]
    updated = await api.call(api.client.set_vm, "out", nat=False, egress_allow=["10.1.0.0/16"],
                             network_group="web")
    assert not updated.nat and updated.egress_allow == ["10.1.0.0/16"]
    assert updated.network_group == "web"
    [guest] = nat.guests["banger0"]
    assert (guest.nat, guest.allow_cidrs, guest.group) == (False, ("10.1.0.0/16",), "web")
    plain = await api.call(api.client.create_vm, name="plain")
    assert not plain.nat and plain.egress_allow == [] and plain.network_group == ""
    with pytest.raises(InvalidInput, match="egress"):
        await api.call(api.client.create_vm, name="bad", egress_allow=["not a name"])
    with pytest.raises(InvalidInput, match="network group"):
        await api.call(api.client.set_vm, "plain", network_group="-x")


async def test_nat_without_nft_is_a_clear_error(api: Api) -> None:
    cast(FakeNat, api.env.services.adapters.vm_followers.nat).is_available = False
    with pytest.raises(MissingTool, match="nftables"):
        await api.call(api.client.create_vm, name="out", nat=True)
    assert await api.call(api.client.list_vms) == []
    # Without nft no guest can be contained: none starts.
    with pytest.raises(MissingTool, match="nftables"):
        await api.call(api.client.create_vm, name="plain")
    assert await api.call(api.client.list_vms) == []
    await api.call(api.client.create_vm, name="plain", start=False)
    with pytest.raises(MissingTool):
        await api.call(api.client.set_vm, "plain", nat=True)
    await api.call(api.client.set_vm, "plain", nat=False)  # turning it off always works


async def test_nat_must_be_a_boolean(api: Api) -> None:
    with pytest.raises(InvalidInput, match="nat"):
        await api.call(api.client.request, "PATCH", "/v1/vms/x", {"nat": "yes"})


async def test_stats(api: Api) -> None:
    vm = await api.call(api.client.create_vm, name="dev")
    report = await api.call(api.client.vm_stats, "dev")
    assert (report.name, report.state) == ("dev", "running")
    assert len(report.samples) == 1
    sample = report.samples[0]
    assert sample.guest is not None and sample.guest.load == (0.0, 0.0, 0.0)
    assert sample.host is None  # the fake /proc knows no such process
    await api.call(api.client.stop_vm, "dev")
    stopped = await api.call(api.client.vm_stats, "dev")
    assert stopped.state == "stopped" and stopped.samples == []
    assert stopped.idle_since is None
    assert vm.ip


async def test_image_export_import_and_forced_delete(api: Api, tmp_path: Path) -> None:
    await api.call(api.client.create_vm, name="dev", start=False)
    out = tmp_path / "img.tar.zst"
    events: list[ProgressEvent] = []
    result = await api.call(api.client.export_image, "debian-bookworm", str(out),
                            on_progress=events.append)
    assert result["path"] == str(out) and events[-1].fraction == 1.0
    imported = await api.call(api.client.import_image, str(out), as_name="copy")
    assert imported.name == "copy" and imported.managed
    with pytest.raises(NameTaken):
        await api.call(api.client.import_image, str(out))
    with pytest.raises(ResourceBusy, match="dev"):
        await api.call(api.client.delete_image, "debian-bookworm")
    await api.call(api.client.delete_image, "debian-bookworm", force=True)
    assert await api.call(api.client.list_vms) == []
    assert [i.name for i in await api.call(api.client.list_images)] == ["copy"]
