"""Supervisor: keeps the VM records true to the host. After a (re)start of the daemon it
adopts guests that still run, marks dead ones stopped and removes TAPs and VMM processes no
record owns; while the daemon runs it notices guests that powered themselves off."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import replace
from pathlib import Path

from banger.core.models import VMState
from banger.core.vmstates import ADOPTED_AS_RUNNING, ALIVE_STATES, SUPERVISED_STATES
from banger.daemon.network import GuestNetwork
from banger.daemon.vmrecords import VMRecords
from banger.host.processes import process_argvs

log = logging.getLogger("banger.vms")


class Supervisor:
    def __init__(self, *, records: VMRecords, network: GuestNetwork, vms_dir: Path) -> None:
        self._records = records
        self._net = network
        self._dir = vms_dir

    async def reconcile(self) -> None:
        """After a (re)start of the daemon: adopt guests that still run, mark dead ones
        stopped, remove TAPs and VMM processes no record owns."""
        owned_taps: set[str] = set()
        for vm in self._records.all():
            if self._records.alive(vm):
                owned_taps.add(vm.tap)
                if vm.state in ADOPTED_AS_RUNNING:
                    self._records.save(replace(vm, state=VMState.RUNNING))
                log.info("adopted running VM %s (pid %s)", vm.name, vm.pid)
            elif vm.state in ALIVE_STATES:
                await self._records.mark_stopped(vm)
                log.info("VM %s was not running any more; marked stopped", vm.name)
        for tap in await self._net.banger_taps():
            if tap not in owned_taps:
                await self._net.detach(tap)
                log.info("removed orphaned TAP %s", tap)
        self._kill_orphan_vmms()
        self._records.write_known_hosts()

    async def supervise(self, interval: float = 1.0) -> None:
        """Notice guests that powered themselves off and release their host resources."""
        while True:
            await asyncio.sleep(interval)
            for vm in self._records.all():
                if self._records.busy(vm):
                    continue
                if vm.state in SUPERVISED_STATES and vm.pid and not self._records.alive(vm):
                    async with self._records.lock(vm):
                        current = self._records.find(vm.id)
                        if current is not None and not self._records.alive(current):
                            await self._records.mark_stopped(current)
                            log.info("VM %s exited; marked stopped", vm.name)

    def _kill_orphan_vmms(self) -> None:
        known = {vm.pid for vm in self._records.all() if self._records.alive(vm)}
        marker = str(self._dir) + "/"
        for pid, argv in process_argvs():
            if pid in known or not any(marker in part for part in argv):
                continue
            for hypervisor in self._records.hypervisors:
                if hypervisor.owns(argv):
                    log.warning("killing orphaned VMM process %d", pid)
                    hypervisor.kill(pid, signal.SIGKILL)
                    break
