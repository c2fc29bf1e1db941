"""NAT on the host: banger's nftables chains (see `banger.core.nat`) and IPv4 forwarding."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from banger.core import nat
from banger.core.nat import NatGuest
from banger.host import hostinfo
from banger.host.processes import CommandRunner


class NatAdapter(Protocol):
    def available(self) -> bool: ...

    async def replace(self, bridge: str, guests: Sequence[NatGuest]) -> None:
        """Make `guests` exactly the NATed guests of `bridge`."""
        ...

    async def remove(self, bridge: str) -> None:
        """Remove every rule of `bridge` (and banger's table once it is empty)."""
        ...

    async def present(self, bridge: str) -> bool:
        """Whether `bridge` has chains in banger's table."""
        ...

    async def enable_forwarding(self) -> None: ...


class Nftables:
    def __init__(self, runner: CommandRunner, proc: Path = Path("/proc")) -> None:
        self._run = runner
        self._forward_flag = proc / "sys/net/ipv4/ip_forward"

    def available(self) -> bool:
        return hostinfo.which("nft") is not None

    async def replace(self, bridge: str, guests: Sequence[NatGuest]) -> None:
        script = nat.render_rules(bridge, guests)
        await self._run.run(["nft", "-f", "-"], privileged=True, input=script.encode())

    async def remove(self, bridge: str) -> None:
        script = nat.render_removal(bridge)
        await self._run.run(["nft", "-f", "-"], privileged=True, input=script.encode())
        listing = await self._run.run(
            ["nft", "list", "table", nat.FAMILY, nat.TABLE], privileged=True, check=False
        )
        if listing.returncode == 0 and nat.table_is_empty(listing.stdout):
            await self._run.run(
                ["nft", "delete", "table", nat.FAMILY, nat.TABLE], privileged=True, check=False
            )

    async def present(self, bridge: str) -> bool:
        if not self.available():
            return False
        nat_chain, _ = nat.chain_names(bridge)
        result = await self._run.run(
            ["nft", "list", "chain", nat.FAMILY, nat.TABLE, nat_chain], privileged=True,
            check=False,
        )
        return result.returncode == 0

    async def enable_forwarding(self) -> None:
        # /proc/sys/net is per network namespace: this reads (and sysctl sets) the flag of
        # the namespace bangerd runs in.
        try:
            if self._forward_flag.read_text().strip() == "1":
                return
        except OSError:
            pass
        await self._run.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], privileged=True)
