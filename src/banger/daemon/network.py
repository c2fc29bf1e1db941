"""The guests' network on the host, one of three kinds chosen at start-up (core/netmode.py):
HostNetwork in bridge mode (a root daemon: the bridge, per-VM TAPs and guest address
allocation) or in pool mode (an ordinary user's daemon on the network root made with `banger
system setup`, see core/usernet.py: a VM takes a free slot of the user's pool, its TAP, IP
and MAC, and gives it back when deleted; what root's fixed rules cannot express is refused),
or SlirpNetwork (no privileges and no setup: QEMU user-mode networking, nothing made on the
host)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from banger.core import slirp
from banger.core.config import Config
from banger.core.errors import NetworkExhausted, Unsupported
from banger.core.models import VM
from banger.core.netmode import NetworkMode, setup_command
from banger.core.netplan import TAP_PREFIX, allocate_ip, mac_for, prefix_len, tap_name_for
from banger.core.slirp import UserNet
from banger.core.usernet import UserNetwork
from banger.daemon.store import Store
from banger.host.network import HostNetworkAdapter, LoopbackPorts


@dataclass(frozen=True)
class GuestAddress:
    ip: str
    mac: str
    tap: str


class GuestNetwork(Protocol):
    """What the VM lifecycle needs of the guests' network, whichever kind it is."""

    mode: NetworkMode
    # Whether a running VM's NAT can be switched (else it takes effect at its next start).
    nat_applies_live: bool
    bridge_listeners: list[Callable[[], Awaitable[None]]]
    attach_guards: list[Callable[[str], Awaitable[None]]]
    detach_listeners: list[Callable[[str], Awaitable[None]]]
    admit_listeners: list[Callable[[VM], Awaitable[None]]]

    @property
    def gateway(self) -> str: ...
    @property
    def prefix_len(self) -> int: ...
    @property
    def dns_server(self) -> str: ...
    def address_for(self, key: str, *, nat: bool | None) -> GuestAddress:
        """The address of a new VM (`key`: its id) or template build (`nat` None)."""
        ...
    def require_policy(
        self, *, nat: bool, egress_allow: list[str], network_group: str, tap: str = "",
    ) -> None:
        """Refuse a VM network policy this kind of network cannot enforce (`tap`: an
        existing VM's)."""
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
    async def admit(self, vm: VM) -> None:
        """`vm`'s guest is about to come up on its attached TAP before its VMM is recorded
        (a restored guest applying its identity): let its network rules go in now."""
        ...
    async def banger_taps(self) -> list[str]: ...


_POOL_HINT = "in pool mode root's `banger system setup` rules are fixed; run bangerd as root"


class HostNetwork:
    nat_applies_live = True

    def __init__(
        self, config: Config, adapter: HostNetworkAdapter, store: Store, *,
        mode: NetworkMode = NetworkMode.BRIDGE, pool: UserNetwork | None = None,
    ) -> None:
        self._config = config
        self._net = adapter
        self._store = store
        self.mode = mode
        self.pool = pool
        self._leases: dict[str, str] = {}  # tap -> VM or template build id, until stored/freed
        self._bridge_ready = False
        self._lock = asyncio.Lock()
        # Called after the bridge was (re)made, e.g. to point the host's resolver at it.
        self.bridge_listeners: list[Callable[[], Awaitable[None]]] = []
        # Called with a TAP's name before it joins the bridge (the rules that contain it must
        # be in place first; raising stops the attach) and after it is gone.
        self.attach_guards: list[Callable[[str], Awaitable[None]]] = []
        self.detach_listeners: list[Callable[[str], Awaitable[None]]] = []
        # Called with a VM whose guest comes up before its VMM is recorded (see `admit`).
        self.admit_listeners: list[Callable[[VM], Awaitable[None]]] = []

    @property
    def gateway(self) -> str:
        return self._config.bridge_ip

    @property
    def prefix_len(self) -> int:
        return prefix_len(self._config.cidr)

    @property
    def dns_server(self) -> str:
        return self._config.dns_server

    def address_for(self, key: str, *, nat: bool | None) -> GuestAddress:
        """The address of a new VM (`key`: its id) or template build. In pool mode: a free
        slot of the pool, of the kind `nat` asks for (None: any, a template's)."""
        if self.pool is None:
            used = {vm.ip for vm in self._store.list_vms()}
            ip = allocate_ip(self._config.bridge_ip, self._config.cidr, used)
            return GuestAddress(ip, mac_for(key), tap_name_for(key))
        stored = {vm.id: vm.tap for vm in self._store.list_vms()}
        self._leases = {t: k for t, k in self._leases.items() if k not in stored}
        used = set(stored.values()) | set(self._leases)
        kinds = [nat] if nat is not None else [False, True]
        free = [s for kind in kinds for s in self.pool.free_slots(used, nat=kind)]
        if not free:
            kind = {True: "with NAT ", False: "without NAT ", None: ""}[nat]
            raise NetworkExhausted(
                f"every TAP {kind}of this user's pool is taken "
                f"({len(self.pool.slots)} in all, half with NAT)",
                hint="delete a VM you no longer need, or ask root for more: "
                f"`{setup_command(self.pool.user)} --taps N`",
            )
        self._leases[free[0].tap] = key
        return GuestAddress(free[0].ip, free[0].mac, free[0].tap)

    def require_policy(
        self, *, nat: bool, egress_allow: list[str], network_group: str, tap: str = "",
    ) -> None:
        """Refuse what the pool's fixed rules cannot do (a VM's TAP `tap`: its NAT cannot
        change, the slot decides it)."""
        if self.pool is None:
            return
        if egress_allow:
            raise Unsupported("egress allowlists need per-VM firewall rules, which a daemon "
                              "without root cannot make", hint=f"use --nat or none; {_POOL_HINT}")
        if network_group:
            raise Unsupported("network groups need per-VM firewall rules, which a daemon "
                              "without root cannot make", hint=_POOL_HINT)
        slot = next((s for s in self.pool.slots if s.tap == tap), None)
        if slot is not None and slot.nat != nat:
            raise Unsupported("in pool mode a VM keeps the NAT it was created with (its TAP "
                              "is masqueraded or not by root's rules)",
                              hint="create a new VM with (or without) --nat")

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
        self._leases.pop(tap, None)
        await self._net.delete_tap(tap)
        for listener in self.detach_listeners:
            await listener(tap)

    async def admit(self, vm: VM) -> None:
        for listener in self.admit_listeners:
            await listener(vm)

    async def banger_taps(self) -> list[str]:
        return await self._net.list_taps(TAP_PREFIX, self._config.bridge_name)


class SlirpNetwork:
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
        # Called with a VM whose guest comes up before its VMM is recorded (see `admit`).
        self.admit_listeners: list[Callable[[VM], Awaitable[None]]] = []

    @property
    def gateway(self) -> str:
        return slirp.GATEWAY

    @property
    def prefix_len(self) -> int:
        return slirp.PREFIX_LEN

    @property
    def dns_server(self) -> str:
        return slirp.DNS

    def address_for(self, key: str, *, nat: bool | None) -> GuestAddress:
        # The same address in every VM, each behind its own VMM; the TAP name is never made.
        return GuestAddress(slirp.GUEST_IP, mac_for(key), tap_name_for(key))

    def require_policy(
        self, *, nat: bool, egress_allow: list[str], network_group: str, tap: str = "",
    ) -> None:
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

    async def admit(self, vm: VM) -> None:
        return None

    async def banger_taps(self) -> list[str]:
        return []
