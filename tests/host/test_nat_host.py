from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from banger.core.nat import NatGuest
from banger.host import hostinfo
from banger.host.nat import Nftables
from banger.host.processes import Result
from tests.support.host_fakes import FakeRunner


@dataclass
class ScriptRunner(FakeRunner):
    """Also keeps what each command got on stdin."""

    inputs: list[str] = field(default_factory=list)

    async def run(
        self, argv: Sequence[str], *, check: bool = True, privileged: bool = False,
        input: bytes | None = None,
    ) -> Result:
        assert privileged or argv[0] != "nft", "nft always runs privileged"
        self.inputs.append((input or b"").decode())
        return await super().run(argv, check=check, privileged=privileged, input=input)


def proc_with_forwarding(tmp_path: Path, value: str) -> Path:
    flag = tmp_path / "sys/net/ipv4/ip_forward"
    flag.parent.mkdir(parents=True)
    flag.write_text(value + "\n")
    return tmp_path


async def test_replace_applies_one_script(tmp_path: Path) -> None:
    runner = ScriptRunner()
    await Nftables(runner, tmp_path).replace("banger0", [NatGuest("a", "172.16.0.2")])
    assert runner.calls == [("nft", "-f", "-")]
    assert "ip saddr 172.16.0.2" in runner.inputs[0]
    assert "flush chain inet banger nat_banger0" in runner.inputs[0]


async def test_remove_drops_the_table_only_when_empty(tmp_path: Path) -> None:
    listing = ("nft", "list", "table", "inet", "banger")
    empty = ScriptRunner(responses={listing: Result(listing, 0, "table inet banger {\n}\n", "")})
    await Nftables(empty, tmp_path).remove("banger0")
    assert empty.calls[-1] == ("nft", "delete", "table", "inet", "banger")
    assert "delete chain inet banger nat_banger0" in empty.inputs[0]

    other = "table inet banger {\n\tchain nat_bgt1 {\n\t}\n}\n"
    shared = ScriptRunner(responses={listing: Result(listing, 0, other, "")})
    await Nftables(shared, tmp_path).remove("banger0")
    assert ("nft", "delete", "table", "inet", "banger") not in shared.calls


async def test_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostinfo, "which", lambda tool: f"/usr/sbin/{tool}")
    chain = ("nft", "list", "chain", "inet", "banger", "nat_banger0")
    assert await Nftables(FakeRunner(), tmp_path).present("banger0")
    assert not await Nftables(FakeRunner(fail_on={chain}), tmp_path).present("banger0")
    monkeypatch.setattr(hostinfo, "which", lambda tool: None)
    assert not await Nftables(FakeRunner(), tmp_path).present("banger0")


async def test_forwarding_is_switched_on_only_when_off(tmp_path: Path) -> None:
    runner = FakeRunner()
    await Nftables(runner, proc_with_forwarding(tmp_path / "on", "1")).enable_forwarding()
    assert runner.calls == []
    await Nftables(runner, proc_with_forwarding(tmp_path / "off", "0")).enable_forwarding()
    assert runner.calls == [("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")]
