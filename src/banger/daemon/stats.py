"""StatsService: a background poller that samples every running VM each
`stats_poll_interval` (host-side VMM figures from /proc, guest figures over ssh), keeps the
recent samples in memory for `banger vm stats`, and stops VMs idle for longer than
`auto_stop_stale_after` (idle is defined in `banger.core.stats`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from banger.core.config import Config
from banger.core.confine import cgroup_name
from banger.core.errors import BangerError
from banger.core.models import VM, VMState
from banger.core.slirp import ssh_endpoint
from banger.core.stats import (
    GuestFigures,
    HostFigures,
    Sample,
    VMMCounters,
    VMStats,
    cpu_percent,
    guest_cpu_percent,
)
from banger.daemon.vms import VMService
from banger.host.cgroups import VMCgroups
from banger.host.stats import GuestStats, ProcStats

log = logging.getLogger("banger.stats")

HISTORY = 60
GUEST_TIMEOUT = 15.0


class StatsService:
    def __init__(
        self, *, config: Config, vms: VMService, proc: ProcStats, guest: GuestStats,
        clock: Callable[[], float] = time.time, history: int = HISTORY,
        cgroups: VMCgroups | None = None,
    ) -> None:
        self._vms = vms
        self._cgroups = cgroups
        self._proc = proc
        self._guest = guest
        self._clock = clock
        self._history = history
        self.interval = config.stats_poll_seconds
        self.stale_after = config.auto_stop_seconds
        self._samples: dict[str, deque[Sample]] = {}
        # (time, VMM CPU ticks) right after the last guest sample: the next CPU figure starts
        # there, so the cost of sampling the guest over ssh never counts as guest activity.
        self._marks: dict[str, tuple[float, int]] = {}
        self._last_active: dict[str, float] = {}
        self._ssh_endpoints: dict[str, tuple[str, int]] = {}
        self._vmm: dict[str, VMMCounters] = {}
        self._since = clock()

    # Sampling

    async def sample(self, vm: VM) -> Sample:
        assert vm.pid is not None
        now = self._clock()
        host = None
        figures = self._proc.process(vm.pid)
        if figures is not None:
            mark = self._marks.get(vm.id)
            percent = (
                cpu_percent(mark[1], figures.cpu_ticks, now - mark[0], self._proc.clock_ticks)
                if mark is not None else None
            )
            host = HostFigures(
                cpu_percent=percent,
                cpu_seconds=figures.cpu_ticks / self._proc.clock_ticks,
                rss_bytes=figures.rss_bytes,
                pss_bytes=figures.pss_bytes,
                connections=self._proc.connections(vm.ip),
                vmm=await self._vmm_counters(vm),
                cgroup=self._cgroups.usage(cgroup_name(vm.id)) if self._cgroups else None,
            )
        guest, error = None, ""
        endpoint = ssh_endpoint(vm.ip, vm.ssh_port)
        self._ssh_endpoints[vm.id] = endpoint
        try:
            access = self._vms.access(vm.name)
            guest = await self._guest.sample(
                *endpoint, client_key=Path(access.identity_file),
                known_hosts=Path(access.known_hosts), timeout=GUEST_TIMEOUT,
            )
        except BangerError as exc:
            error = exc.message
        after = self._proc.process(vm.pid)
        if after is not None:
            self._marks[vm.id] = (self._clock(), after.cpu_ticks)
        history = self._samples.setdefault(vm.id, deque(maxlen=self._history))
        previous = self._last_guest(history)
        guest_busy = (
            guest_cpu_percent(previous, guest)
            if guest is not None and previous is not None else None
        )
        result = Sample(now, host, guest, error, guest_busy)
        history.append(result)
        if not result.idle:
            self._last_active[vm.id] = now
        return result

    async def _vmm_counters(self, vm: VM) -> VMMCounters | None:
        try:
            samples = await self._vms.vmm_metrics(vm)
        except BangerError as exc:
            log.debug("no VMM metrics for %s: %s", vm.name, exc.message)
            samples = None
        if samples is None:
            return self._vmm.get(vm.id)
        counters = self._vmm.get(vm.id, VMMCounters()).add(samples)
        self._vmm[vm.id] = counters
        return counters

    @staticmethod
    def _last_guest(history: deque[Sample]) -> GuestFigures | None:
        for sample in reversed(history):
            if sample.guest is not None:
                return sample.guest
        return None

    async def poll_once(self) -> None:
        running = [vm for vm in self._vms.all() if vm.state == VMState.RUNNING and vm.pid]
        for vm_id in set(self._samples) - {vm.id for vm in running}:
            await self._forget(vm_id)
        await asyncio.gather(*(self.sample(vm) for vm in running))
        if self.stale_after is not None:
            for vm in running:
                await self._maybe_stop(vm)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.poll_once()
            except Exception:
                log.exception("stats poll failed")

    # Idle VMs

    def idle_since(self, vm: VM) -> float:
        return max(self._last_active.get(vm.id, 0.0), vm.started_at or 0.0, self._since)

    async def _maybe_stop(self, vm: VM) -> None:
        assert self.stale_after is not None
        idle = self._clock() - self.idle_since(vm)
        if idle < self.stale_after:
            return
        log.info("stopping VM %s: idle for %.0fs (auto_stop_stale_after)", vm.name, idle,
                 extra={"vm": vm.name})
        try:
            await self._vms.stop(vm.name)
        except BangerError as exc:
            log.warning("auto-stop of %s failed: %s", vm.name, exc.message)
        await self._forget(vm.id)

    # Queries and notifications

    async def stats(self, name: str) -> VMStats:
        vm = self._vms.get(name)
        if vm.state == VMState.RUNNING and vm.pid:
            await self.sample(vm)
        return VMStats(
            name=vm.name, state=str(vm.state), interval=self.interval,
            samples=list(self._samples.get(vm.id, ())),
            idle_since=self.idle_since(vm) if vm.state == VMState.RUNNING else None,
            auto_stop_after=self.stale_after,
        )

    async def on_vm_event(self, vm: VM) -> None:
        if vm.state != VMState.RUNNING:
            await self._forget(vm.id)

    async def close(self) -> None:
        for vm_id in list(self._ssh_endpoints):
            await self._forget(vm_id)

    async def _forget(self, vm_id: str) -> None:
        self._samples.pop(vm_id, None)
        self._marks.pop(vm_id, None)
        self._last_active.pop(vm_id, None)
        self._vmm.pop(vm_id, None)
        endpoint = self._ssh_endpoints.pop(vm_id, None)
        if endpoint is not None:
            await self._guest.forget(*endpoint)
