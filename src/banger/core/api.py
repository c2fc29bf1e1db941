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

from dataclasses import dataclass
from typing import Literal

from banger.core.apibase import Request

# What `vm create` waits for: a verified login, only the guest's sshd answering, or its
# agent or sshd answering, whichever first (for callers that run commands through the agent).
Readiness = Literal["login", "sshd", "agent"]


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
