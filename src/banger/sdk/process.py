"""Background processes: `sb.exec(..., background=True)` returns a Process at once.

The daemon holds the process, not this object: it keeps running when the program that
started it ends, and any program can find it again with `sb.processes()` and read its
output with `wait()` (what the daemon kept since the last reader, up to 1 MiB, then live)."""

from __future__ import annotations

import signal as signals
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from banger.client import Client
from banger.core import guestapi
from banger.core.errors import ProcessNotFound
from banger.sdk.results import ExecResult, Lines, OnText

Hints = Callable[[], AbstractContextManager[None]]


@dataclass(frozen=True)
class Process:
    """A command running in the background in sandbox `vm`. `pid` is the guest's."""

    vm: str
    pid: int
    command: str | None
    argv: tuple[str, ...] | None
    tag: str | None
    started_at: str  # ISO 8601, UTC
    _client: Client = field(repr=False, compare=False)
    _hints: Hints = field(repr=False, compare=False)

    @classmethod
    def of(cls, client: Client, vm: str, info: guestapi.ProcessInfo, hints: Hints) -> Process:
        return cls(vm, info.pid, info.command, tuple(info.argv) if info.argv else None,
                   info.tag, info.started_at, client, hints)

    def info(self) -> guestapi.ProcessInfo:
        """What the daemon knows of it now: `running`, `exit_code`, `signal`, ..."""
        with self._hints():
            found = [p for p in self._client.list_processes(self.vm) if p.pid == self.pid]
        if not found:
            with self._hints():
                raise ProcessNotFound(f"no process {self.pid} in {self.vm}")
        return found[0]

    @property
    def running(self) -> bool:
        return self.info().running

    def wait(
        self, on_stdout: OnText | None = None, on_stderr: OnText | None = None,
    ) -> ExecResult:
        """Read its output until it ends: first what the daemon kept since the last
        reader (the oldest bytes dropped past 1 MiB), then live. Call it again after an
        interruption to re-attach."""
        out, err = Lines(on_stdout), Lines(on_stderr)
        with self._hints():
            result = self._client.attach_process(self.vm, self.pid, out.feed, err.feed)
        return ExecResult(result.exit_code, result.signal, out.finish(), err.finish(),
                          result.timed_out)

    def kill(self, signal: int = signals.SIGKILL) -> None:
        """Send it `signal` (SIGKILL by default; signal.SIGTERM to let it clean up)."""
        with self._hints():
            self._client.signal_process(self.vm, self.pid, int(signal))

    def send_stdin(self, data: bytes | str) -> None:
        """Write to its stdin (started with `stdin=True`)."""
        with self._hints():
            self._client.send_stdin(self.vm, self.pid, data.encode() if isinstance(data, str)
                                    else data)

    def close_stdin(self) -> None:
        with self._hints():
            self._client.close_stdin(self.vm, self.pid)


def start_process(
    client: Client, vm: str, argv: list[str] | None, shell: str | None, *, cwd: str | None,
    env: Mapping[str, str] | None, user: str | None, stdin: bytes | str | bool,
    timeout: float, tag: str | None, hints: Hints,
) -> Process:
    """Start it; `stdin` True keeps its stdin open, data is written to it then closed."""
    request = guestapi.StartProcess(
        argv=argv, command=shell, env=dict(env) if env else None, cwd=cwd, user=user,
        tag=tag, stdin=bool(stdin), timeout=timeout,
    )
    process = Process.of(client, vm, client.start_process(vm, request), hints)
    if not isinstance(stdin, bool) and stdin:
        process.send_stdin(stdin)
        process.close_stdin()
    return process
