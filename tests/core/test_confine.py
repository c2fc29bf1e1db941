from __future__ import annotations

from banger.core.confine import (
    CONSOLE_LOG_MAX_BYTES,
    MIB,
    QEMU_OVERHEAD_MIB,
    TCG_CACHE_MIB,
    CgroupLimits,
    cgroup_name,
    console_cut,
    vmm_limits,
)


def test_memory_ceiling_is_guest_ram_plus_the_vmm_and_its_translation_cache_under_tcg() -> None:
    kvm = vmm_limits(memory_mib=1024, vcpu=2, tcg=False)
    tcg = vmm_limits(memory_mib=1024, vcpu=2, tcg=True)
    assert kvm.memory_bytes == (1024 + QEMU_OVERHEAD_MIB) * MIB
    assert tcg.memory_bytes == kvm.memory_bytes + TCG_CACHE_MIB * MIB


def test_threads_and_cpu_weight_grow_with_vcpus() -> None:
    one, four = (vmm_limits(memory_mib=512, vcpu=n, tcg=True) for n in (1, 4))
    assert four.pids == one.pids + 3
    assert (one.cpu_weight, four.cpu_weight) == (100, 400)
    assert vmm_limits(memory_mib=512, vcpu=200, tcg=True).cpu_weight == 10000


def test_v1_shares_match_the_v2_weight() -> None:
    assert CgroupLimits(1, 1, 100).cpu_shares == 1024
    assert CgroupLimits(1, 1, 250).cpu_shares == 2560
    assert CgroupLimits(1, 1, 1).cpu_shares == 10


def test_cgroup_name_is_per_vm() -> None:
    assert cgroup_name("0123456789ab") == "vm-0123456789ab"


def test_console_cut_keeps_about_half_in_whole_blocks() -> None:
    assert console_cut(CONSOLE_LOG_MAX_BYTES, 4096) == 0
    size = CONSOLE_LOG_MAX_BYTES + 12345
    cut = console_cut(size, 4096)
    assert cut % 4096 == 0
    assert CONSOLE_LOG_MAX_BYTES // 2 <= size - cut < CONSOLE_LOG_MAX_BYTES // 2 + 4096
    assert console_cut(100, 16, limit=50) == 64
