"""`banger.AsyncSandbox`: the Sandbox for asyncio code, with the same names, awaited.

Each call runs the synchronous client in a worker thread (`asyncio.to_thread`): the client
speaks HTTP/1.1 over the daemon's Unix socket on the standard library, and a second,
native-asyncio copy of that protocol would be two implementations to keep in step for no
gain a program could measure (a request costs ~1 ms of the daemon's and the guest's time
against ~20 µs to hand it to a thread). What this means for callers: calls run
concurrently, up to the default executor's thread count; `on_stdout`/`on_stderr` are
called on the event loop's thread, in order; and cancelling an awaiting task stops the
wait, not the command (kill a background process with `await p.kill()`)."""

from __future__ import annotations

import asyncio
import builtins
import os
import signal as signals
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Literal, ParamSpec, TypeVar, overload

from banger.client import Client
from banger.core.models import VM, VMState
from banger.sdk.results import ExecResult, OnText
from banger.sdk.sandbox import Command, OnProgress, Sandbox, _quiet

if TYPE_CHECKING:
    from banger.core.guestapi import FileEntry, ProcessInfo
    from banger.core.models import Workspace
    from banger.core.ports import Port
    from banger.core.stats import VMStats
    from banger.sdk.files import Files
    from banger.sdk.process import Process

P = ParamSpec("P")
T = TypeVar("T")


