"""The CLI against a fake client: canned models, the client stand-in, and running a command."""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from banger.cli.main import main
from banger.core import guestapi
from banger.core.errors import (
    BangerError,
    GuestPathNotFound,
)
from banger.core.models import VM, Image, ProgressEvent, VMSpec, VMState, to_dict
from banger.core.paths import Paths
from banger.core.remote import RemoteHost

VM_DEV = VM(
    id="0123456789ab", name="dev", image="debian-bookworm", state=VMState.RUNNING,
    spec=VMSpec(2, 2048, 8 << 30), ip="172.16.0.2", mac="02:aa:bb:cc:dd:ee",
    tap="bgr0123456789ab", dir="/state/vms/0123456789ab", backend="qemu",
    created_at=1_700_000_000.0, accel="tcg", pid=4242,
)


IMAGE = Image(
    name="debian-bookworm", rootfs="/i/rootfs.ext4", kernel="/i/vmlinuz",
    initrd="/i/initrd.img", managed=True, created_at=1_700_000_000.0,
    source="catalog: Debian bookworm", size_bytes=700 << 20,
)


TEMPLATE = {
    "backend": "qemu", "vcpu": 2, "memory_mib": 1024, "created_at": 1_700_000_000.0,
    "build_seconds": 30.0, "disk_bytes": 300 << 20, "building": False,
}


PID = 4321


ACCESS = {
    "name": "dev", "ip": "172.16.0.2", "user": "root",
    "identity_file": "/cfg/ssh/id_ed25519", "known_hosts": "/cfg/ssh/known_hosts",
    "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGuestHostKey",
}


