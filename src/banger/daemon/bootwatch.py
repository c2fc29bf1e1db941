"""Watching a cold boot's console for a kernel that said it will hang, and rebooting it.

Only backends that can reset a guest in place take part (QEMU); the stalls boot_stall()
knows of are TCG's, and QEMU is the backend that runs TCG.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from banger.core.errors import BangerError
from banger.core.guest import boot_stall
from banger.core.models import ProgressEvent
from banger.daemon.progress import Progress
from banger.host.consolelog import ConsoleFollower
from banger.host.vmm.base import Hypervisor, LaunchSpec, Resets

log = logging.getLogger(__name__)

# Each reboot is a fresh calibration; a guest that stalls this often has another problem,
# and the caller's boot timeout reports it.
MAX_RESETS = 3
POLL_SECONDS = 0.25


@contextlib.asynccontextmanager
async def rebooting_stalled_boots(
    hypervisor: Hypervisor | None, spec: LaunchSpec, progress: Progress,
) -> AsyncIterator[None]:
    """While the body waits for the guest `spec` launched to come up, reboot it (with a
    warning) whenever its console shows a stall, up to MAX_RESETS times. `hypervisor` None:
    the guest is not booting (it was restored), nothing to watch."""
    if not isinstance(hypervisor, Resets):
        yield
        return
    watcher = asyncio.ensure_future(_watch(hypervisor, spec, progress))
    try:
        yield
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


async def _watch(hypervisor: Resets, spec: LaunchSpec, progress: Progress) -> None:
    console = ConsoleFollower(spec.console_log)  # reads only what the guest wrote since
    for attempt in range(1, MAX_RESETS + 1):
        while True:
            await asyncio.sleep(POLL_SECONDS)
            reason = boot_stall(console.read())
            if reason is not None:
                break
        message = f"warning: {spec.name}: {reason}: rebooting it ({attempt}/{MAX_RESETS})"
        log.warning("%s", message)
        progress(ProgressEvent("warning", message))
        console.skip()  # the next boot's output starts here
        try:
            await hypervisor.reset(spec.vm_dir)
        except (BangerError, OSError) as exc:
            # The VMM is gone or not answering: the caller's wait notices that on its own.
            log.warning("%s: could not reset the guest: %s", spec.name, exc)
            return
