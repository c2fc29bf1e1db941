"""The API's wire schema: one dataclass per request body, shared by the client (which
builds bodies with them) and the daemon (which checks what arrives against them, with
pydantic, at its edge: daemon/apiwire.py).

It lives in `core` rather than in a package of its own: it is pure data, the same kind of
thing as the models in `core/models.py`, and `core` is the one layer both `client` and
`daemon` may import. A top-level `banger.schema` would need its own slot in the layers
contract, between `host` and `core`, and would buy nothing over this module.

The classes are plain dataclasses, not pydantic models: the client imports this module on
every command that sends a body, and pydantic would add ~60 ms to each (measured with
`-X importtime`); the client's callers are type-checked instead. Responses are the
`core.models` dataclasses in their `to_dict` form (VM, Image, Kernel, Workspace, Check;
NDJSON streams carry ProgressEvent), plus the small answers modelled here."""

from __future__ import annotations

import base64
import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from banger.core.errors import InvalidInput

# What `vm create` waits for: a verified login, only the guest's sshd answering, or its
# agent or sshd answering, whichever first (for callers that run commands through the agent).
Readiness = Literal["login", "sshd", "agent"]


@dataclass(frozen=True)
class Request:
    """A field without a default is required, and a required string may not be empty."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            required = (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            )
            if required and getattr(self, field.name) == "":
                raise InvalidInput(f"{field.name} is required")

    def body(self) -> dict[str, Any]:
        """The JSON object the client sends."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class FileEntry:
    """A path in a guest, as lstat saw it (symlinks are not followed): `type` is "file",
    "dir", "symlink" or "other"; `mode` the permission bits; `owner`/`group` the guest's
    names (the number when it has none); `mtime` seconds since the epoch; `target` a
    symlink's."""

    name: str
    path: str
    type: str
    size: int
    mode: int
    uid: int
    gid: int
    owner: str
    group: str
    mtime: float
    target: str | None = None


@dataclass(frozen=True)
class MakeDir(Request):
    """`POST /v1/vms/{name}/files/mkdir`: like mkdir -p (an existing directory is fine;
    `mode` is given to the directory if made)."""

    path: str
    mode: int = 0o755


@dataclass(frozen=True)
class RemovePath(Request):
    """`POST /v1/vms/{name}/files/remove`: a file, a symlink, an empty directory, or with
    `recursive` a directory and everything below it."""

    path: str
    recursive: bool = False


@dataclass(frozen=True)
class RenamePath(Request):
    """`POST /v1/vms/{name}/files/rename`: rename(2) in the guest (same file system)."""

    source: str
    destination: str


def _check_command(argv: list[str] | None, command: str | None, timeout: float) -> None:
    """What an exec and a started process both require of their command and timeout."""
    if (argv is None) == (command is None):
        raise InvalidInput("give exactly one of argv and command")
    if argv is not None and not argv:
        raise InvalidInput("argv is empty")
    if timeout < 0:
        raise InvalidInput("timeout must be 0 (none) or more seconds")


@dataclass(frozen=True)
class ExecVM(Request):
    """`POST /v1/vms/{name}/exec`: `argv` as is, or `command` through /bin/sh -c; `stdin`
    (base64) is the process's whole stdin, then closed; `timeout` in seconds (0: none).
    The answer streams NDJSON lines {"stdout": base64} and {"stderr": base64}, then
    {"result": ExecResult} or {"error": ...}."""

    argv: list[str] | None = None
    command: str | None = None
    env: dict[str, str] | None = None
    cwd: str | None = None
    user: str | None = None
    stdin: str = ""
    timeout: float = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_command(self.argv, self.command, self.timeout)

    def stdin_bytes(self) -> bytes:
        try:
            return base64.b64decode(self.stdin, validate=True)
        except ValueError as exc:
            raise InvalidInput("stdin must be base64") from exc


@dataclass(frozen=True)
class ExecResult:
    """How an exec ended: its exit code, or the signal that killed it (`timed_out`: by the
    daemon, at the request's timeout)."""

    exit_code: int | None
    signal: int | None
    timed_out: bool = False


@dataclass(frozen=True)
class PtySize(Request):
    """A terminal's size in characters (also the body of `POST .../processes/{pid}/resize`)."""

    cols: int
    rows: int

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (1 <= self.cols <= 0xFFFF and 1 <= self.rows <= 0xFFFF):
            raise InvalidInput(f"a terminal of {self.cols}x{self.rows} characters")