class FakeClient:
    """Stands in for banger.client.Client: canned answers, recorded calls, injected errors."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self.remote: RemoteHost | None = None  # a local daemon, unless a test says otherwise
        self._env: dict[str, str] = dict(os.environ)  # the test's isolated HOME and XDG dirs
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.fail: dict[str, BangerError] = {}
        self.exec_output: list[tuple[bytes, bool]] = []
        self.guest_files: dict[str, bytes] = {}
        self.guest_dirs: set[str] = set()
        self.guest_tars: dict[str, bytes] = {}  # a directory's tar, by guest path
        self.exec_result: dict[str, Any] = {"exit_code": 0, "signal": None, "timed_out": False}
        self.exec_dropped = 0
        self.started: dict[str, Any] | None = None  # the body of the last start_attached
        self.guest_stdin = b""
        self.stdin_closed = threading.Event()

    def _call(self, method: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((method, args, kwargs))
        if method in self.fail:
            raise self.fail[method]

    def called(self, method: str) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        return [(args, kwargs) for name, args, kwargs in self.calls if name == method]

    def status(self) -> dict[str, Any]:
        self._call("status")
        return {"pid": 1, "version": "0.1.0", "socket": str(self.paths.socket),
                "log": "/s/bangerd.log", "state_dir": "/s", "backend": "qemu",
                "accel": "tcg", "vms": 1, "network": "user"}

    def ping(self) -> bool:
        self._call("ping")
        return False

    def doctor(self) -> list[dict[str, Any]]:
        self._call("doctor")
        return [
            {"name": "qemu", "status": "ok", "detail": "/usr/bin/qemu", "hint": "",
             "required": True},
            {"name": "mmdebstrap", "status": "warn", "detail": "not found",
             "hint": "apt-get install mmdebstrap", "required": False},
        ]

    def list_vms(self) -> list[VM]:
        self._call("list_vms")
        return [VM_DEV, replace(VM_DEV, id="ba9876543210", name="idle",
                                state=VMState.STOPPED, pid=None, ip="172.16.0.3")]

    def _list_vms_wire(self) -> list[dict[str, Any]]:
        return [to_dict(vm) for vm in self.list_vms()]

    def get_vm(self, name: str) -> VM:
        self._call("get_vm", name)
        return replace(VM_DEV, name=name)

    def create_vm(self, *, on_progress: Any, **kwargs: Any) -> VM:
        self._call("create_vm", **kwargs)
        on_progress(ProgressEvent("spec", "spec: 2 vCPU, 2048 MiB RAM, 8G disk"))
        on_progress(ProgressEvent("ready", "dev is up (1.0s to ssh)"))
        state = VMState.RUNNING if kwargs["start"] else VMState.CREATED
        return replace(VM_DEV, name=kwargs["name"] or "calm-otter", state=state)

    def _create_vm_wire(self, body: dict[str, Any], on_event: Any) -> dict[str, Any]:
        """`banger vm run`'s create: recorded as a create_vm with the body's fields."""
        kwargs = {key: value for key, value in body.items() if key not in ("backend", "kernel")}
        kwargs["network_group"] = kwargs["network_group"] or None
        return to_dict(self.create_vm(on_progress=lambda event: on_event(to_dict(event)),
                                      **kwargs))

    def start_vm(self, name: str, on_progress: Any = None, *, from_snapshot: bool = False) -> VM:
        self._call("start_vm", name, from_snapshot=from_snapshot)
        return replace(VM_DEV, name=name)

    def pause_vm(self, name: str) -> VM:
        self._call("pause_vm", name)
        return replace(VM_DEV, name=name, state=VMState.PAUSED)

    def resume_vm(self, name: str) -> VM:
        self._call("resume_vm", name)
        return replace(VM_DEV, name=name)

    def snapshot_vm(self, name: str) -> VM:
        self._call("snapshot_vm", name)
        return replace(VM_DEV, name=name)

    def stop_vm(self, name: str) -> VM:
        self._call("stop_vm", name)
        return replace(VM_DEV, name=name, state=VMState.STOPPED, pid=None)

    def kill_vm(self, name: str, signal_name: str = "KILL") -> VM:
        self._call("kill_vm", name, signal_name)
        return replace(VM_DEV, name=name, state=VMState.STOPPED, pid=None)

    def delete_vm(self, name: str, *, force: bool = False) -> VM:
        self._call("delete_vm", name, force=force)
        return replace(VM_DEV, name=name)

    def _delete_vm_wire(self, name: str, *, force: bool = False) -> dict[str, Any]:
        return to_dict(self.delete_vm(name, force=force))

    def set_vm(self, name: str, **kwargs: Any) -> VM:
        self._call("set_vm", name, **kwargs)
        return replace(VM_DEV, name=name, spec=VMSpec(4, 4096, 16 << 30))

    def vm_logs(self, name: str, offset: int = 0) -> tuple[bytes, int]:
        self._call("vm_logs", name, offset)
        return b"[    0.000000] Linux version 6.1\n", 34

    def exec_vm(self, name: str, argv: list[str], **kwargs: Any) -> dict[str, Any]:
        """Answers as a guest would: `exec_result` with `exec_output` written first."""
        on_stdout, on_stderr = kwargs.pop("on_stdout"), kwargs.pop("on_stderr")
        self._call("exec_vm", name, argv, **kwargs)
        for data, stderr in self.exec_output:
            (on_stderr if stderr else on_stdout)(data)
        return self.exec_result

    def _exec_vm_wire(self, name: str, body: dict[str, Any], on_stdout: Any,
                      on_stderr: Any) -> dict[str, Any]:
        """`banger vm run`'s exec: recorded as an exec_vm of the body's argv, cwd, stdin."""
        return self.exec_vm(name, body["argv"], cwd=body["cwd"],
                            stdin=base64.b64decode(body["stdin"]), on_stdout=on_stdout,
                            on_stderr=on_stderr)

    def start_attached(self, name: str, body: dict[str, Any], on_started: Any,
                       on_stdout: Any, on_stderr: Any, on_dropped: Any) -> dict[str, Any]:
        """Answers as a guest would: the pid, then `exec_result` with `exec_output` written
        first, once the stdin it was given (if any) is closed."""
        self._call("start_attached", name, body)
        self.started = body
        on_started(PID)
        self._call("attached", name, PID)
        if body["stdin"]:
            assert self.stdin_closed.wait(5)
        if self.exec_dropped:
            on_dropped(self.exec_dropped)
        for data, stderr in self.exec_output:
            (on_stderr if stderr else on_stdout)(data)
        return dict(self.exec_result)

    def send_stdin(self, name: str, pid: int, data: bytes) -> None:
        self._call("send_stdin", name, pid)
        self.guest_stdin += data

    def close_stdin(self, name: str, pid: int) -> None:
        self._call("close_stdin", name, pid)
        self.stdin_closed.set()

    def signal_process(self, name: str, pid: int, signal: int) -> None:
        self._call("signal_process", name, pid, signal)

    def resize_process(self, name: str, pid: int, cols: int, rows: int) -> None:
        self._call("resize_process", name, pid, cols, rows)

    def read_file(self, name: str, path: str) -> bytes:
        self._call("read_file", name, path)
        return self.guest_files[path]

    def write_file(self, name: str, path: str, data: bytes, mode: int = 0o644) -> None:
        self._call("write_file", name, path, mode=mode)
        self.guest_files[path] = data

    def stat_file(self, name: str, path: str) -> guestapi.FileEntry:
        """A file of `guest_files`, or a directory above one (or in `guest_dirs`)."""
        self._call("stat_file", name, path)
        path = path.rstrip("/") or "/"
        if path in self.guest_files:
            kind = "file"
        elif path in self.guest_dirs or any(p.startswith(path + "/") for p in self.guest_files):
            kind = "dir"
        else:
            raise GuestPathNotFound(f"cannot stat {path}: No such file or directory")
        return guestapi.FileEntry(name=path.rpartition("/")[2], path=path, type=kind, size=0,
                                  mode=0o755, uid=0, gid=0, owner="root", group="root", mtime=0.0)

    def upload_tar(self, name: str, guest_dir: str, chunks: Iterable[bytes]) -> None:
        self._call("upload_tar", name, guest_dir)
        self.guest_tars[guest_dir] = b"".join(chunks)

    def download_tar(self, name: str, guest_dir: str) -> Iterator[bytes]:
        self._call("download_tar", name, guest_dir)
        yield self.guest_tars[guest_dir]

    def vm_access(self, name: str) -> dict[str, str]:
        self._call("vm_access", name)
        return {**ACCESS, "name": name}

    def list_images(self) -> list[Image]:
        self._call("list_images")
        return [IMAGE]

    def get_image(self, name: str) -> Image:
        self._call("get_image", name)
        return replace(IMAGE, name=name)

    def image_templates(
        self, name: str
    ) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
        self._call("image_templates", name)
        if name == "debian-bookworm":
            return TEMPLATE, {"qemu": TEMPLATE}
        if name == "both-backends":
            return TEMPLATE, {"qemu": TEMPLATE, "firecracker": {**TEMPLATE, "vcpu": 1}}
        return None, {}

    def warm_image(
        self, name: str, *, force: bool = False, backend: str | None = None, on_progress: Any,
    ) -> dict[str, Any]:
        self._call("warm_image", name, force=force, backend=backend)
        on_progress(ProgressEvent("template", f"booting a template VM of {name}"))
        return {"image": name, "template": TEMPLATE}

    def delete_image_template(self, name: str) -> bool:
        self._call("delete_image_template", name)
        return name == "debian-bookworm"

    def pull_image(
        self, name: str, *, force: bool = False, on_progress: Any = None, **options: Any
    ) -> Image:
        self._call("pull_image", name, force=force,
                   **{k: v for k, v in options.items() if v is not None})
        return IMAGE

    def register_image(self, *args: Any) -> Image:
        self._call("register_image", *args)
        return replace(IMAGE, name=args[0], managed=False)

    def delete_image(self, name: str, *, force: bool = False) -> Image:
        self._call("delete_image", name, force=force)
        return IMAGE

    def export_image(self, name: str, path: str, *, on_progress: Any = None) -> dict[str, Any]:
        self._call("export_image", name, path)
        on_progress(ProgressEvent("export", "exporting", 0.5))
        return {"image": name, "path": path, "bytes": 300 << 20}

    def import_image(self, path: str, *, as_name: str | None = None,
                     on_progress: Any = None) -> Image:
        self._call("import_image", path, as_name=as_name)
        return replace(IMAGE, name=as_name or IMAGE.name)


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    out, err = capsys.readouterr()
    return code, out, err
