"""A stand-in for banger.client.Client with one in-memory daemon: VMs by name, each with
a dict of files and a `run` function that plays the guest's commands."""

from __future__ import annotations

import dataclasses
import posixpath
import threading
from collections.abc import Callable
from typing import Any

from banger.core import guestapi
from banger.core.errors import GuestPathNotFound, InvalidState, VMNotFound
from banger.core.models import VM, VMSpec, VMState, Workspace

# (argv, command, stdin) -> (stdout chunks, stderr chunks, result)
Guest = Callable[
    [list[str] | None, str | None, bytes], tuple[list[bytes], list[bytes], dict[str, Any]]
]


def a_vm(name: str, state: VMState = VMState.RUNNING) -> VM:
    return VM(
        id="0123456789ab", name=name, image="debian-bookworm", state=state,
        spec=VMSpec(2, 1024, 8 << 30), ip="172.16.0.2", mac="02:aa:bb:cc:dd:ee",
        tap="bgr0123456789ab", dir="/state/vms/x", backend="qemu", created_at=0.0,
    )


def echo_guest(argv: list[str] | None, command: str | None, stdin: bytes) -> tuple[
    list[bytes], list[bytes], dict[str, Any]
]:
    return [(command or " ".join(argv or [])).encode()], [b"err"], {
        "exit_code": 0, "signal": None, "timed_out": False
    }


