"""NatService: the NAT rules of this installation follow the store. A sync renders the rules
for every live VM with `nat` on and replaces this bridge's chains in one transaction, so it
is idempotent, runs at daemon start (rebuilding after a reboot or crash) and after every VM
change."""

from __future__ import annotations

import asyncio
import logging

from banger.core.config import Config
from banger.core.errors import MissingTool
from banger.core.models import VM, Check, VMState
from banger.core.nat import NatGuest
from banger.daemon.store import Store
from banger.host.nat import NatAdapter

log = logging.getLogger("banger.nat")

_LIVE = {VMState.STARTING, VMState.RUNNING, VMState.PAUSED, VMState.ERROR}


class NatService:
    def __init__(self, config: Config, store: Store, adapter: NatAdapter) -> None:
        self._config = config
        self._store = store
        self._nat = adapter
        self._lock = asyncio.Lock()
        self._applied = False
        self.error = ""

    def guests(self) -> list[NatGuest]:
        return [
            NatGuest(vm.name, vm.ip) for vm in self._store.list_vms()
            if vm.nat and vm.state in _LIVE and vm.pid is not None
        ]

    def require(self) -> None:
        """Fail a request that turns NAT on when this host cannot do it."""
        if not self._nat.available():
            raise MissingTool(
                "nft not found: --nat needs nftables",
                hint="apt-get install nftables, then try again",
            )

    async def sync(self, *, startup: bool = False) -> None:
        """At startup, also remove rules a previous daemon left for VMs that are gone."""
        async with self._lock:
            guests = self.guests()
            bridge = self._config.bridge_name
            try:
                if guests:
                    await self._nat.enable_forwarding()
                    await self._nat.replace(bridge, guests)
                    self._applied = True
                elif self._applied or (startup and await self._nat.present(bridge)):
                    await self._nat.remove(bridge)
                    self._applied = False
            except Exception as exc:
                self.error = str(exc)
                log.warning("NAT rules not updated: %s", exc)
                raise
            self.error = ""

    async def on_vm_event(self, vm: VM) -> None:
        await self.sync()

    def checks(self) -> list[Check]:
        if not self._nat.available():
            return [Check(
                "nat", "warn", "nft not found: `vm create --nat` is unavailable",
                "apt-get install nftables", False,
            )]
        if self.error:
            return [Check(
                "nat", "warn", f"last NAT update failed: {self.error}",
                "NAT needs root or passwordless sudo for nft and sysctl", False,
            )]
        return [Check("nat", "ok", f"nftables (table inet banger), {len(self.guests())} "
                      "guest(s) with NAT", required=False)]
