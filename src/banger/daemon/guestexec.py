"""Commands and files in running guests over banger-agent's channel (core/agentframe.py),
the fast path a program or an agent takes instead of building ssh command lines: one
channel per VM held open by the daemon, requests multiplexed over it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from banger.core import guestapi
from banger.core.agentframe import ExecHeader, ExitStatus
from banger.core.errors import (
    BootFailed,
    GuestAgentFailed,
    GuestAgentStopped,
    GuestAgentUnavailable,
    InvalidInput,
)
from banger.core.models import VM
from banger.daemon.vmrecords import VMRecords
from banger.daemon.vms import VMService
from banger.host.agent import AgentChannel
from banger.host.agentsession import AgentSession, Output
from banger.host.vmm.base import Templates

# How long the agent may take to greet a new connection (a busy TCG guest is slow).
CONNECT_TIMEOUT = 10.0
_KILL = 9


class GuestExec:
    def __init__(
        self, vms: VMService, records: VMRecords, channels: dict[str, AgentChannel]
    ) -> None:
        self._vms = vms
        self._records = records
        self._channels = channels
        # By VM id, with the VMM's PID: a VM started again has a new agent to talk to.
        self._sessions: dict[str, tuple[int | None, AgentSession]] = {}
        # By VM id, with the VMM's PID: agents that said they stopped, and why.
        self._stopped: dict[str, tuple[int | None, str]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def run(
        self, name: str, request: guestapi.ExecVM, emit: Callable[[Output], Awaitable[None]],
    ) -> guestapi.ExecResult:
        """Run the request's command in VM `name`, `emit` its output as it comes; its exit
        status once it ends (killed with SIGKILL once `timeout` seconds have passed)."""
        try:
            header = ExecHeader(argv=request.argv, command=request.command, env=request.env or {},
                                cwd=request.cwd, user=request.user)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc
        self._vms.access(name)  # one clear error for a VM that is stopped or paused
        vm = self._vms.get(name)
        session = await self._session(vm)
        execution = await session.exec(header, request.stdin_bytes())
        timed_out = False

        async def kill_at_deadline(timeout: float) -> None:
            nonlocal timed_out
            await asyncio.sleep(timeout)
            timed_out = True
            await execution.kill(_KILL)

        killer = asyncio.create_task(kill_at_deadline(request.timeout)) if request.timeout else None
        try:
            async for piece in execution.output():
                await emit(piece)
        finally:
            if killer is not None:
                killer.cancel()
                with contextlib.suppress(asyncio.CancelledError, GuestAgentFailed):
                    await killer
        status = execution.status or ExitStatus()
        return guestapi.ExecResult(exit_code=status.exit_code, signal=status.signal,
                                   timed_out=timed_out)

    async def read_file(self, name: str, path: str) -> AsyncIterator[bytes]:
        """The content of the guest file `path` of VM `name`, in pieces."""
        session = await self._running(name, path)
        async for piece in session.read_file(path):
            yield piece

    async def write_file(
        self, name: str, path: str, content: AsyncIterator[bytes], mode: int,
        owner: str | None = None,
    ) -> None:
        """Replace the guest file `path` (atomically: a reader sees the old or the new),
        owned by `owner` (USER[:GROUP] in the guest; root by default)."""
        session = await self._running(name, path)
        await session.write_file(path, content, mode, owner)

    async def session(self, name: str) -> AgentSession:
        """The channel to the agent of VM `name` (one clear error for a VM that is stopped
        or paused)."""
        self._vms.access(name)
        return await self._session(self._vms.get(name))

    async def _running(self, name: str, path: str) -> AgentSession:
        if not path.startswith("/") or "\0" in path:
            raise InvalidInput(f"{path!r} is not an absolute guest path")
        return await self.session(name)

    async def connect(self, vm: VM, timeout: float) -> None:
        """Wait until `vm`'s agent answers (a booting guest's, within `timeout`); the
        channel stays open for the requests that follow."""
        await self._session(vm, timeout)

    async def _session(self, vm: VM, timeout: float = CONNECT_TIMEOUT) -> AgentSession:
        async with self._locks.setdefault(vm.id, asyncio.Lock()):
            known = self._sessions.get(vm.id)
            if known is not None and known[0] == vm.pid and known[1].alive:
                return known[1]
            if known is not None:
                await known[1].close()
                if known[0] == vm.pid and known[1].stopped is not None:
                    self._stopped[vm.id] = (vm.pid, known[1].stopped)
            stopped = self._stopped.get(vm.id)
            if stopped is not None and stopped[0] == vm.pid:
                raise GuestAgentStopped(stopped[1])
            profile, hypervisor = self._records.backend(vm)
            channel = self._channels.get(profile.backend)
            if channel is None or not isinstance(hypervisor, Templates):
                raise GuestAgentUnavailable(
                    f"no guest agent channel on the {profile.backend} backend"
                )
            socket = hypervisor.agent_socket(Path(vm.dir))
            deadline = time.monotonic() + timeout

            async def opener() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
                try:
                    return await channel.open(
                        socket, max(0.1, deadline - time.monotonic()),
                        lambda: self._records.alive(vm),
                    )
                except BootFailed as exc:
                    raise GuestAgentUnavailable(exc.message) from exc

            try:
                session = await AgentSession.connect(opener, timeout)
            except GuestAgentStopped as exc:
                self._stopped[vm.id] = (vm.pid, exc.message)
                raise
            self._sessions[vm.id] = (vm.pid, session)
            return session

    async def close(self) -> None:
        for _, session in self._sessions.values():
            await session.close()
        self._sessions.clear()