async def _threaded(call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    return await asyncio.to_thread(call, *args, **kwargs)


def _on_loop(callback: OnText | None) -> OnText | None:
    """`callback`, called on the running loop's thread instead of the worker's."""
    if callback is None:
        return None
    loop = asyncio.get_running_loop()

    def on_loop(text: str) -> None:
        loop.call_soon_threadsafe(callback, text)
    return on_loop


class AsyncFiles:
    def __init__(self, files: Files) -> None:
        self._files = files

    async def read(self, path: str) -> bytes:
        return await _threaded(self._files.read, path)

    async def read_text(self, path: str) -> str:
        return await _threaded(self._files.read_text, path)

    async def write(
        self, path: str, data: bytes | str, mode: int = 0o644, owner: str | None = None,
    ) -> None:
        await _threaded(self._files.write, path, data, mode, owner)

    async def list(self, path: str, depth: int = 1) -> builtins.list[FileEntry]:
        return await _threaded(self._files.list, path, depth)

    async def stat(self, path: str) -> FileEntry:
        return await _threaded(self._files.stat, path)

    async def exists(self, path: str) -> bool:
        return await _threaded(self._files.exists, path)

    async def mkdir(self, path: str, mode: int = 0o755) -> FileEntry:
        return await _threaded(self._files.mkdir, path, mode)

    async def remove(self, path: str, recursive: bool = False) -> None:
        await _threaded(self._files.remove, path, recursive)

    async def rename(self, source: str, destination: str) -> FileEntry:
        return await _threaded(self._files.rename, source, destination)


class AsyncProcess:
    """See Process; its calls awaited."""

    def __init__(self, process: Process) -> None:
        self.sync = process

    @property
    def pid(self) -> int:
        return self.sync.pid

    def __repr__(self) -> str:
        return f"AsyncProcess({self.sync.vm!r}, {self.pid})"

    async def info(self) -> ProcessInfo:
        return await _threaded(self.sync.info)

    async def wait(
        self, on_stdout: OnText | None = None, on_stderr: OnText | None = None,
    ) -> ExecResult:
        return await _threaded(self.sync.wait, _on_loop(on_stdout), _on_loop(on_stderr))

    async def kill(self, signal: int = signals.SIGKILL) -> None:
        await _threaded(self.sync.kill, signal)

    async def send_stdin(self, data: bytes | str) -> None:
        await _threaded(self.sync.send_stdin, data)

    async def close_stdin(self) -> None:
        await _threaded(self.sync.close_stdin)


class AsyncSandbox:
    """See Sandbox; `async with await AsyncSandbox.create(...) as sb:`."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sync = sandbox
        self.files = AsyncFiles(sandbox.files)

    @property
    def name(self) -> str:
        return self.sync.name

    def __repr__(self) -> str:
        return f"AsyncSandbox({self.name!r})"

    @classmethod
    async def create(
        cls, image: str | None = None, *, name: str | None = None, vcpu: int | None = None,
        memory_mib: int | None = None, disk_size: str | None = None, nat: bool = False,
        cold: bool = False, egress_allow: builtins.list[str] | None = None,
        network_group: str | None = None, keep: bool = False, client: Client | None = None,
        on_progress: OnProgress = _quiet,
    ) -> AsyncSandbox:
        return cls(await _threaded(
            Sandbox.create, image, name=name, vcpu=vcpu, memory_mib=memory_mib,
            disk_size=disk_size, nat=nat, cold=cold, egress_allow=egress_allow,
            network_group=network_group, keep=keep, client=client, on_progress=on_progress,
        ))

    @classmethod
    async def get(
        cls, name: str, *, client: Client | None = None, keep: bool = True
    ) -> AsyncSandbox:
        return cls(await _threaded(Sandbox.get, name, client=client, keep=keep))

    @classmethod
    async def list(cls, *, client: Client | None = None) -> builtins.list[AsyncSandbox]:
        return [cls(s) for s in await _threaded(Sandbox.list, client=client)]

    async def __aenter__(self) -> AsyncSandbox:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self.sync.keep:
            await self.delete()

    async def info(self) -> VM:
        return await _threaded(self.sync.info)

    async def state(self) -> VMState:
        return (await self.info()).state

    async def start(self, on_progress: OnProgress = _quiet) -> None:
        await _threaded(self.sync.start, on_progress)

    async def stop(self) -> None:
        await _threaded(self.sync.stop)

    async def pause(self) -> None:
        await _threaded(self.sync.pause)

    async def resume(self) -> None:
        await _threaded(self.sync.resume)

    async def delete(self) -> None:
        await _threaded(self.sync.delete)

    async def stats(self) -> VMStats:
        return await _threaded(self.sync.stats)

    async def logs(self) -> str:
        return await _threaded(self.sync.logs)

    async def ports(self) -> builtins.list[Port]:
        return await _threaded(self.sync.ports)

    @overload
    async def exec(
        self, command: Command, *, cwd: str | None = ..., env: Mapping[str, str] | None = ...,
        user: str | None = ..., stdin: bytes | str = ..., timeout: float = ...,
        on_stdout: OnText | None = ..., on_stderr: OnText | None = ...,
        background: Literal[False] = ...,
    ) -> ExecResult: ...

    @overload
    async def exec(
        self, command: Command, *, cwd: str | None = ..., env: Mapping[str, str] | None = ...,
        user: str | None = ..., stdin: bytes | str | bool = ..., timeout: float = ...,
        on_stdout: None = ..., on_stderr: None = ..., background: Literal[True],
        tag: str | None = ...,
    ) -> AsyncProcess: ...

    async def exec(
        self, command: Command, *, cwd: str | None = None, env: Mapping[str, str] | None = None,
        user: str | None = None, stdin: bytes | str | bool = b"", timeout: float = 0,
        on_stdout: OnText | None = None, on_stderr: OnText | None = None,
        background: bool = False, tag: str | None = None,
    ) -> ExecResult | AsyncProcess:
        if background:
            process = await _threaded(
                self.sync.exec, command, cwd=cwd, env=env, user=user, stdin=stdin,
                timeout=timeout, background=True, tag=tag,
            )
            return AsyncProcess(process)
        if isinstance(stdin, bool):
            raise TypeError("stdin=True keeps stdin open: only with background=True")
        return await _threaded(
            self.sync.exec, command, cwd=cwd, env=env, user=user, stdin=stdin,
            timeout=timeout, on_stdout=_on_loop(on_stdout), on_stderr=_on_loop(on_stderr),
        )

    async def processes(self) -> builtins.list[AsyncProcess]:
        return [AsyncProcess(p) for p in await _threaded(self.sync.processes)]

    async def upload(
        self, local: str | os.PathLike[str], dest: str = "/root/repo", *,
        branch: str | None = None, readonly: bool = False,
    ) -> Workspace:
        return await _threaded(self.sync.upload, local, dest, branch=branch,
                               readonly=readonly)
