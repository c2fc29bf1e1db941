"""Guest containment on the host: banger's nftables tables (see `banger.core.nat`) and IPv4
forwarding."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from banger.core import nat
from banger.core.nat import GuestNet
from banger.host import hostinfo
from banger.host.processes import CommandRunner


class NatAdapter(Protocol):
    def available(self) -> bool: ...

    async def replace(
        self, bridge: str, bridge_ip: str, guests: Sequence[GuestNet],
        quarantined_taps: Iterable[str],
    ) -> None:
        """Make `guests` exactly the guests of `bridge`, and quarantine the other TAPs."""
        ...

    async def remove(self, bridge: str) -> None:
        """Remove every rule and set of `bridge` (and banger's tables once empty)."""
        ...

    async def missing(self, bridge: str) -> list[str]:
        """The chains of `bridge` that are not in place ("family chain" each)."""
        ...

    async def allow(self, bridge: str, vm_id: str, addresses: Sequence[tuple[str, int]]) -> None:
        """Add (ip, seconds) entries to a guest's allow set."""
        ...

    async def enable_forwarding(self) -> None: ...


class Nftables:
    def __init__(self, runner: CommandRunner, proc: Path = Path("/proc")) -> None:
        self._run = runner
        self._forward_flag = proc / "sys/net/ipv4/ip_forward"

    def available(self) -> bool:
        return hostinfo.which("nft") is not None

    async def _apply(self, script: str) -> None:
        await self._run.run(["nft", "-f", "-"], privileged=True, input=script.encode())

    async def _listing(self, family: str) -> str | None:
        result = await self._run.run(
            ["nft", "list", "table", family, nat.TABLE], privileged=True, check=False
        )
        return result.stdout if result.returncode == 0 else None

    async def _sets(self) -> list[str]:
        return nat.set_names(await self._listing(nat.FAMILY) or "")

    async def replace(
        self, bridge: str, bridge_ip: str, guests: Sequence[GuestNet],
        quarantined_taps: Iterable[str],
    ) -> None:
        await self._apply(nat.render_rules(
            bridge, bridge_ip, guests, quarantined_taps=quarantined_taps,
            existing_sets=await self._sets(),
        ))

    async def remove(self, bridge: str) -> None:
        inet, l2 = await asyncio.gather(
            self._listing(nat.FAMILY), self._listing(nat.BRIDGE_FAMILY)
        )
        # A table left with nothing in it goes in the same transaction: every nft process
        # that unregisters hooks waits for the kernel (~15 ms), one instead of three.
        drop = [family for family, listing in ((nat.FAMILY, inet), (nat.BRIDGE_FAMILY, l2))
                if listing is None or nat.holds_only(listing, bridge)]
        await self._apply(nat.render_removal(bridge, nat.set_names(inet or ""), drop))

    async def missing(self, bridge: str) -> list[str]:
        if not self.available():
            return [f"{family} {chain}" for family, chain in nat.expected_chains(bridge)]
        listings = {family: await self._listing(family) or ""
                    for family in (nat.FAMILY, nat.BRIDGE_FAMILY)}
        return [f"{family} {chain}" for family, chain in nat.expected_chains(bridge)
                if not nat.chain_listed(listings[family], chain)]

    async def allow(self, bridge: str, vm_id: str, addresses: Sequence[tuple[str, int]]) -> None:
        script = nat.render_allow(bridge, vm_id, addresses)
        if script:
            await self._apply(script)

    async def enable_forwarding(self) -> None:
        # /proc/sys/net is per network namespace: this reads (and sysctl sets) the flag of
        # the namespace bangerd runs in.
        try:
            if self._forward_flag.read_text().strip() == "1":
                return
        except OSError:
            pass
        await self._run.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], privileged=True)
