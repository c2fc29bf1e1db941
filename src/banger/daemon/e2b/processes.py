"""Guest processes for envd's Process service: started through the guest agent's exec
channel and held by the daemon (a client that goes away leaves them running), with their
guest pid, their output fanned out to whoever is attached, and signals.

The agent's exec channel reports no pid, so the command is started through a one-line
shell that prints its own pid (`$$`) on stderr and then execs the command in its place:
the first stderr line is the guest pid, at no extra round trip."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from banger.core import api
from banger.core.connect import RPCError
from banger.core.e2bwire import ProcessStart
from banger.core.errors import BangerError
from banger.daemon.guestexec import GuestExec
from banger.host.agentsession import Output

log = logging.getLogger("banger.e2b")

_PID_PRELUDE = 'echo "$$" >&2; exec "$@"'
# Ended processes stay listed this long, so a late Connect still sees their end.
ENDED_KEPT_FOR = 30.0
KILL_WAIT = 5.0


@dataclass
class Event:
    """A piece of output ("stdout" | "stderr"), or the end (`result` set)."""

    stream: str = ""
    data: bytes = b""
    result: api.ExecResult | None = None


@dataclass
class GuestProcess:
    pid: int
    start: ProcessStart
    listeners: set[asyncio.Queue[Event]] = field(default_factory=set)
    result: api.ExecResult | None = None

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


async def _ends(process: GuestProcess) -> AsyncIterator[api.ExecResult]:
    async for event in process.events():
        if event.result is not None:
            yield event.result


class ProcessTable:
    """The processes of all sandboxes, by VM name and guest pid."""

    def __init__(self, guest: GuestExec) -> None:
        self._guest = guest
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
        request = api.ExecVM(argv=["/bin/sh", "-c", _PID_PRELUDE, "sh", *start.argv],
                             env=env, cwd=cwd, user=user, timeout=timeout)
        pid_known: asyncio.Future[GuestProcess] = asyncio.get_running_loop().create_future()
        queue: asyncio.Queue[Event] = asyncio.Queue()
        prelude = bytearray()
        process: GuestProcess | None = None

        early: list[Event] = []  # stdout the agent relayed before the pid line

        async def emit(piece: Output) -> None:
            nonlocal process
            data = piece.data
            if process is None:
                if not piece.stderr:
                    early.append(Event("stdout", data))
                    return
                prelude.extend(data)
                if b"\n" not in prelude:
                    return
                line, _, data = bytes(prelude).partition(b"\n")
                process = GuestProcess(int(line), start, {queue})
                self._processes.setdefault(vm, {})[process.pid] = process
                pid_known.set_result(process)
                for event in early:
                    process.publish(event)
                if not data:
                    return
            process.publish(Event("stderr" if piece.stderr else "stdout", data))

        async def run() -> None:
            try:
                result = await self._guest.run(vm, request, emit)
            except (BangerError, OSError) as exc:
                if not pid_known.done():
                    pid_known.set_exception(exc)
                    return
                log.warning("process in %s: %s", vm, exc)
                result = api.ExecResult(exit_code=None, signal=9)
            if process is None:
                if not pid_known.done():
                    pid_known.set_exception(RPCError(
                        "unknown", f"{start.cmd}: could not be started"))
                return
            process.publish(Event(result=result))
            await asyncio.sleep(ENDED_KEPT_FOR)
            self._processes.get(vm, {}).pop(process.pid, None)

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await pid_known, queue

    async def signal(self, vm: str, pid: int, number: int) -> None:
        process = self.get(vm, pid)
        if not process.running:
            raise RPCError("not_found", f"process with pid {pid} has ended")

        async def ignore(_: Output) -> None:
            return None

        ended = asyncio.ensure_future(anext(_ends(process), None))
        await self._guest.run(vm, api.ExecVM(argv=["kill", "-s", str(number), str(pid)]),
                              ignore)
        if number == signal.SIGKILL:
            # A killed process leaves the list at once, as callers that list next expect.
            await asyncio.wait({ended}, timeout=KILL_WAIT)
        ended.cancel()

    def forget(self, vm: str) -> None:
        self._processes.pop(vm, None)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
