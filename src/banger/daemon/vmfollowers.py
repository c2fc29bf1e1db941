"""The services that follow the VM lifecycle: the `.vm` DNS server, the network rules
(containment, NAT) and the stats poller. Each listens to VMService's notifications and
rebuilds from the store, so a daemon restart (or a crash) leaves nothing stale behind.
Under user-mode networking there is no bridge to serve DNS on and no rules to make: the
DNS server and the rules stay idle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from banger.core.config import Config
from banger.core.models import Check
from banger.core.netmode import NetworkMode
from banger.core.usernet import UserNetwork
from banger.daemon.consoles import ConsoleKeeper
from banger.daemon.dns import DNS_PORT, DNSService
from banger.daemon.nat import NatService
from banger.daemon.network import GuestNetwork
from banger.daemon.stats import StatsService
from banger.daemon.store import Store
from banger.daemon.vms import VMService
from banger.host.cgroups import VMCgroups
from banger.host.dns import DNSListener, Forwarder, ResolvedLinks
from banger.host.nat import NatAdapter
from banger.host.stats import GuestStats, ProcStats

log = logging.getLogger("banger.integration")


@dataclass
class VMFollowerAdapters:
    dns_listener: DNSListener
    dns_forwarder: Forwarder
    resolved: ResolvedLinks
    resolv_conf: Callable[[], str]
    nat: NatAdapter
    proc: ProcStats
    guest_stats: GuestStats
    cgroups: VMCgroups | None = None  # where the VMMs are confined (vm stats reads them)


@dataclass
class VMFollowers:
    dns: DNSService
    nat: NatService
    stats: StatsService
    network: GuestNetwork
    consoles: ConsoleKeeper | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def _host_rules(self) -> bool:
        """Whether guests are on a bridge banger contains (and names) itself."""
        return self.network.mode != NetworkMode.USER

    async def start(self) -> None:
        """After reconcile: serve DNS, rebuild the NAT rules, start the poller."""
        if self._host_rules:
            await self.dns.start()
            if await self.network.bridge_exists():
                await self.dns.on_bridge_ready()
            try:
                await self.nat.sync(startup=True)
            except Exception:
                log.exception("NAT rules could not be rebuilt at startup")
        self._tasks.append(asyncio.create_task(self.stats.run()))
        if self.consoles is not None:
            self._tasks.append(asyncio.create_task(self.consoles.run()))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.stats.close()
        await self.dns.close()

    def require_nat(self) -> None:
        """Fail a request for NAT when this host cannot contain it (user-mode networking
        needs nothing of the host for it)."""
        if self._host_rules:
            self.nat.require()

    async def verify(self) -> None:
        if self._host_rules:
            await self.nat.verify()

    def checks(self) -> list[Check]:
        if not self._host_rules:
            return []  # the network mode's own doctor line says what is missing
        return [*self.dns.checks(), *self.nat.checks()]


def build_vm_followers(
    config: Config, store: Store, network: GuestNetwork, vms: VMService,
    adapters: VMFollowerAdapters, *, dns_port: int = DNS_PORT,
) -> VMFollowers:
    nat = NatService(config, store, adapters.nat)
    dns = DNSService(
        config=config, store=store, listener=adapters.dns_listener,
        forwarder=adapters.dns_forwarder, resolved=adapters.resolved,
        resolv_conf=adapters.resolv_conf, allow=nat.allow, port=dns_port,
    )
    stats = StatsService(
        config=config, vms=vms, proc=adapters.proc, guest=adapters.guest_stats,
        cgroups=adapters.cgroups,
    )
    if network.mode != NetworkMode.USER:
        vms.listeners += [dns.on_vm_event, nat.on_vm_event]
    vms.listeners.append(stats.on_vm_event)
    if network.mode != NetworkMode.USER:
        network.bridge_listeners.append(dns.on_bridge_ready)
        network.attach_guards.append(nat.before_attach)
        network.detach_listeners.append(nat.after_detach)
        network.admit_listeners.append(nat.admit)
    return VMFollowers(dns, nat, stats, network)


def real_vm_follower_adapters(pool: UserNetwork | None = None) -> VMFollowerAdapters:
    """`pool`: root prepared this user's network; its rules stand, nothing is changed."""
    from banger.host.cgroups import detect_cgroups
    from banger.host.dns import AsyncioDNSListener, Resolvectl, UDPForwarder, read_resolv_conf
    from banger.host.nat import Nftables
    from banger.host.poolnet import NoResolved, SetupRules
    from banger.host.processes import SubprocessRunner
    from banger.host.stats import ProcFS, SSHGuestStats

    runner = SubprocessRunner()
    return VMFollowerAdapters(
        dns_listener=AsyncioDNSListener(),
        dns_forwarder=UDPForwarder(),
        resolved=Resolvectl(runner) if pool is None else NoResolved(),
        resolv_conf=read_resolv_conf,
        nat=Nftables(runner) if pool is None else SetupRules(pool),
        proc=ProcFS(),
        guest_stats=SSHGuestStats(),
        cgroups=detect_cgroups(),
    )