class FakeClient:
    def __init__(self, guest: Guest = echo_guest) -> None:
        self.vms: dict[str, VM] = {}
        self.files: dict[tuple[str, str], tuple[bytes, int]] = {}
        self.guest = guest
        self.calls: list[tuple[str, Any]] = []
        self.workspaces: list[Workspace] = []
        self._lock = threading.Lock()
        self.dirs: set[str] = set()
        self.owners: dict[str, str] = {}
        self.started: list[guestapi.StartProcess] = []
        self.processes: dict[int, guestapi.ProcessInfo] = {}
        self.signals: list[tuple[int, int]] = []
        self.stdin: list[tuple[int, bytes | None]] = []

    def _running(self, name: str) -> VM:
        vm = self.get_vm(name)
        if vm.state != VMState.RUNNING:
            raise InvalidState(f"VM {name!r} is not running ({vm.state})",
                               hint=f"banger vm start {name}")
        return vm

    def _set(self, name: str, state: VMState) -> VM:
        self.vms[name] = dataclasses.replace(self.get_vm(name), state=state)
        return self.vms[name]

    def get_vm(self, name: str) -> VM:
        if name not in self.vms:
            raise VMNotFound(f"no VM named {name!r}")
        return self.vms[name]

    def list_vms(self) -> list[VM]:
        return list(self.vms.values())

    def create_vm(self, *, name: str | None = None, **options: Any) -> VM:
        self.calls.append(("create_vm", {"name": name, **options}))
        options["on_progress"](None)
        vm = a_vm(name or "generated")
        self.vms[vm.name] = vm
        return vm

    def delete_vm(self, name: str, *, force: bool = False) -> VM:
        self.calls.append(("delete_vm", (name, force)))
        self.get_vm(name)
        return self.vms.pop(name)

    def start_vm(self, name: str, on_progress: Any = None) -> VM:
        return self._set(name, VMState.RUNNING)

    def stop_vm(self, name: str) -> VM:
        return self._set(name, VMState.STOPPED)

    def pause_vm(self, name: str) -> VM:
        return self._set(name, VMState.PAUSED)

    def resume_vm(self, name: str) -> VM:
        return self._set(name, VMState.RUNNING)

    def exec_vm(
        self, name: str, argv: list[str] | None = None, *, command: str | None = None,
        env: dict[str, str] | None = None, cwd: str | None = None, user: str | None = None,
        stdin: bytes = b"", timeout: float = 0, on_stdout: Callable[[bytes], None],
        on_stderr: Callable[[bytes], None],
    ) -> dict[str, Any]:
        self._running(name)
        with self._lock:
            self.calls.append(("exec_vm", {"argv": argv, "command": command, "env": env,
                                           "cwd": cwd, "user": user, "stdin": stdin,
                                           "timeout": timeout}))
        out, err, result = self.guest(argv, command, stdin)
        for chunk in out:
            on_stdout(chunk)
        for chunk in err:
            on_stderr(chunk)
        return result

    def read_file(self, name: str, path: str) -> bytes:
        self._running(name)
        return self.files[(name, path)][0]

    def write_file(
        self, name: str, path: str, data: bytes, mode: int = 0o644, owner: str | None = None,
    ) -> None:
        self._running(name)
        self.files[(name, path)] = (data, mode)
        self.owners[path] = owner or "root"

    def _entry(self, name: str, path: str) -> guestapi.FileEntry:
        if (name, path) in self.files:
            data, mode = self.files[(name, path)]
            kind, size = "file", len(data)
        elif path in self.dirs or any(p.startswith(path + "/") for _, p in self.files):
            kind, size, mode = "dir", 0, 0o755
        else:
            raise GuestPathNotFound(f"{path} does not exist in {name}")
        owner = self.owners.get(path, "root")
        return guestapi.FileEntry(name=posixpath.basename(path), path=path, type=kind, size=size,
                                  mode=mode, uid=0, gid=0, owner=owner, group=owner, mtime=0.0)

    def stat_file(self, name: str, path: str) -> guestapi.FileEntry:
        return self._entry(name, path)

    def list_files(self, name: str, path: str, depth: int = 1) -> list[guestapi.FileEntry]:
        self._entry(name, path)
        below = {p for _, p in self.files if p.startswith(path.rstrip("/") + "/")}
        below |= {p for p in self.dirs if p.startswith(path.rstrip("/") + "/")}
        return [self._entry(name, p) for p in sorted(below)
                if p.count("/") - path.rstrip("/").count("/") <= depth]

    def make_dir(self, name: str, path: str, mode: int = 0o755) -> guestapi.FileEntry:
        self.dirs.add(path)
        return self._entry(name, path)

    def remove_file(self, name: str, path: str, recursive: bool = False) -> None:
        self._entry(name, path)
        self.calls.append(("remove_file", (path, recursive)))
        self.files.pop((name, path), None)
        self.dirs.discard(path)

    def rename_file(self, name: str, source: str, destination: str) -> guestapi.FileEntry:
        self.files[(name, destination)] = self.files.pop((name, source))
        return self._entry(name, destination)

    def record_workspace(self, name: str, workspace: Workspace) -> Workspace:
        self.workspaces.append(workspace)
        return workspace

    # Processes (procs contract): each starts running, pids from 100; a kill ends it.

    def start_process(self, name: str, request: guestapi.StartProcess) -> guestapi.ProcessInfo:
        self._running(name)
        self.started.append(request)
        info = guestapi.ProcessInfo(
            pid=100 + len(self.started) - 1, tag=request.tag, argv=request.argv,
            command=request.command, env=request.env, cwd=request.cwd, user=request.user,
            pty=False, running=True, exit_code=None, signal=None,
            started_at="2026-12-07T13:00:00Z",
        )
        self.processes[info.pid] = info
        return info

    def list_processes(self, name: str) -> list[guestapi.ProcessInfo]:
        return list(self.processes.values())

    def attach_process(
        self, name: str, pid: int, on_stdout: Callable[[bytes], None],
        on_stderr: Callable[[bytes], None],
    ) -> guestapi.ExecResult:
        info = self.processes[pid]
        on_stdout(b"out\n")
        return guestapi.ExecResult(info.exit_code, info.signal)

    def signal_process(self, name: str, pid: int, signal: int) -> None:
        self.signals.append((pid, signal))
        self.processes[pid] = dataclasses.replace(self.processes[pid], running=False,
                                                  signal=signal)

    def send_stdin(self, name: str, pid: int, data: bytes) -> None:
        self.stdin.append((pid, data))

    def close_stdin(self, name: str, pid: int) -> None:
        self.stdin.append((pid, None))
