"""The guests' network on the host, one of two kinds chosen at start-up (core/netmode.py):
HostNetwork (a root daemon: the bridge, per-VM TAPs and guest address allocation) or
UserNetwork (no privileges: QEMU user-mode networking, nothing made on the host)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from banger.core import slirp
from banger.core.config import Config
from banger.core.errors import Unsupported
from banger.core.models import VM
from banger.core.netmode import NetworkMode, setup_command
from banger.core.netplan import TAP_PREFIX, allocate_ip, prefix_len
from banger.core.slirp import UserNet
from banger.daemon.store import Store
from banger.host.network import HostNetworkAdapter, LoopbackPorts


class GuestNetwork(Protocol):
    """What the VM lifecycle needs of the guests' network, whichever kind it is."""

    mode: NetworkMode
    # Whether a running VM's NAT can be switched (else it takes effect at its next start).
    nat_applies_live: bool
    bridge_listeners: list[Callable[[], Awaitable[None]]]
    attach_guards: list[Callable[[str], Awaitable[None]]]
    detach_listeners: list[Callable[[str], Awaitable[None]]]

    @property
    def gateway(self) -> str: ...
    @property
    def prefix_len(self) -> int: ...
    @property
    def dns_server(self) -> str: ...
    def allocate_ip(self, reserved: set[str] | None = None) -> str: ...
    def check_policy(self, *, egress_allow: list[str], network_group: str) -> None:
        """Refuse a VM network policy this kind of network cannot enforce."""
        ...
    def ssh_port(self, vm: VM) -> int:
        """The loopback port to forward to `vm`'s sshd on this start (0: none, the guest's
        address is reachable)."""
        ...
    def vmm_net(self, vm: VM | None) -> UserNet | None:
        """The network the VMM makes itself (None: it joins `vm.tap`); None `vm`: a
        template VM."""
        ...
    async def bridge_exists(self) -> bool: ...
    async def attach(self, tap: str) -> None: ...
    async def detach(self, tap: str) -> None: ...
    async def banger_taps(self) -> list[str]: ...


class HostNetwork:
    mode = NetworkMode.BRIDGE
    nat_applies_live = True

    def __init__(self, config: Config, adapter: HostNetworkAdapter, store: Store) -> None:
        self._config = config
        self._net = adapter
        self._store = store
        self._bridge_ready = False
        self._lock = asyncio.Lock()
        # Called after the bridge was (re)made, e.g. to point the host's resolver at it.
        self.bridge_listeners: list[Callable[[], Awaitable[None]]] = []
        # Called with a TAP's name before it joins the bridge (the rules that contain it must
        # be in place first; raising stops the attach) and after it is gone.
        self.attach_guards: list[Callable[[str], Awaitable[None]]] = []
        self.detach_listeners: list[Callable[[str], Awaitable[None]]] = []

    @property
    def gateway(self) -> str:
        return self._config.bridge_ip

    @property
    def prefix_len(self) -> int:
        return prefix_len(self._config.cidr)

    @property
    def dns_server(self) -> str:
        return self._config.dns_server

    def allocate_ip(self, reserved: set[str] | None = None) -> str:
        used = {vm.ip for vm in self._store.list_vms()} | (reserved or set())
        return allocate_ip(self._config.bridge_ip, self._config.cidr, used)

    def check_policy(self, *, egress_allow: list[str], network_group: str) -> None:
        return None

    def ssh_port(self, vm: VM) -> int:
        return 0

    def vmm_net(self, vm: VM | None) -> UserNet | None:
        return None

    async def ensure_bridge(self) -> None:
        async with self._lock:
            # Re-check each time only if we never made it: someone may delete the bridge,
            # but then create_tap fails loudly and the next call rebuilds it.
            if self._bridge_ready and await self._net.link_exists(self._config.bridge_name):
                return
            await self._net.ensure_bridge(
                self._config.bridge_name, self._config.bridge_ip, self.prefix_len
            )
            self._bridge_ready = True
            for listener in self.bridge_listeners:
                await listener()

    async def bridge_exists(self) -> bool:
        return await self._net.link_exists(self._config.bridge_name)

    async def attach(self, tap: str) -> None:
        await self.ensure_bridge()
        for guard in self.attach_guards:
            await guard(tap)
        await self._net.create_tap(tap, self._config.bridge_name)

    async def detach(self, tap: str) -> None:
        await self._net.delete_tap(tap)
        for listener in self.detach_listeners:
            await listener(tap)

    async def banger_taps(self) -> list[str]:
        return await self._net.list_taps(TAP_PREFIX, self._config.bridge_name)


class UserNetwork:
    """QEMU user-mode networking: each VMM holds its guest's private network (the same
    addresses in every VM), NATs what a VM with NAT sends through ordinary sockets of the
    daemon's user, and forwards a loopback port to the guest's sshd. Nothing is made on the
    host, so no privileges are needed; there are no TAPs, no nftables rules and no `.vm`
    names, and a VM without NAT reaches nothing at all (QEMU's `restrict=on`)."""

    mode = NetworkMode.USER
    nat_applies_live = False  # `restrict` is fixed when the VMM starts

    def __init__(self, ports: LoopbackPorts, user: str) -> None:
        self._ports = ports
        self._user = user
        self.bridge_listeners: list[Callable[[], Awaitable[None]]] = []
        self.attach_guards: list[Callable[[str], Awaitable[None]]] = []
        self.detach_listeners: list[Callable[[str], Awaitable[None]]] = []

    @property
    def gateway(self) -> str:
        return slirp.GATEWAY

    @property
    def prefix_len(self) -> int:
        return slirp.PREFIX_LEN

    @property
    def dns_server(self) -> str:
        return slirp.DNS

    def allocate_ip(self, reserved: set[str] | None = None) -> str:
        return slirp.GUEST_IP

    def check_policy(self, *, egress_allow: list[str], network_group: str) -> None:
        what = ("an egress allowlist" if egress_allow
                else "network groups" if network_group else "")
        if what:
            raise Unsupported(
                f"{what} needs banger's firewall rules, which user-mode networking has not "
                "(bangerd runs without root and without `banger system setup`)",
                hint="a VM has either --nat (full egress) or no network; for more, run "
                f"`{setup_command(self._user)}` once",
            )

    def ssh_port(self, vm: VM) -> int:
        if vm.ssh_port and self._ports.is_free(vm.ssh_port):
            return vm.ssh_port  # the same port across restarts, while nobody took it
        return self._ports.pick_free()

    def vmm_net(self, vm: VM | None) -> UserNet:
        if vm is None:
            return UserNet(ssh_port=0, restrict=True)
        return UserNet(ssh_port=vm.ssh_port, restrict=not vm.nat)

    async def bridge_exists(self) -> bool:
        return False

    async def attach(self, tap: str) -> None:
        return None

    async def detach(self, tap: str) -> None:
        return None

    async def banger_taps(self) -> list[str]:
        return []
