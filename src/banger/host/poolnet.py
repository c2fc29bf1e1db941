"""Pool mode's adapters: the network root prepared (`banger system setup`), looked at but
never changed. They run no `ip`, `nft`, `sysctl` or sudo: the links are read from
/proc/self/net/dev, which (unlike a sysfs mounted elsewhere) always shows the network
namespace the process is in."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from banger.core.errors import HostError, Unsupported
from banger.core.nat import GuestNet
from banger.core.usernet import UserNetwork

PROC_NET_DEV = Path("/proc/self/net/dev")


def link_names(proc_net_dev: Path = PROC_NET_DEV) -> set[str]:
    """The network interfaces of this process's namespace."""
    lines = proc_net_dev.read_text().splitlines()[2:]  # two header lines
    return {line.split(":", 1)[0].strip() for line in lines if ":" in line}


def _setup_hint(net: UserNetwork) -> str:
    return f"ask root to run `sudo banger system setup --user {net.user}` (again)"


class PoolLinks:
    """The HostNetworkAdapter of pool mode: the bridge and TAPs exist already."""

    def __init__(self, net: UserNetwork, proc_net_dev: Path = PROC_NET_DEV) -> None:
        self._net = net
        self._proc_net_dev = proc_net_dev

    async def link_exists(self, name: str) -> bool:
        return name in link_names(self._proc_net_dev)

    async def ensure_bridge(self, name: str, ip: str, prefix_len: int) -> None:
        if not await self.link_exists(name):
            raise HostError(f"bridge {name} of this user's network is missing",
                            hint=_setup_hint(self._net))

    async def create_tap(self, tap: str, bridge: str) -> None:
        if not await self.link_exists(tap):
            raise HostError(f"TAP {tap} of this user's pool is missing",
                            hint=_setup_hint(self._net))

    async def delete_tap(self, tap: str) -> None:
        """The TAP goes back to the pool: it stays, owned by the user, for the next VM."""

    async def list_taps(self, prefix: str, bridge: str) -> list[str]:
        return []  # nothing to sweep: the pool's TAPs are root's and stay


class SetupRules:
    """The NatAdapter of pool mode: root's rules already contain every slot (its MAC and IP
    only, masqueraded or contained, guests isolated), so a sync has nothing to change."""

    def __init__(self, net: UserNetwork) -> None:
        self._net = net

    def available(self) -> bool:
        return True

    async def replace(
        self, bridge: str, bridge_ip: str, guests: Sequence[GuestNet],
        quarantined_taps: Iterable[str],
    ) -> None:
        return None

    async def remove(self, bridge: str) -> None:
        return None

    async def missing(self, bridge: str) -> list[str]:
        return []

    async def allow(self, bridge: str, vm_id: str, addresses: Sequence[tuple[str, int]]) -> None:
        raise Unsupported("egress allowlists need per-VM firewall rules, which a daemon "
                          "without root cannot make", hint=_setup_hint(self._net))

    async def enable_forwarding(self) -> None:
        return None


class NoResolved:
    """systemd-resolved routing needs root; in pool mode `.vm` is resolved at the gateway."""

    def available(self) -> bool:
        return False

    async def route(self, link: str, server: str, domain: str) -> None:
        return None

    async def revert(self, link: str) -> None:
        return None
