"""`vm stats`, `vm create --nat` and `vm set --nat/--no-nat` against a fake client."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from banger.core.models import VM
from banger.core.stats import DiskUsage, GuestFigures, HostFigures, Sample, VMStats
from tests.support.cli import VM_DEV, FakeClient, run

REPORT = VMStats(
    name="dev", state="running", interval=10.0,
    samples=[
        Sample(1000.0, HostFigures(None, 1.0, 300 << 20, None, 0), None, "timed out"),
        Sample(1010.0, HostFigures(4.5, 2.0, 310 << 20, 300 << 20, 1),
               GuestFigures((0.1, 0.2, 0.3), 2 << 30, 200 << 20,
                            [DiskUsage("/", 1 << 30, 3 << 30), DiskUsage("/root", 1 << 20,
                                                                         8 << 30)],
                            4096, 8192), "", 2.5),
    ],
    idle_since=None, auto_stop_after=None,
)


class StatsClient(FakeClient):
    def vm_stats(self, name: str) -> VMStats:
        self._call("vm_stats", name)
        return REPORT

    def set_vm(self, name: str, **kwargs: Any) -> VM:
        updated = super().set_vm(name, **kwargs)
        return replace(updated, nat=bool(kwargs.get("nat")))


@pytest.fixture
def stats_client(client: FakeClient) -> FakeClient:
    client.__class__ = StatsClient
    return client


def test_vm_stats_renders_figures_and_history(
    stats_client: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["vm", "stats", "dev"], capsys)
    assert code == 0
    assert "vmm cpu:      4.5% of one host CPU" in out
    assert "guest memory: 200M used of 2G" in out
    assert "disk /root:   1M used of 8G" in out
    assert "connections:  1 open" in out
    assert "TIME" in out and "GUEST CPU" in out
    assert stats_client.called("vm_stats") == [(("dev",), {})]


def test_vm_stats_json(stats_client: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(["vm", "stats", "dev", "--json"], capsys)
    data = json.loads(out)
    assert data["samples"][1]["guest"]["disks"][1]["mount"] == "/root"
    assert data["samples"][0]["guest_error"] == "timed out"


def test_nat_flags(stats_client: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    run(["vm", "create", "--name", "web", "--nat"], capsys)
    assert stats_client.called("create_vm")[0][1]["nat"] is True
    run(["vm", "create", "--name", "web2"], capsys)
    assert stats_client.called("create_vm")[1][1]["nat"] is False
    _, out, _ = run(["vm", "set", "dev", "--nat"], capsys)
    assert out.endswith(", nat on\n")
    _, out, _ = run(["vm", "set", "dev", "--no-nat"], capsys)
    assert out.endswith(", nat off\n")
    assert [kwargs["nat"] for _, kwargs in stats_client.called("set_vm")] == [True, False]
    assert VM_DEV.nat is False
