"""HostNetwork: the bridge, per-VM TAPs and guest address allocation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from banger.core.config import Config
from banger.core.netplan import TAP_PREFIX, allocate_ip, prefix_len
from banger.daemon.store import Store
from banger.host.network import HostNetworkAdapter


class HostNetwork:
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

    def allocate_ip(self, reserved: set[str] | None = None) -> str:
        used = {vm.ip for vm in self._store.list_vms()} | (reserved or set())
        return allocate_ip(self._config.bridge_ip, self._config.cidr, used)

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
