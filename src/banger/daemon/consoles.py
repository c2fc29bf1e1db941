"""Keeping every guest's console log bounded: a loop that cuts back the logs of the VMs and
template VMs under the daemon's state dirs (host/consolelog.py says how)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from banger.core.confine import CONSOLE_LOG_MAX_BYTES
from banger.host import consolelog

log = logging.getLogger("banger.consoles")

# A log can pass its bound by what the guest writes in one interval: a TCG guest writing to
# ttyS0 in a loop moved ~60 KiB/s here (2 cores, load 7-9): every byte is a trapped port
# write.
INTERVAL = 1.0
CONSOLE_FILE = "console.log"


def console_logs(root: Path, depth: int) -> Iterator[Path]:
    """The console logs in the directories up to `depth` levels below `root`."""
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    for entry in entries:
        if entry.name == CONSOLE_FILE and entry.is_file(follow_symlinks=False):
            yield Path(entry.path)
        elif depth > 0 and entry.is_dir(follow_symlinks=False):
            yield from console_logs(Path(entry.path), depth - 1)


class ConsoleKeeper:
    """`roots`: directories with VM dirs in them, and how deep those sit (VMs: 1, warm
    template builds: 2, one dir per backend)."""

    def __init__(
        self, roots: Sequence[tuple[Path, int]], limit: int = CONSOLE_LOG_MAX_BYTES
    ) -> None:
        self._roots = roots
        self._limit = limit

    def trim_once(self) -> None:
        for root, depth in self._roots:
            for path in console_logs(root, depth):
                try:
                    cut = consolelog.trim(path, self._limit)
                except OSError as exc:
                    log.warning("could not cut back %s: %s", path, exc)
                    continue
                if cut:
                    log.debug("cut %d bytes off %s", cut, path)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(INTERVAL)
            await asyncio.to_thread(self.trim_once)
