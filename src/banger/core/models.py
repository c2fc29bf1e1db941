"""Records the daemon stores and the API carries. Plain dataclasses: the CLI imports these,
so they must stay cheap to import (no pydantic here)."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


class VMState(enum.StrEnum):
    CREATED = "created"
    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"  # vCPUs stopped (`vm pause`); the VMM process and its resources stay
    STOPPING = "stopping"
    STOPPED = "stopped"
    ERROR = "error"


@dataclass(frozen=True)
class VMSpec:
    vcpu: int
    memory_mib: int
    disk_size_bytes: int


@dataclass(frozen=True)
class Workspace:
    """A git checkout copied into a VM: where it is and the commit it started from, which
    `vm workspace export` diffs against."""

    guest_path: str
    base_commit: str  # "" when the repository had no commits
    source: str = ""  # where it came from, as the client named it (informational)
    branch: str = ""
    readonly: bool = False
    prepared_at: float = 0.0


@dataclass
class VM:
    id: str
    name: str
    image: str
    state: VMState
    spec: VMSpec
    ip: str
    mac: str
    tap: str
    dir: str
    backend: str
    created_at: float
    accel: str = ""
    pid: int | None = None
    started_at: float | None = None
    nat: bool = False
    last_error: str = ""
    workspaces: list[Workspace] = field(default_factory=list)
    kernel: str = ""  # a kernel catalog entry overriding the image's kernel (vm create --kernel)
    # The warm template the VM's disks were made from (its key); its first start restores it.
    template: str = ""
    # Egress without NAT: CIDRs and DNS names (see banger.core.egress); [] reaches nothing.
    egress_allow: list[str] = field(default_factory=list)
    network_group: str = ""  # VMs of one group reach each other; "" is alone
    # User-mode networking: the 127.0.0.1 port forwarded to the guest's sshd (0: none, the
    # guest's own address is reachable from the host).
    ssh_port: int = 0


@dataclass
class Image:
    name: str
    rootfs: str
    kernel: str
    initrd: str | None
    managed: bool
    created_at: float
    source: str
    size_bytes: int = 0
    recipe_version: str = ""
    # The image's default kernel from the kernel store, used when `kernel` is "" (OCI
    # pulls carry no kernel of their own).
    kernel_name: str = ""
    # sshd is installed by the guest on its first boot (needs the VM to have NAT).
    ssh_on_first_boot: bool = False
    digest: str = ""  # OCI manifest digest of a pulled image


@dataclass
class Kernel:
    """A kernel in the kernel store: from the catalog (pulled) or registered host files."""

    name: str
    vmlinuz: str
    initrd: str | None
    managed: bool
    created_at: float
    source: str
    version: str = ""
    vmlinux: str | None = None  # uncompressed ELF, for Firecracker
    modules: str | None = None  # the modules tree (lib/modules/<version>)
    size_bytes: int = 0


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a long operation, streamed to the CLI as an NDJSON line."""

    stage: str
    message: str
    fraction: float | None = None


@dataclass
class Check:
    """One `banger doctor` line."""

    name: str
    status: str  # ok | warn | fail
    detail: str
    hint: str = ""
    required: bool = True


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


def vm_from_dict(data: dict[str, Any]) -> VM:
    values = dict(data)
    values["state"] = VMState(values["state"])
    values["spec"] = VMSpec(**values["spec"])
    values["workspaces"] = [workspace_from_dict(w) for w in values.get("workspaces") or []]
    return VM(**_known(VM, values))


def workspace_from_dict(data: dict[str, Any]) -> Workspace:
    return Workspace(**_known(Workspace, data))


def image_from_dict(data: dict[str, Any]) -> Image:
    return Image(**_known(Image, data))


def kernel_from_dict(data: dict[str, Any]) -> Kernel:
    return Kernel(**_known(Kernel, data))


def _known(cls: type[Any], data: dict[str, Any]) -> dict[str, Any]:
    """Drop keys a newer daemon may send that this client does not know yet."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass
class Sized:
    """A value together with where it came from (config, host heuristic, built-in)."""

    value: int
    source: str = field(default="built-in")
