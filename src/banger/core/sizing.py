"""Effective VM size: explicit flag, else [vm_defaults] in config, else a host heuristic,
else a built-in floor. Every value carries where it came from (doctor prints it)."""

from __future__ import annotations

from dataclasses import dataclass

from banger.core.config import VMDefaults
from banger.core.errors import DiskFull
from banger.core.models import VMSpec
from banger.core.units import GIB, MIB, format_size, parse_size

FLOOR_VCPU = 2
FLOOR_MEMORY_MIB = 1024
DEFAULT_DISK_BYTES = 8 * GIB
MAX_HOST_VCPU = 4
MAX_HOST_MEMORY_MIB = 8 * 1024


@dataclass(frozen=True)
class Provenanced:
    value: int
    source: str  # "flag" | "config" | "host" | "built-in"


@dataclass(frozen=True)
class SizeDefaults:
    vcpu: Provenanced
    memory_mib: Provenanced
    disk_size_bytes: Provenanced


def size_defaults(config: VMDefaults, host_cpus: int, host_memory_bytes: int) -> SizeDefaults:
    def pick(configured: int | None, heuristic: int, floor: int) -> Provenanced:
        if configured is not None:
            return Provenanced(configured, "config")
        if heuristic >= floor:
            return Provenanced(heuristic, "host")
        return Provenanced(floor, "built-in")

    vcpu = pick(config.vcpu, min(MAX_HOST_VCPU, host_cpus // 4), FLOOR_VCPU)
    memory = pick(
        config.memory_mib,
        min(MAX_HOST_MEMORY_MIB, host_memory_bytes // 8 // MIB),
        FLOOR_MEMORY_MIB,
    )
    disk = (
        Provenanced(parse_size(config.disk_size, what="disk_size"), "config")
        if config.disk_size
        else Provenanced(DEFAULT_DISK_BYTES, "built-in")
    )
    return SizeDefaults(vcpu, memory, disk)


def effective_spec(
    defaults: SizeDefaults, *, vcpu: int | None, memory_mib: int | None, disk_size: str | None
) -> VMSpec:
    return VMSpec(
        vcpu=vcpu if vcpu is not None else defaults.vcpu.value,
        memory_mib=memory_mib if memory_mib is not None else defaults.memory_mib.value,
        disk_size_bytes=(
            parse_size(disk_size, what="disk size") if disk_size else defaults.disk_size_bytes.value
        ),
    )


def spec_line(spec: VMSpec) -> str:
    return (
        f"spec: {spec.vcpu} vCPU, {spec.memory_mib} MiB RAM, "
        f"{format_size(spec.disk_size_bytes)} disk"
    )


def require_room(free_bytes: int, needed_bytes: int, *, where: str, what: str) -> None:
    """Refuse to start what could fill the host's disk: a work disk is sparse, but the guest
    may write all of it, and a host whose disk fills up fails everywhere at once."""
    if needed_bytes > free_bytes:
        raise DiskFull(
            f"{what} needs up to {format_size(needed_bytes)} but {where} has "
            f"{format_size(free_bytes)} free",
        )
