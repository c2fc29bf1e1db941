from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from banger.core.config import VMDefaults
from banger.core.errors import DiskFull, InvalidInput
from banger.core.models import VMSpec
from banger.core.sizing import (
    DEFAULT_DISK_BYTES,
    FLOOR_MEMORY_MIB,
    FLOOR_VCPU,
    MAX_HOST_MEMORY_MIB,
    MAX_HOST_VCPU,
    Provenanced,
    effective_spec,
    require_room,
    size_defaults,
    spec_line,
)
from banger.core.units import GIB, MIB

BIG_HOST = (32, 128 * GIB)
SMALL_HOST = (2, 2 * GIB)


def test_config_values_win_over_the_host() -> None:
    defaults = size_defaults(VMDefaults(vcpu=3, memory_mib=3000, disk_size="20G"), *BIG_HOST)
    assert defaults.vcpu == Provenanced(3, "config")
    assert defaults.memory_mib == Provenanced(3000, "config")
    assert defaults.disk_size_bytes == Provenanced(20 * GIB, "config")


def test_big_host_heuristic_is_capped() -> None:
    defaults = size_defaults(VMDefaults(), *BIG_HOST)
    assert defaults.vcpu == Provenanced(MAX_HOST_VCPU, "host")
    assert defaults.memory_mib == Provenanced(MAX_HOST_MEMORY_MIB, "host")
    assert defaults.disk_size_bytes == Provenanced(DEFAULT_DISK_BYTES, "built-in")


def test_medium_host_gets_a_quarter_of_cpus_and_an_eighth_of_memory() -> None:
    defaults = size_defaults(VMDefaults(), 12, 16 * GIB)
    assert defaults.vcpu == Provenanced(3, "host")
    assert defaults.memory_mib == Provenanced(2048, "host")


def test_small_host_falls_back_to_built_in_floors() -> None:
    defaults = size_defaults(VMDefaults(), *SMALL_HOST)
    assert defaults.vcpu == Provenanced(FLOOR_VCPU, "built-in")
    assert defaults.memory_mib == Provenanced(FLOOR_MEMORY_MIB, "built-in")


@given(st.integers(min_value=1, max_value=1024), st.integers(min_value=0, max_value=2**42))
def test_heuristic_stays_between_floor_and_cap(cpus: int, memory: int) -> None:
    defaults = size_defaults(VMDefaults(), cpus, memory)
    assert FLOOR_VCPU <= defaults.vcpu.value <= max(FLOOR_VCPU, MAX_HOST_VCPU)
    assert FLOOR_MEMORY_MIB <= defaults.memory_mib.value <= MAX_HOST_MEMORY_MIB
    assert defaults.vcpu.source in ("host", "built-in")
    assert defaults.memory_mib.source in ("host", "built-in")


def test_flags_override_defaults() -> None:
    defaults = size_defaults(VMDefaults(), *BIG_HOST)
    spec = effective_spec(defaults, vcpu=1, memory_mib=512, disk_size="2G")
    assert spec == VMSpec(vcpu=1, memory_mib=512, disk_size_bytes=2 * GIB)


def test_missing_flags_take_defaults() -> None:
    defaults = size_defaults(VMDefaults(disk_size="12G"), *SMALL_HOST)
    spec = effective_spec(defaults, vcpu=None, memory_mib=None, disk_size=None)
    assert spec == VMSpec(FLOOR_VCPU, FLOOR_MEMORY_MIB, 12 * GIB)


def test_bad_disk_flag_is_invalid_input() -> None:
    defaults = size_defaults(VMDefaults(), *SMALL_HOST)
    with pytest.raises(InvalidInput, match="disk size"):
        effective_spec(defaults, vcpu=None, memory_mib=None, disk_size="big")


@pytest.mark.parametrize(
    ("spec", "line"),
    [
        (VMSpec(2, 1024, 8 * GIB), "spec: 2 vCPU, 1024 MiB RAM, 8G disk"),
        (VMSpec(4, 8192, 1536 * MIB), "spec: 4 vCPU, 8192 MiB RAM, 1.5G disk"),
        (VMSpec(1, 128, 512 * MIB), "spec: 1 vCPU, 128 MiB RAM, 512M disk"),
    ],
)
def test_spec_line(spec: VMSpec, line: str) -> None:
    assert spec_line(spec) == line


def test_require_room_refuses_more_than_is_free() -> None:
    require_room(8 << 30, 8 << 30, where="/s", what="a disk")
    with pytest.raises(DiskFull, match="a disk needs up to 8G but /s has 1G free"):
        require_room(1 << 30, 8 << 30, where="/s", what="a disk")
