"""Guest processes for envd's Process service, on the daemon's process table
(daemon/guestprocs.py: the guest's pids, stdin, PTYs, signals). That table hands a
process's output to one attached client at a time; this layer attaches once per process
and fans the output out to every Start/Connect stream that follows it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from banger.core import guestapi
from banger.core.connect import RPCError
from banger.core.e2bwire import ProcessStart
from banger.core.errors import BangerError, InvalidState, ProcessNotFound
from banger.daemon.guestprocs import Dropped, ProcessTable
from banger.host.agentsession import Output

log = logging.getLogger("banger.e2b")

# Ended processes stay known this long, so a late Connect still sees their end.
ENDED_KEPT_FOR = 30.0
KILL_WAIT = 5.0


@dataclass
class Event:
    """A piece of output ("stdout" | "stderr" | "pty"), or the end (`result` set)."""

    stream: str = ""
    data: bytes = b""
    result: guestapi.ExecResult | None = None


@dataclass
class GuestProcess:
    pid: int
    start: ProcessStart
    listeners: set[asyncio.Queue[Event]] = field(default_factory=set)
    result: guestapi.ExecResult | None = None

    @property
    def running(self) -> bool:
        return self.result is None

    def publish(self, event: Event) -> None:
        if event.result is not None:
            self.result = event.result
        for queue in self.listeners:
            queue.put_nowait(event)

    async def events(self) -> AsyncIterator[Event]:
        """Output from now on, then the end (at once if it already ended)."""
        if self.result is not None:
            yield Event(result=self.result)
            return
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self.listeners.add(queue)
        try:
            while True:
                event = await queue.get()
                yield event
                if event.result is not None:
                    return
        finally:
            self.listeners.discard(queue)


class SandboxProcesses:
    """The processes started through the endpoint, by VM name and guest pid."""

    def __init__(self, held: ProcessTable) -> None:
        self._held = held
        self._processes: dict[str, dict[int, GuestProcess]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def of(self, vm: str) -> list[GuestProcess]:
        return list(self._processes.get(vm, {}).values())

    def get(self, vm: str, pid: int) -> GuestProcess:
        found = self._processes.get(vm, {}).get(pid)
        if found is None:
            raise RPCError("not_found", f"process with pid {pid} not found")
        return found

    def by_tag(self, vm: str) -> dict[str, int]:
        return {p.start.tag: p.pid for p in self.of(vm) if p.start.tag and p.running}

    async def start(
        self, vm: str, start: ProcessStart, *, user: str, cwd: str, env: dict[str, str],
        timeout: float,
    ) -> tuple[GuestProcess, asyncio.Queue[Event]]:
        """Start the process; it and a queue already receiving all of its output."""
        pty = guestapi.PtySize(*start.pty) if start.pty else None
        info = await self._held.start(vm, guestapi.StartProcess(
            argv=start.argv, env=env, cwd=cwd, user=user, tag=start.tag, pty=pty,
            stdin=start.stdin, timeout=timeout,
        ))
        queue: asyncio.Queue[Event] = asyncio.Queue()
        process = GuestProcess(info.pid, start, {queue})
        self._processes.setdefault(vm, {})[process.pid] = process
        task = asyncio.create_task(self._follow(vm, process))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return process, queue

    async def _follow(self, vm: str, process: GuestProcess) -> None:
        stdout = "pty" if process.start.pty else "stdout"

        async def emit(piece: Output | Dropped) -> None:
            if isinstance(piece, Output):
                process.publish(Event("stderr" if piece.stderr else stdout, piece.data))

        try:
            result = await self._held.get(vm, process.pid).attach(emit)
        except BangerError as exc:
            log.warning("process %d in %s: %s", process.pid, vm, exc.message)
            result = guestapi.ExecResult(exit_code=None, signal=signal.SIGKILL)
        process.publish(Event(result=result))
        await asyncio.sleep(ENDED_KEPT_FOR)
        table = self._processes.get(vm, {})
        if table.get(process.pid) is process:
            del table[process.pid]

    async def signal(self, vm: str, pid: int, number: int) -> None:
        process = self.get(vm, pid)
        ended = asyncio.ensure_future(anext(_ends(process), None))
        try:
            await self._held.get(vm, pid).signal(number)
            if number == signal.SIGKILL:
                # A killed process leaves the list at once, as callers that list next expect.
                await asyncio.wait({ended}, timeout=KILL_WAIT)
        except (InvalidState, ProcessNotFound) as exc:
            raise RPCError("not_found", exc.message) from None
        finally:
            ended.cancel()

    async def send_stdin(self, vm: str, pid: int, data: bytes, close: bool) -> None:
        self.get(vm, pid)
        try:
            await self._held.get(vm, pid).send_stdin(data, close)
        except InvalidState as exc:
            raise RPCError("failed_precondition", exc.message) from None

    async def resize(self, vm: str, pid: int, cols: int, rows: int) -> None:
        self.get(vm, pid)
        await self._held.get(vm, pid).resize(cols, rows)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _ends(process: GuestProcess) -> AsyncIterator[guestapi.ExecResult]:
    async for event in process.events():
        if event.result is not None:
            yield event.result
