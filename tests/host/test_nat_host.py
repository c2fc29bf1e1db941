from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from banger.core.nat import GuestNet
from banger.host import hostinfo
from banger.host.nat import Nftables
from banger.host.processes import Result
from tests.support.host_fakes import FakeRunner


@dataclass
class ScriptRunner(FakeRunner):
    """Checks that nft always runs privileged."""

    async def run(
        self, argv: Sequence[str], *, check: bool = True, privileged: bool = False,
        input: bytes | None = None,
    ) -> Result:
        assert privileged or argv[0] != "nft", "nft always runs privileged"
        return await super().run(argv, check=check, privileged=privileged, input=input)


def script(runner: FakeRunner, index: int) -> str:
    return (runner.inputs[index] or b"").decode()


def proc_with_forwarding(tmp_path: Path, value: str) -> Path:
    flag = tmp_path / "sys/net/ipv4/ip_forward"
    flag.parent.mkdir(parents=True)
    flag.write_text(value + "\n")
    return tmp_path


GUEST = GuestNet("a", "aaa", "172.16.0.2", "02:00:00:00:00:0a", "bgraaa", allow_names=True)
INET = ("nft", "list", "table", "inet", "banger")
BRIDGE = ("nft", "list", "table", "bridge", "banger")


async def test_replace_applies_one_script(tmp_path: Path) -> None:
    listing = "table inet banger {\n\tset eg_banger0_old {\n\t}\n}\n"
    runner = ScriptRunner(responses={INET: Result(INET, 0, listing, "")})
    await Nftables(runner, tmp_path).replace("banger0", "172.16.0.1", [GUEST], ["bgrnew"])
    assert runner.calls == [INET, ("nft", "-f", "-")]
    applied = script(runner, -1)
    assert "ip saddr 172.16.0.2" in applied and '"bgrnew"' in applied
    assert "flush chain inet banger nat_banger0" in applied
    assert "delete set inet banger eg_banger0_old" in applied


async def test_remove_drops_the_tables_only_when_empty(tmp_path: Path) -> None:
    ours = "table inet banger {\n\tset eg_banger0_x {\n\t}\n\tchain nat_banger0 {\n\t}\n}\n"
    empty = ScriptRunner(responses={
        INET: Result(INET, 0, ours, ""),
        BRIDGE: Result(BRIDGE, 0, "table bridge banger {\n\tchain pre_banger0 {\n\t}\n}\n", ""),
    })
    await Nftables(empty, tmp_path).remove("banger0")
    assert sorted(empty.calls) == sorted([INET, BRIDGE, ("nft", "-f", "-")])  # one transaction
    removal = script(empty, -1).splitlines()
    assert "delete chain inet banger nat_banger0" in removal
    assert "delete chain bridge banger pre_banger0" in removal
    assert removal[-3:] == ["delete set inet banger eg_banger0_x",
                            "delete table bridge banger", "delete table inet banger"]

    other = "table inet banger {\n\tchain nat_bgt1 {\n\t}\n}\n"
    shared = ScriptRunner(responses={INET: Result(INET, 0, other, ""),
                                     BRIDGE: Result(BRIDGE, 1, "", "No such file")})
    await Nftables(shared, tmp_path).remove("banger0")
    removal = script(shared, -1).splitlines()
    assert "delete table inet banger" not in removal  # another bridge's chain is in it
    assert removal[-1] == "delete table bridge banger"  # made by the definitions: goes too


async def test_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostinfo, "which", lambda tool: f"/usr/sbin/{tool}")
    inet = "table inet banger {\n\tchain nat_banger0 {\n\t}\n\tchain fwd_banger0 {\n\t}\n}\n"
    bridge = "table bridge banger {\n\tchain pre_banger0 {\n\t}\n}\n"
    runner = FakeRunner(responses={INET: Result(INET, 0, inet, ""),
                                   BRIDGE: Result(BRIDGE, 0, bridge, "")})
    assert await Nftables(runner, tmp_path).missing("banger0") == [
        "inet in_banger0", "bridge fwd_banger0",
    ]
    monkeypatch.setattr(hostinfo, "which", lambda tool: None)
    assert len(await Nftables(FakeRunner(), tmp_path).missing("banger0")) == 5


async def test_allow_adds_elements_with_a_timeout(tmp_path: Path) -> None:
    runner = ScriptRunner()
    await Nftables(runner, tmp_path).allow("banger0", "aaa", [("192.0.2.7", 60)])
    assert "add element inet banger eg_banger0_aaa { 192.0.2.7 timeout 60s }" in script(runner, 0)
    await Nftables(runner, tmp_path).allow("banger0", "aaa", [])
    assert len(runner.calls) == 1


async def test_forwarding_is_switched_on_only_when_off(tmp_path: Path) -> None:
    runner = FakeRunner()
    await Nftables(runner, proc_with_forwarding(tmp_path / "on", "1")).enable_forwarding()
    assert runner.calls == []
    await Nftables(runner, proc_with_forwarding(tmp_path / "off", "0")).enable_forwarding()
    assert runner.calls == [("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")]
