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
    STOPPING = "stopping"
    STOPPED = "stopped"
    ERROR = "error"


@dataclass(frozen=True)
class VMSpec:
    vcpu: int
    memory_mib: int
    disk_size_bytes: int


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
    return VM(**_known(VM, values))


def image_from_dict(data: dict[str, Any]) -> Image:
    return Image(**_known(Image, data))


def _known(cls: type[Any], data: dict[str, Any]) -> dict[str, Any]:
    """Drop keys a newer daemon may send that this client does not know yet."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass
class Sized:
    """A value together with where it came from (config, host heuristic, built-in)."""

    value: int
    source: str = field(default="built-in")
