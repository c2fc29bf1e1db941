"""NatService: this installation's containment rules follow the store. A sync renders the
rules for every live VM (anti-spoofing, isolation, its egress policy) and replaces this
bridge's chains in one transaction, so it is idempotent, runs at daemon start (rebuilding
after a reboot or crash) and after every VM change.

It fails closed: before a TAP joins the bridge the rules must be in place, and they drop
every frame of a TAP that no live guest owns yet (a VM that is starting, a template VM)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from banger.core import nat
from banger.core.config import Config
from banger.core.egress import parse_egress_allow
from banger.core.errors import InvalidState, MissingTool
from banger.core.models import VM, Check, VMState
from banger.core.nat import GuestNet
from banger.daemon.store import Store
from banger.host.nat import NatAdapter

log = logging.getLogger("banger.nat")

_LIVE = {VMState.STARTING, VMState.RUNNING, VMState.PAUSED, VMState.ERROR}


def guest_net(vm: VM) -> GuestNet:
    allow = parse_egress_allow(vm.egress_allow)
    return GuestNet(
        name=vm.name, vm_id=vm.id, ip=vm.ip, mac=vm.mac, tap=vm.tap, nat=vm.nat,
        allow_cidrs=allow.cidrs, allow_names=bool(allow.names), group=vm.network_group,
    )


def is_live(vm: VM) -> bool:
    return vm.state in _LIVE and vm.pid is not None


class NatService:
    def __init__(self, config: Config, store: Store, adapter: NatAdapter) -> None:
        self._config = config
        self._store = store
        self._nat = adapter
        self._lock = asyncio.Lock()
        self._applied = False
        # What the last replace put in place: a sync that would write the same again (a VM
        # going from starting to running) skips it, ~20 ms of nft on every VM start.
        self._in_place: tuple[frozenset[GuestNet], frozenset[str]] | None = None
        self._pending_taps: set[str] = set()
        # By TAP: guests whose rules go in before their VM is recorded live (`admit`).
        self._admitted: dict[str, GuestNet] = {}
        self._missing: list[str] | None = None
        self.error = ""

    def guests(self) -> list[GuestNet]:
        live = [guest_net(vm) for vm in self._store.list_vms() if is_live(vm)]
        taps = {g.tap for g in live}
        return live + [g for tap, g in self._admitted.items() if tap not in taps]

    def require(self) -> None:
        """Fail a request that needs the rules when this host cannot make them."""
        if not self._nat.available():
            raise MissingTool(
                "nft not found: banger contains its guests' network with nftables",
                hint="apt-get install nftables, then try again",
            )

    async def sync(self, *, startup: bool = False) -> None:
        """At startup, also remove rules a previous daemon left for VMs that are gone."""
        async with self._lock:
            guests = self.guests()
            bridge = self._config.bridge_name
            taps = {g.tap for g in guests}
            quarantined = self._pending_taps - taps
            wanted = (frozenset(guests), frozenset(quarantined))
            try:
                if (guests or quarantined) and (startup or wanted != self._in_place):
                    self._in_place = None  # unknown until the replace went through
                    if any(g.nat or g.allow_cidrs or g.allow_names for g in guests):
                        await self._nat.enable_forwarding()
                    await self._nat.replace(bridge, self._config.bridge_ip, guests, quarantined)
                    self._applied, self._in_place = True, wanted
                elif not (guests or quarantined) and (
                    self._applied or (startup and await self._left_behind(bridge))
                ):
                    await self._nat.remove(bridge)
                    self._applied, self._in_place = False, None
            except Exception as exc:
                self.error = str(exc)
                log.warning("network rules not updated: %s", exc)
                raise
            self.error = ""

    async def _left_behind(self, bridge: str) -> bool:
        if not self._nat.available():
            return False
        return len(await self._nat.missing(bridge)) < len(nat.expected_chains(bridge))

    async def before_attach(self, tap: str) -> None:
        """A TAP is about to join the bridge: its frames are dropped until its VM is live."""
        self.require()
        self._pending_taps.add(tap)
        await self.sync()

    async def admit(self, vm: VM) -> None:
        """Give `vm`'s guest its rules (in place of its TAP's quarantine) before it is
        recorded live: a restored guest applies its identity meanwhile (~0.3 s), so the
        rules no longer wait for it."""
        self._admitted[vm.tap] = guest_net(vm)
        self._pending_taps.discard(vm.tap)
        await self.sync()

    async def after_detach(self, tap: str) -> None:
        admitted = self._admitted.pop(tap, None) is not None
        if tap in self._pending_taps or admitted:
            self._pending_taps.discard(tap)
            # A stale rule for a TAP that is gone harms no one: the lifecycle goes on.
            with contextlib.suppress(Exception):
                await self.sync()

    async def on_vm_event(self, vm: VM) -> None:
        self._admitted.pop(vm.tap, None)  # the store says from now on
        if is_live(vm):
            self._pending_taps.discard(vm.tap)
        await self.sync()

    async def allow(self, vm_id: str, addresses: Sequence[tuple[str, int]]) -> None:
        """Let a guest reach addresses its DNS answers gave for an allowed name. Under the
        sync's lock, so a set is never made again after the sync that removed its VM."""
        async with self._lock:
            if not any(g.vm_id == vm_id and g.allow_names for g in self.guests()):
                raise InvalidState("this VM has no allowlist of names (any more)")
            await self._nat.allow(self._config.bridge_name, vm_id, addresses)

    async def verify(self) -> None:
        """Look at what is in place now, for `checks`."""
        self._missing = await self._nat.missing(self._config.bridge_name)

    def checks(self) -> list[Check]:
        if not self._nat.available():
            return [Check(
                "network rules", "fail", "nft not found: guests cannot be contained, so VMs "
                "do not start", "apt-get install nftables",
            )]
        if self.error:
            return [Check(
                "network rules", "fail", f"last update failed: {self.error}",
                "the rules need root or passwordless sudo for nft and sysctl",
            )]
        guests = self.guests()
        if guests and self._missing:
            return [Check(
                "network rules", "fail",
                f"{len(guests)} guest(s) running but missing: {', '.join(self._missing)}",
                "restart bangerd to rebuild them",
            )]
        exposed = sum(g.nat or bool(g.allow_cidrs or g.allow_names) for g in guests)
        return [Check(
            "network rules", "ok",
            f"nftables (table inet banger, table bridge banger): {len(guests)} guest(s) "
            f"contained, {exposed} with egress", required=False,
        )]
