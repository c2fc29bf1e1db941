from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from banger.core.errors import HostError, Unsupported
from banger.core.usernet import plan_user_network
from banger.host.poolnet import PoolLinks, SetupRules

NET = plan_user_network("alice", 1000, 0, taps=2)


def net_dev(tmp_path: Path, names: list[str]) -> Path:
    path = tmp_path / "dev"
    rows = "".join(f"{name:>6}: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n" for name in names)
    path.write_text("Inter-| header\n face |header\n" + rows)
    return path


def test_pool_links_only_look_and_point_at_the_setup_when_something_is_missing(
        tmp_path: Path) -> None:
    links = PoolLinks(NET, net_dev(tmp_path, ["lo", NET.bridge, NET.slots[0].tap]))
    asyncio.run(links.ensure_bridge(NET.bridge, NET.gateway, 24))
    asyncio.run(links.create_tap(NET.slots[0].tap, NET.bridge))
    with pytest.raises(HostError) as caught:
        asyncio.run(links.create_tap(NET.slots[1].tap, NET.bridge))
    assert "sudo banger system setup --user alice" in caught.value.hint
    asyncio.run(links.delete_tap(NET.slots[0].tap))
    assert asyncio.run(links.link_exists(NET.slots[0].tap))  # back to the pool, not deleted
    with pytest.raises(HostError):
        asyncio.run(PoolLinks(NET, net_dev(tmp_path, ["lo"])).ensure_bridge(NET.bridge, "", 24))


def test_setup_rules_change_nothing_and_refuse_allowlists() -> None:
    rules = SetupRules(NET)
    assert rules.available()
    assert asyncio.run(rules.missing(NET.bridge)) == []
    with pytest.raises(Unsupported):
        asyncio.run(rules.allow(NET.bridge, "vm", [("192.0.2.1", 60)]))
