"""Guest processes the daemon holds (`/v1/vms/{name}/processes`): started by one request,
attached to, fed stdin, signalled and resized by others, running on when their client goes
away.

Every process has a task that drains its output from the agent's channel as it comes, so a
process nobody reads never stalls the channel its VM's other streams share. What it drains
waits in a bounded buffer for the next attach: while a client is attached (and for a short
grace before the first attach, so a client that starts then attaches loses nothing) the
drain waits for it, which is back-pressure through the agent to the process; unattached,
the oldest output is dropped and counted instead. An ended process is kept until an attach
has seen its result, or FORGET_AFTER seconds."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from banger.core import guestapi
from banger.core.agentframe import ExecHeader, ExitStatus
from banger.core.errors import (
    BangerError,
    GuestAgentFailed,
    InvalidInput,
    InvalidState,
    ProcessNotFound,
    ResourceBusy,
)
from banger.daemon.guestexec import GuestExec
from banger.daemon.vms import VMService
from banger.host.agentsession import Execution, Output

BUFFER_BYTES = 1 << 20
# How long a new process's output waits for its first attach before it is dropped instead.
FIRST_ATTACH_GRACE = 5.0
FORGET_AFTER = 60.0
_KILL = 9


@dataclass(frozen=True)
class Dropped:
    """Output lost while nobody was attached, in bytes."""

    count: int


Emit = Callable[[Output | Dropped], Awaitable[None]]


class GuestProcess:
    def __init__(self, request: guestapi.StartProcess, execution: Execution, pid: int,
                 on_forget: Callable[[GuestProcess], None]) -> None:
        self.request = request
        self.pid = pid
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        self.stdin_open = request.stdin
        self.result: guestapi.ExecResult | None = None
        self.error: BangerError | None = None
        self._execution = execution
        self._on_forget = on_forget
        self._born = time.monotonic()
        self._pieces: deque[Output] = deque()
        self._size = 0
        self._dropped = 0
        self._reader: object | None = None
        self._attached_once = False
        self._timed_out = False
        self._changed = asyncio.Condition()
        self._stdin_lock = asyncio.Lock()
        self._tasks = [asyncio.create_task(self._drain())]
        if request.timeout:
            self._tasks.append(asyncio.create_task(self._kill_at(request.timeout)))

    @property
    def running(self) -> bool:
        return self.result is None and self.error is None

    def info(self) -> guestapi.ProcessInfo:
        r = self.request
        return guestapi.ProcessInfo(
            pid=self.pid, tag=r.tag, argv=r.argv, command=r.command, env=r.env, cwd=r.cwd,
            user=r.user, pty=r.pty is not None, running=self.running,
            exit_code=self.result.exit_code if self.result else None,
            signal=self.result.signal if self.result else None, started_at=self.started_at,
        )

    async def attach(self, emit: Emit) -> guestapi.ExecResult:
        """Hand `emit` what was kept since the last attach, then the live output; the exit
        status once it ended. A newer attach takes over: this one then fails."""
        token = object()
        async with self._changed:
            self._reader, self._attached_once = token, True
            self._changed.notify_all()
        try:
            while True:
                async with self._changed:
                    await self._changed.wait_for(
                        lambda: self._reader is not token or bool(self._pieces)
                        or bool(self._dropped) or not self.running
                    )
                    if self._reader is not token:
                        raise ResourceBusy(f"another client attached to process {self.pid}")
                    item: Output | Dropped | None = None
                    if self._dropped:
                        item, self._dropped = Dropped(self._dropped), 0
                    elif self._pieces:
                        item = self._pieces.popleft()
                        self._size -= len(item.data)
                        self._changed.notify_all()
                if item is not None:
                    try:
                        await emit(item)
                    except BaseException:
                        await self._put_back(item)  # the client went away: the next one gets it
                        raise
                    continue
                self._on_forget(self)  # it ended and this attach saw all of it
                if self.error is not None:
                    raise self.error
                assert self.result is not None
                return self.result
        finally:
            async with self._changed:
                if self._reader is token:
                    self._reader = None
                    self._changed.notify_all()

    async def _put_back(self, item: Output | Dropped) -> None:
        async with self._changed:
            if isinstance(item, Dropped):
                self._dropped += item.count
            else:
                self._pieces.appendleft(item)
                self._size += len(item.data)

    async def send_stdin(self, data: bytes, close: bool) -> None:
        async with self._stdin_lock:
            if not self.running:
                raise InvalidState(f"process {self.pid} has ended")
            if not self.stdin_open:
                raise InvalidState(f"the stdin of process {self.pid} is closed",
                                   hint="start it with stdin: true to write to it")
            await self._execution.write_stdin(data)
            if close:
                self.stdin_open = False
                await self._execution.close_stdin()

    async def signal(self, number: int) -> None:
        if not self.running:
            raise InvalidState(f"process {self.pid} has ended")
        await self._execution.kill(number)

    async def resize(self, cols: int, rows: int) -> None:
        if self.request.pty is None:
            raise InvalidInput(f"process {self.pid} has no PTY")
        if self.running:
            await self._execution.resize(cols, rows)

    async def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _drain(self) -> None:
        try:
            async for piece in self._execution.output():
                await self._keep(piece)
            status = self._execution.status or ExitStatus()
            self.result = guestapi.ExecResult(exit_code=status.exit_code, signal=status.signal,
                                              timed_out=self._timed_out)
        except BangerError as exc:
            self.error = exc
        finally:
            if self.result is None and self.error is None:
                self.error = GuestAgentFailed("the daemon stopped following the process")
            async with self._changed:
                self._changed.notify_all()
            asyncio.get_running_loop().call_later(FORGET_AFTER, self._on_forget, self)
            for task in self._tasks[1:]:
                task.cancel()

    async def _keep(self, piece: Output) -> None:
        async with self._changed:
            while self._size + len(piece.data) > BUFFER_BYTES and self._pieces:
                if self._reader is not None:
                    await self._changed.wait()
                    continue
                grace = FIRST_ATTACH_GRACE - (time.monotonic() - self._born)
                if self._attached_once or grace <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), grace)
            while self._size + len(piece.data) > BUFFER_BYTES and self._pieces:
                oldest = self._pieces.popleft()
                self._size -= len(oldest.data)
                self._dropped += len(oldest.data)
            self._pieces.append(piece)
            self._size += len(piece.data)
            self._changed.notify_all()

    async def _kill_at(self, timeout: float) -> None:
        await asyncio.sleep(timeout)
        self._timed_out = True
        with contextlib.suppress(BangerError):
            await self._execution.kill(_KILL)


class ProcessTable:
    """The processes of every VM, by VM id and guest pid."""

    def __init__(self, guest_exec: GuestExec, vms: VMService) -> None:
        self._exec = guest_exec
        self._vms = vms
        self._by_vm: dict[str, dict[int, GuestProcess]] = {}

    async def start(self, name: str, request: guestapi.StartProcess) -> guestapi.ProcessInfo:
        try:
            header = ExecHeader(
                argv=request.argv, command=request.command, env=request.env or {},
                cwd=request.cwd, user=request.user,
                pty=(request.pty.cols, request.pty.rows) if request.pty else None,
            )
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc
        session = await self._exec.session(name)
        vm_id = self._vms.get(name).id
        execution = await session.start(header, stdin=request.stdin)
        assert execution.pid is not None
        table = self._by_vm.setdefault(vm_id, {})

        def forget(process: GuestProcess) -> None:
            if table.get(process.pid) is process:
                del table[process.pid]

        process = GuestProcess(request, execution, execution.pid, forget)
        table[process.pid] = process  # a pid the guest reused replaces its ended owner
        return process.info()

    def list(self, name: str) -> list[guestapi.ProcessInfo]:
        table = self._by_vm.get(self._vms.get(name).id, {})
        return [process.info() for process in sorted(table.values(), key=lambda p: p.pid)]

    def get(self, name: str, pid: int) -> GuestProcess:
        process = self._by_vm.get(self._vms.get(name).id, {}).get(pid)
        if process is None:
            raise ProcessNotFound(f"no process {pid} in VM {name!r}")
        return process

    async def close(self) -> None:
        for table in list(self._by_vm.values()):
            for process in list(table.values()):
                await process.cancel()
        self._by_vm.clear()