@dataclass(frozen=True)
class StartProcess(Request):
    """`POST /v1/vms/{name}/processes`: a process the daemon holds (it keeps running when the
    client goes away). `argv` as is, or `command` through /bin/sh -c; `tag` is free text to
    find it by; `pty`: on a new terminal of that size (its stdout and stderr are one stream,
    sent as stdout); `stdin` True keeps its stdin open for `stdin` calls; `timeout`: seconds
    it may live before SIGKILL (0: no limit)."""

    argv: list[str] | None = None
    command: str | None = None
    env: dict[str, str] | None = None
    cwd: str | None = None
    user: str | None = None
    tag: str | None = None
    pty: PtySize | None = None
    stdin: bool = False
    timeout: float = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_command(self.argv, self.command, self.timeout)


@dataclass(frozen=True)
class ProcessInfo:
    """A process the daemon holds: `pid` is the guest's; `exit_code`/`signal` once it ended;
    `started_at` ISO 8601 UTC."""

    pid: int
    tag: str | None
    argv: list[str] | None
    command: str | None
    env: dict[str, str] | None
    cwd: str | None
    user: str | None
    pty: bool
    running: bool
    exit_code: int | None
    signal: int | None
    started_at: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProcessInfo:
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})


@dataclass(frozen=True)
class ProcessStdin(Request):
    """`POST .../processes/{pid}/stdin`: `data` (base64) to its stdin, then closed if `close`."""

    data: str = ""
    close: bool = False

    def data_bytes(self) -> bytes:
        try:
            return base64.b64decode(self.data, validate=True)
        except ValueError as exc:
            raise InvalidInput("data must be base64") from exc


@dataclass(frozen=True)
class ProcessSignal(Request):
    signal: int

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.signal <= 64:
            raise InvalidInput(f"signal {self.signal} is not a signal number (1-64)")


@dataclass(frozen=True)
class CreateVM(Request):
    name: str | None = None
    image: str | None = None
    vcpu: int | None = None
    memory_mib: int | None = None
    disk_size: str | None = None
    start: bool = True
    ready: Readiness = "login"
    nat: bool = False
    backend: str | None = None
    kernel: str | None = None
    cold: bool = False
    # CIDRs and DNS names the guest may reach without NAT (None: the config's default).
    egress_allow: list[str] | None = None
    network_group: str = ""

    @property
    def waits_for_login(self) -> bool:
        return self.ready == "login"


@dataclass(frozen=True)
class StartVM(Request):
    from_snapshot: bool = False


@dataclass(frozen=True)
class KillVM(Request):
    signal: str = "KILL"


@dataclass(frozen=True)
class SetVM(Request):
    vcpu: int | None = None
    memory_mib: int | None = None
    disk_size: str | None = None
    nat: bool | None = None
    # None leaves it as it is; [] and "" clear.
    egress_allow: list[str] | None = None
    network_group: str | None = None


@dataclass(frozen=True)
class RecordWorkspace(Request):
    guest_path: str
    base_commit: str = ""
    source: str = ""
    branch: str = ""
    readonly: bool = False


@dataclass(frozen=True)
class PullImage(Request):
    name: str
    force: bool = False
    as_name: str | None = None
    kernel: str | None = None


@dataclass(frozen=True)
class RegisterImage(Request):
    name: str
    rootfs: str
    kernel: str
    initrd: str | None = None


@dataclass(frozen=True)
class WarmImage(Request):
    force: bool = False
    backend: str | None = None


@dataclass(frozen=True)
class ExportImage(Request):
    path: str


@dataclass(frozen=True)
class ImportImage(Request):
    path: str
    as_name: str | None = None


@dataclass(frozen=True)
class PullKernel(Request):
    name: str
    force: bool = False


@dataclass(frozen=True)
class RegisterKernel(Request):
    name: str
    vmlinuz: str
    initrd: str | None = None
    vmlinux: str | None = None
    modules: str | None = None


@dataclass(frozen=True)
class Status:
    """`GET /v1/status`."""

    pid: int
    version: str
    socket: str
    log: str
    state_dir: str
    backend: str
    accel: str
    vms: int
    network: str = "bridge"  # a NetworkMode: bridge, pool or user


@dataclass(frozen=True)
class ConsoleLog:
    """`GET /v1/vms/{name}/logs`: base64 of the console bytes from the asked offset, and the
    offset to ask for next."""

    data: str
    offset: int
