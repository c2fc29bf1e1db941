"""The typed API client (used by the CLI; also the Python SDK, `banger.Client`).

Speaks HTTP/1.1 over the daemon's Unix socket with the standard library only, so `banger`
starts fast, and starts the daemon on first use. Request bodies are built with the wire
schema's dataclasses (core/api.py), imported by the methods that send one; the daemon
checks them."""

from __future__ import annotations

import json
import os

from banger.client.bundles import ImageBundles
from banger.client.files import GuestFiles
from banger.client.processes import GuestProcesses
from banger.client.transport import Response, Transport, UnixSocketTransport
from banger.core.errors import APIError, DaemonUnavailable, error_from_dict
from banger.core.xdg import socket_path

# Kept off the import path of every `banger` call (each costs milliseconds there, see
# docs/architecture.md): typing, pathlib, subprocess, urllib and the model classes
# (dataclasses, inspect) load when a method needs them.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from typing import Any

    from banger.core.api import Readiness
    from banger.core.models import VM, Image, Kernel, ProgressEvent, Workspace
    from banger.core.paths import Paths
    from banger.core.remote import RemoteHost
    from banger.core.stats import VMStats

    OnProgress = Callable[[ProgressEvent], None]

class Client(GuestProcesses, GuestFiles, ImageBundles):
    def __init__(
        self, paths: Paths | None = None, *, autostart: bool = True,
        env: Mapping[str, str] | None = None, transport: Transport | None = None,
        host: str | None = None, context: str | None = None,
    ) -> None:
        """`host`: `ssh://[user@]host[:port]` drives that user's bangerd through ssh,
        `unix://` the local one; `context`: a named context (`banger context`). Without
        either, BANGER_HOST, BANGER_CONTEXT and the current context decide, as for the CLI.
        `transport`: how requests reach bangerd (default: its Unix socket, or ssh);
        `MemoryTransport` answers them in-process, for tests."""
        self._env = env if env is not None else os.environ
        self._paths = paths
        self.socket = str(paths.socket) if paths is not None else socket_path(self._env)
        self._autostart = autostart
        self.remote: RemoteHost | None = None
        self._transport = transport or UnixSocketTransport(self.socket)
        if transport is None and (paths is None or host is not None or context is not None):
            from banger.client.remote import choose_remote, ssh_transport

            self.remote = choose_remote(self._env, host, context)
            if self.remote is not None:
                self._transport = ssh_transport(self.remote, self._env, start=autostart)

    @property
    def paths(self) -> Paths:
        if self._paths is None:
            from banger.core.paths import paths_from_env

            self._paths = paths_from_env(self._env)
        return self._paths

    # Transport

    def _open(
        self, method: str, path: str, body: dict[str, Any] | None, timeout: float | None,
        raw: bytes | None = None, chunks: Iterable[bytes] | None = None,
    ) -> Response:
        """Send `body` as JSON, `raw` bytes (a file's content), or `chunks` of a body of any
        size, streamed (`chunks` is only iterated once a daemon answers the connection)."""
        payload = json.dumps(body).encode() if body is not None else raw
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if raw is not None or chunks is not None:
            headers = {"Content-Type": "application/octet-stream"}
        for attempt in (1, 2):
            try:
                if chunks is not None:
                    return self._transport.send_stream(method, path, chunks, headers, timeout)
                return self._transport.send(method, path, payload, headers, timeout)
            except (FileNotFoundError, ConnectionRefusedError):
                if self.remote is not None:  # `banger daemon stdio` starts it, if it may
                    raise DaemonUnavailable(
                        f"bangerd is not running on {self.remote.url}",
                        hint="any banger command starts it; see `banger daemon status`",
                    ) from None
                if attempt == 2 or not self._autostart:
                    raise DaemonUnavailable(
                        f"bangerd is not running (no socket at {self.paths.socket})",
                        hint="any banger command starts it; see `banger daemon status`",
                    ) from None
                self.start_daemon()
        raise AssertionError("unreachable")

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None,
        *, timeout: float | None = 60.0,
    ) -> Any:
        response = self._open(method, path, body, timeout)
        try:
            data = _json_body(response)
        finally:
            response.close()
        if isinstance(data, dict) and "error" in data and response.status >= 400:
            raise error_from_dict(data["error"])
        return data

    def stream(
        self, method: str, path: str, body: dict[str, Any] | None, on_progress: OnProgress,
    ) -> Any:
        """Send a long operation; hand each progress event to `on_progress`; return the
        result line's value or raise its error."""
        return self._follow(self._open(method, path, body, None), on_progress)

    def _follow(self, response: Response, on_progress: OnProgress) -> Any:
        """A long operation's answer: progress events, then its result or error."""
        return self._follow_wire(response, lambda event: on_progress(_event(event)))

    def _follow_wire(
        self, response: Response, on_event: Callable[[dict[str, Any]], None],
    ) -> Any:
        """`_follow` with the progress events in their wire form."""
        try:
            if response.status >= 400:
                data = _json_body(response)
                raise error_from_dict(data["error"])
            for item in _ndjson(response):
                if "event" in item:
                    on_event(item["event"])
                elif "error" in item:
                    raise error_from_dict(item["error"])
                elif "result" in item:
                    return item["result"]
        finally:
            response.close()
        raise DaemonUnavailable("bangerd closed the stream early", hint="see bangerd.log")

    # Daemon lifecycle

    def ping(self) -> bool:
        try:
            response = self._transport.send("GET", "/v1/status", None, {}, 2.0)
        except OSError:
            return False
        try:
            response.read()
            return True
        except OSError:
            return False
        finally:
            response.close()

    def start_daemon(self) -> None:
        """Start bangerd detached and wait for its socket; explain its failure if it dies."""
        from banger.client.daemonstart import start_daemon

        start_daemon(self.paths, self.ping)

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/v1/status")
        return result

    def shutdown(self) -> None:
        self.request("POST", "/v1/shutdown")

    def doctor(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", "/v1/doctor", timeout=120)
        return result

    # VMs

    def list_vms(self) -> list[VM]:
        return [_vm(v) for v in self._list_vms_wire()]

    def _list_vms_wire(self) -> list[dict[str, Any]]:
        """The VMs in their wire form, for `banger vm list`, which only renders them and so
        needs no model classes. Not part of the SDK."""
        result: list[dict[str, Any]] = self.request("GET", "/v1/vms")
        return result

    def get_vm(self, name: str) -> VM:
        return _vm(self.request("GET", f"/v1/vms/{_q(name)}"))

    def create_vm(
        self, *, name: str | None = None, image: str | None = None, vcpu: int | None = None,
        memory_mib: int | None = None, disk_size: str | None = None, start: bool = True,
        on_progress: OnProgress = lambda _: None, ready: Readiness = "login", nat: bool = False,
        backend: str | None = None, kernel: str | None = None, cold: bool = False,
        egress_allow: list[str] | None = None, network_group: str | None = None,
    ) -> VM:
        """`ready="sshd"` returns once the guest's sshd answers, for callers that log in
        right away themselves; `ready="agent"` once its guest agent (or sshd) answers, for
        callers that go through the agent (exec_vm); the default waits for a verified login.
        `cold` boots even when the image has a warm template. `egress_allow`: CIDRs and DNS
        names the guest may reach without NAT (None: the config's default)."""
        from banger.core import api

        body = api.CreateVM(
            name=name, image=image, vcpu=vcpu, memory_mib=memory_mib, disk_size=disk_size,
            start=start, ready=ready, nat=nat, backend=backend, kernel=kernel, cold=cold,
            egress_allow=egress_allow, network_group=network_group or "",
        )
        return _vm(self.stream("POST", "/v1/vms", body.body(), on_progress))

    def _create_vm_wire(
        self, body: dict[str, Any], on_event: Callable[[dict[str, Any]], None],
    ) -> dict[str, Any]:
        """create_vm with its request, events and answer in their wire form, for `banger vm
        run -- CMD`, whose start-up has no room for the model classes (see
        cli/guestproc.py). Not part of the SDK."""
        result: dict[str, Any] = self._follow_wire(self._open("POST", "/v1/vms", body, None),
                                                   on_event)
        return result

    def start_vm(
        self, name: str, on_progress: OnProgress = lambda _: None, *,
        from_snapshot: bool = False,
    ) -> VM:
        """`from_snapshot` restores the VM's last `snapshot_vm` instead of booting it."""
        from banger.core import api

        body = api.StartVM(from_snapshot=from_snapshot).body()
        return _vm(self.stream("POST", f"/v1/vms/{_q(name)}/start", body, on_progress))

    def pause_vm(self, name: str) -> VM:
        return _vm(self.request("POST", f"/v1/vms/{_q(name)}/pause"))

    def resume_vm(self, name: str) -> VM:
        return _vm(self.request("POST", f"/v1/vms/{_q(name)}/resume"))

    def snapshot_vm(self, name: str) -> VM:
        """A full snapshot into the VM's dir; the VM keeps running."""
        return _vm(
            self.request("POST", f"/v1/vms/{_q(name)}/snapshot", timeout=None)
        )

    def restart_vm(self, name: str, on_progress: OnProgress = lambda _: None) -> VM:
        return _vm(self.stream("POST", f"/v1/vms/{_q(name)}/restart", {}, on_progress))

    def stop_vm(self, name: str) -> VM:
        return _vm(self.request("POST", f"/v1/vms/{_q(name)}/stop", timeout=None))

    def kill_vm(self, name: str, signal_name: str = "KILL") -> VM:
        from banger.core import api

        body = api.KillVM(signal=signal_name).body()
        return _vm(self.request("POST", f"/v1/vms/{_q(name)}/kill", body))

    def delete_vm(self, name: str, *, force: bool = False) -> VM:
        return _vm(self._delete_vm_wire(name, force=force))

    def _delete_vm_wire(self, name: str, *, force: bool = False) -> dict[str, Any]:
        """delete_vm with the answer in its wire form (see `_create_vm_wire`)."""
        query = "?force=1" if force else ""
        result: dict[str, Any] = self.request("DELETE", f"/v1/vms/{_q(name)}{query}",
                                              timeout=None)
        return result

    def set_vm(
        self, name: str, *, vcpu: int | None = None, memory_mib: int | None = None,
        disk_size: str | None = None, nat: bool | None = None,
        egress_allow: list[str] | None = None, network_group: str | None = None,
    ) -> VM:
        """None leaves a setting as it is; `egress_allow=[]` and `network_group=""` clear."""
        from banger.core import api

        body = api.SetVM(
            vcpu=vcpu, memory_mib=memory_mib, disk_size=disk_size, nat=nat,
            egress_allow=egress_allow, network_group=network_group,
        ).body()
        return _vm(self.request("PATCH", f"/v1/vms/{_q(name)}", body, timeout=None))

    def exec_vm(
        self, name: str, argv: list[str] | None = None, *, command: str | None = None,
        env: dict[str, str] | None = None, cwd: str | None = None, user: str | None = None,
        stdin: bytes = b"", timeout: float = 0,
        on_stdout: Callable[[bytes], None] = lambda _: None,
        on_stderr: Callable[[bytes], None] = lambda _: None,
    ) -> dict[str, Any]:
        """Run `argv` (or a shell `command`) in the running VM `name` through its guest
        agent, its output handed to `on_stdout`/`on_stderr` as it comes. Returns
        {"exit_code", "signal", "timed_out"}: an exit code, or the signal that killed it."""
        import base64

        from banger.core import guestapi

        request = guestapi.ExecVM(argv=argv, command=command, env=env, cwd=cwd, user=user,
                                  stdin=base64.b64encode(stdin).decode(), timeout=timeout)
        return self._exec_vm_wire(name, request.body(), on_stdout, on_stderr)

    def _exec_vm_wire(
        self, name: str, body: dict[str, Any], on_stdout: Callable[[bytes], None],
        on_stderr: Callable[[bytes], None],
    ) -> dict[str, Any]:
        """exec_vm with an ExecVM body built by hand (see `_create_vm_wire`)."""
        from banger.client.guestexec import run_exec

        return run_exec(self, name, body, on_stdout, on_stderr)

    def vm_logs(self, name: str, offset: int = 0) -> tuple[bytes, int]:
        import base64

        data = self.request("GET", f"/v1/vms/{_q(name)}/logs?{_query(offset=offset)}")
        return base64.b64decode(data["data"]), int(data["offset"])

    def vm_stats(self, name: str) -> VMStats:
        from banger.core.stats import stats_from_dict

        return stats_from_dict(self.request("GET", f"/v1/vms/{_q(name)}/stats"))

    def vm_access(self, name: str) -> dict[str, str]:
        result: dict[str, str] = self.request("GET", f"/v1/vms/{_q(name)}/access")
        return result

    # Workspaces (the copy itself streams over ssh: banger.client.workspace)

    def record_workspace(self, name: str, workspace: Workspace) -> Workspace:
        from banger.core import api

        body = api.RecordWorkspace(
            guest_path=workspace.guest_path, base_commit=workspace.base_commit,
            source=workspace.source, branch=workspace.branch, readonly=workspace.readonly,
        ).body()
        return _workspace(
            self.request("PUT", f"/v1/vms/{_q(name)}/workspace", body)
        )

    def get_workspace(self, name: str, guest_path: str) -> Workspace:
        query = _query(guest_path=guest_path)
        return _workspace(self.request("GET", f"/v1/vms/{_q(name)}/workspace?{query}"))

    def list_workspaces(self, name: str) -> list[Workspace]:
        return [
            _workspace(w) for w in self.request("GET", f"/v1/vms/{_q(name)}/workspaces")
        ]

    # Images

    def list_images(self) -> list[Image]:
        return [_image(i) for i in self.request("GET", "/v1/images")]

    def get_image(self, name: str) -> Image:
        return _image(self.request("GET", f"/v1/images/{_q(name)}"))

    def pull_image(
        self, name: str, *, force: bool = False, on_progress: OnProgress = lambda _: None,
        as_name: str | None = None, kernel: str | None = None,
    ) -> Image:
        """A catalog image by name, or any OCI reference (`docker.io/library/debian`)."""
        from banger.core import api

        body = api.PullImage(name=name, force=force, as_name=as_name, kernel=kernel).body()
        return _image(self.stream("POST", "/v1/images/pull", body, on_progress))

    def image_templates(
        self, name: str
    ) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
        """The image's warm template on the daemon's default backend (or None), and those of
        every backend, as `image show` reports them."""
        shown: dict[str, Any] = self.request("GET", f"/v1/images/{_q(name)}")
        return shown.get("template"), shown.get("templates", {})

    def warm_image(
        self, name: str, *, force: bool = False, backend: str | None = None,
        on_progress: OnProgress = lambda _: None,
    ) -> dict[str, Any]:
        """Make the image's warm template (again, with `force`) for `backend` (None: the
        daemon's default)."""
        from banger.core import api

        body = api.WarmImage(force=force, backend=backend).body()
        result: dict[str, Any] = self.stream(
            "POST", f"/v1/images/{_q(name)}/warm", body, on_progress
        )
        return result

    def delete_image_template(self, name: str) -> bool:
        result: dict[str, Any] = self.request("DELETE", f"/v1/images/{_q(name)}/warm")
        return bool(result.get("deleted"))

    def promote_image(self, name: str) -> Image:
        return _image(
            self.request("POST", f"/v1/images/{_q(name)}/promote", {}, timeout=None)
        )

    # Kernels

    def list_kernels(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", "/v1/kernels")
        return result

    def get_kernel(self, name: str) -> Kernel:
        return _kernel(self.request("GET", f"/v1/kernels/{_q(name)}"))

    def pull_kernel(
        self, name: str, *, force: bool = False, on_progress: OnProgress = lambda _: None
    ) -> Kernel:
        from banger.core import api

        body = api.PullKernel(name=name, force=force).body()
        return _kernel(self.stream("POST", "/v1/kernels/pull", body, on_progress))

    def register_kernel(
        self, name: str, vmlinuz: str, initrd: str | None = None, *,
        vmlinux: str | None = None, modules: str | None = None,
    ) -> Kernel:
        from banger.core import api

        body = api.RegisterKernel(
            name=name, vmlinuz=vmlinuz, initrd=initrd, vmlinux=vmlinux, modules=modules,
        ).body()
        return _kernel(self.request("POST", "/v1/kernels/register", body))

    def delete_kernel(self, name: str) -> Kernel:
        return _kernel(self.request("DELETE", f"/v1/kernels/{_q(name)}"))

    def register_image(
        self, name: str, rootfs: str, kernel: str, initrd: str | None = None
    ) -> Image:
        from banger.core import api

        body = api.RegisterImage(name=name, rootfs=rootfs, kernel=kernel, initrd=initrd).body()
        return _image(self.request("POST", "/v1/images/register", body))

    def delete_image(self, name: str, *, force: bool = False) -> Image:
        """`force` also deletes the (stopped) VMs created from the image."""
        query = "?force=1" if force else ""
        return _image(
            self.request("DELETE", f"/v1/images/{_q(name)}{query}", timeout=None)
        )

# What a path segment may hold as is (RFC 3986's unreserved characters).
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _q(name: str) -> str:
    """`name` as one path segment, like urllib.parse.quote(name, safe=""): that module
    (with ipaddress, which it imports) costs `banger vm exec` ~2 ms to load."""
    return "".join(
        char if char in _UNRESERVED else "".join(f"%{byte:02X}" for byte in char.encode())
        for char in name
    )


def _query(**params: str | int) -> str:
    from urllib.parse import urlencode

    return urlencode(params)


def _vm(data: dict[str, Any]) -> VM:
    from banger.core.models import vm_from_dict

    return vm_from_dict(data)


def _image(data: dict[str, Any]) -> Image:
    from banger.core.models import image_from_dict

    return image_from_dict(data)


def _kernel(data: dict[str, Any]) -> Kernel:
    from banger.core.models import kernel_from_dict

    return kernel_from_dict(data)


def _workspace(data: dict[str, Any]) -> Workspace:
    from banger.core.models import workspace_from_dict

    return workspace_from_dict(data)


def _event(data: dict[str, Any]) -> ProgressEvent:
    from banger.core.models import ProgressEvent

    return ProgressEvent(**data)


def _json_body(response: Response) -> Any:
    raw = response.read()
    try:
        return json.loads(raw or b"null")
    except json.JSONDecodeError:
        # Not an answer of the API itself: most likely a bangerd older than this client (it
        # keeps running across upgrades) that lacks the route.
        raise APIError(
            f"bangerd answered {response.status} {response.reason}: "
            f"{raw[:200].decode(errors='replace').strip()}",
            hint="restart it with `banger daemon stop` (running VMs keep running)",
        ) from None


def _ndjson(response: Response) -> Iterator[dict[str, Any]]:
    while True:
        line = response.readline()
        if not line:
            return
        if line.strip():
            item: dict[str, Any] = json.loads(line)
            yield item
