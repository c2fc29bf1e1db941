"""`banger.Sandbox`: a VM seen as a place to run commands and keep files.

A thin layer over `banger.client.Client`: every call is one or a few API requests, nothing
is cached (`sb.info()` asks the daemon each time), and a Sandbox object holds only a name
and a client, so several threads may share one (the client opens a connection per
request)."""

from __future__ import annotations

import builtins
import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Literal, overload

from banger.client import Client
from banger.core.errors import BangerError, BootFailed, VMNotFound
from banger.core.models import VM, ProgressEvent, VMState
from banger.core.names import generate_name
from banger.sdk.files import Files
from banger.sdk.hints import program_hints
from banger.sdk.results import ExecResult, Lines, OnText

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from banger.core.models import Workspace
    from banger.core.ports import Port
    from banger.core.stats import VMStats
    from banger.sdk.process import Process

OnProgress = Callable[[ProgressEvent], None]
Command = str | Sequence[str]


def _quiet(_: ProgressEvent) -> None:
    return None


class Sandbox:
    """One VM. `Sandbox.create(...)` makes one (deleted when its `with` block ends, unless
    `keep=True`); `Sandbox.get(name)` and `Sandbox.list()` find existing ones (kept)."""

    def __init__(self, name: str, *, client: Client | None = None, keep: bool = True) -> None:
        self.name = name
        self.client = client if client is not None else Client()
        self.keep = keep
        self.files = Files(self.client, name, self._hints)

    def __repr__(self) -> str:
        return f"Sandbox({self.name!r})"

    # Finding and making sandboxes

    @classmethod
    def create(
        cls, image: str | None = None, *, name: str | None = None, vcpu: int | None = None,
        memory_mib: int | None = None, disk_size: str | None = None, nat: bool = False,
        cold: bool = False, egress_allow: builtins.list[str] | None = None,
        network_group: str | None = None, keep: bool = False, client: Client | None = None,
        on_progress: OnProgress = _quiet,
    ) -> Sandbox:
        """Create a VM and start it; returns once a command can run in it. None means the
        daemon's default (the config's image and size; a generated name). A VM whose boot
        failed is deleted again unless `keep=True` (then `Sandbox.get(name).logs()`)."""
        client = client if client is not None else Client()
        with program_hints(lambda: None):
            if name is None:  # named here, so a failed boot can be cleaned up by name
                name = generate_name({vm.name for vm in client.list_vms()})
            try:
                vm = client.create_vm(
                    name=name, image=image, vcpu=vcpu, memory_mib=memory_mib,
                    disk_size=disk_size, nat=nat, cold=cold, egress_allow=egress_allow,
                    network_group=network_group, on_progress=on_progress,
                )
            except BootFailed as error:
                if keep:
                    error.hint = f"the VM was kept: banger.Sandbox.get({name!r}).logs()"
                else:
                    with contextlib.suppress(BangerError):
                        client.delete_vm(name, force=True)
                    error.hint = ("the VM was deleted; create(..., keep=True) keeps a VM "
                                  "that fails to boot, for its console: sb.logs()")
                raise
        return cls(vm.name, client=client, keep=keep)

    @classmethod
    def get(cls, name: str, *, client: Client | None = None, keep: bool = True) -> Sandbox:
        """The existing VM `name` (raises VMNotFound). Kept at the end of a `with` block
        unless `keep=False`."""
        sandbox = cls(name, client=client, keep=keep)
        sandbox.info()
        return sandbox

    @classmethod
    def list(cls, *, client: Client | None = None) -> builtins.list[Sandbox]:
        """Every VM of this user's bangerd, in any state (each kept at a `with`'s end)."""
        client = client if client is not None else Client()
        return [cls(vm.name, client=client) for vm in client.list_vms()]

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self.keep:
            with contextlib.suppress(VMNotFound):  # deleted inside the block already
                self.delete()

    # State

    def info(self) -> VM:
        """The VM as the daemon sees it now (state, ip, spec, ...)."""
        with self._hints():
            return self.client.get_vm(self.name)

    @property
    def state(self) -> VMState:
        return self.info().state

    @property
    def ip(self) -> str:
        return self.info().ip

    def start(self, on_progress: OnProgress = _quiet) -> None:
        with self._hints():
            self.client.start_vm(self.name, on_progress)

    def stop(self) -> None:
        with self._hints():
            self.client.stop_vm(self.name)

    def pause(self) -> None:
        with self._hints():
            self.client.pause_vm(self.name)

    def resume(self) -> None:
        with self._hints():
            self.client.resume_vm(self.name)

    def delete(self) -> None:
        """Delete the VM, running or not, disks and all."""
        with self._hints():
            self.client.delete_vm(self.name, force=True)

    def stats(self) -> VMStats:
        with self._hints():
            return self.client.vm_stats(self.name)

    def logs(self) -> str:
        """The guest console so far."""
        with self._hints():
            data, _ = self.client.vm_logs(self.name)
        return data.decode(errors="replace")

    def ports(self) -> builtins.list[Port]:
        """The sockets listening in the guest, with how the host reaches each
        (`port.reach`: "NAME.vm:PORT", or "" when only the guest can)."""
        from banger.core.ports import REPORT_SCRIPT, parse_report, ports

        report = self.exec(["sh", "-c", REPORT_SCRIPT])
        if not report.ok:
            from banger.core.errors import GuestCommandFailed

            raise GuestCommandFailed(
                f"listing the sockets of {self.name} failed: {report.stderr.strip()}"
            )
        return ports(parse_report(report.stdout), vm=self.name, ip=self.ip)

    # Commands

    @overload
    def exec(
        self, command: Command, *, cwd: str | None = ..., env: Mapping[str, str] | None = ...,
        user: str | None = ..., stdin: bytes | str = ..., timeout: float = ...,
        on_stdout: OnText | None = ..., on_stderr: OnText | None = ...,
        background: Literal[False] = ...,
    ) -> ExecResult: ...

    @overload
    def exec(
        self, command: Command, *, cwd: str | None = ..., env: Mapping[str, str] | None = ...,
        user: str | None = ..., stdin: bytes | str | bool = ..., timeout: float = ...,
        on_stdout: None = ..., on_stderr: None = ..., background: Literal[True],
        tag: str | None = ...,
    ) -> Process: ...

    def exec(
        self, command: Command, *, cwd: str | None = None, env: Mapping[str, str] | None = None,
        user: str | None = None, stdin: bytes | str | bool = b"", timeout: float = 0,
        on_stdout: OnText | None = None, on_stderr: OnText | None = None,
        background: bool = False, tag: str | None = None,
    ) -> ExecResult | Process:
        """Run `command` in the guest: a string through /bin/sh -c, a list as the argv.
        In the foreground (the default) it returns the ExecResult when the command ends,
        handing each line of output to `on_stdout`/`on_stderr` as it comes. With
        `background=True` it returns a Process at once (see Process); `stdin=True` keeps
        its stdin open for `send_stdin`."""
        if background:
            from banger.sdk.process import start_process

            argv, shell = _split(command)
            with self._hints():
                return start_process(
                    self.client, self.name, argv, shell, cwd=cwd, env=env, user=user,
                    stdin=stdin, timeout=timeout, tag=tag, hints=self._hints,
                )
        if isinstance(stdin, bool):
            raise TypeError("stdin=True keeps stdin open: only with background=True")
        argv, shell = _split(command)
        out, err = Lines(on_stdout), Lines(on_stderr)
        with self._hints():
            result = self.client.exec_vm(
                self.name, argv, command=shell, env=dict(env) if env else None, cwd=cwd,
                user=user, stdin=stdin.encode() if isinstance(stdin, str) else stdin,
                timeout=timeout, on_stdout=out.feed, on_stderr=err.feed,
            )
        return ExecResult(
            exit_code=result.get("exit_code"), signal=result.get("signal"),
            stdout=out.finish(), stderr=err.finish(),
            timed_out=bool(result.get("timed_out")),
        )

    def processes(self) -> builtins.list[Process]:
        """The background processes the daemon holds for this VM: running ones, and ended
        ones whose output nobody has read yet (kept 60 s)."""
        from banger.sdk.process import Process

        with self._hints():
            infos = self.client.list_processes(self.name)
        return [Process.of(self.client, self.name, info, self._hints) for info in infos]

    # Files

    def upload(
        self, local: str | os.PathLike[str], dest: str = "/root/repo", *,
        branch: str | None = None, readonly: bool = False,
    ) -> Workspace:
        """Copy the directory `local` to `dest` in the guest, which must not exist or be
        empty. A git checkout is copied by the rules of `banger vm run ./repo` (.git,
        tracked and untracked files, nothing .gitignore'd; submodules too) and recorded
        as a workspace, so `banger vm workspace export` gets the changes back; any other
        directory is copied whole."""
        from banger.sdk.upload import upload_directory

        with self._hints():
            return upload_directory(
                self.client, self.name, local, dest, branch=branch, readonly=readonly
            )

    def _hints(self) -> AbstractContextManager[None]:
        return program_hints(self._state_or_none)

    def _state_or_none(self) -> VMState | None:
        try:
            return self.client.get_vm(self.name).state
        except BangerError:
            return None


def _split(command: Command) -> tuple[list[str] | None, str | None]:
    """(argv, None) for a list, (None, shell command) for a string."""
    if isinstance(command, str):
        return None, command
    argv = list(command)
    if not argv:
        from banger.core.errors import InvalidInput

        raise InvalidInput("the command is empty", hint='sb.exec(["true"]) or sb.exec("true")')
    return argv, None
