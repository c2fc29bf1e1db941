"""What a VMM process may use: its cgroup limits and QEMU's system-call sandbox. Pure values;
host/cgroups.py writes them and host/vmm/ puts them on the command line.

banger runs code it does not fully trust: a guest that escapes into its VMM must find an
unprivileged process that cannot spawn programs or take the host's memory.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20
# QEMU itself around the guest's RAM: device emulation, block and network buffers, its
# libraries. Measured at ~60-90 MiB RSS for an idle microvm over its guest RAM; doubled.
QEMU_OVERHEAD_MIB = 192
# Under TCG QEMU keeps a translation cache beside the guest RAM; banger caps it at this
# (`-accel tcg,tb-size=`) so the ceiling below is known. A cold boot of the Debian image
# used ~170 MiB of it, a restored VM ~70 MiB.
TCG_CACHE_MIB = 256
# QEMU's threads: one per vCPU, its block thread pool (at most 64 per AioContext), RCU,
# the main loop and a few helpers. With `spawn=deny` it cannot fork.
PIDS_BASE = 96
# Relative CPU share per vCPU (cgroup v2 `cpu.weight`, default 100 for any process group):
# a VM with more vCPUs gets a larger share when the host is contended, not more than that.
WEIGHT_PER_VCPU = 100
MAX_WEIGHT = 10000  # cgroup v2's ceiling
# A console log is cut back to its last half once it passes this (config
# `console_log_max_size`): a guest that writes to its serial port forever cannot fill the
# host's disk.
CONSOLE_LOG_MAX_BYTES = 4 * MIB
# QEMU's seccomp filter: no obsolete calls, no set*id, no fork/exec, no scheduler or
# resource-limit changes.
QEMU_SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
# With `-runas`, QEMU drops to the user only after it installed its filter, and set*id is
# how it drops: `elevateprivileges` must allow those calls for that one step. Once it runs
# as the user (QEMU checks that setuid(0) then fails) they cannot regain anything, and the
# filter's no_new_privs plus `spawn=deny` rule out a set-user-ID program.
QEMU_SANDBOX_RUNAS = "on,obsolete=deny,elevateprivileges=allow,spawn=deny,resourcecontrol=deny"


@dataclass(frozen=True)
class CgroupLimits:
    memory_bytes: int
    pids: int
    cpu_weight: int  # cgroup v2 units (1..10000, 100 = a default process group)

    @property
    def cpu_shares(self) -> int:
        """The weight in cgroup v1 units (`cpu.shares`, 1024 = a default group)."""
        return max(2, self.cpu_weight * 1024 // 100)


def vmm_limits(*, memory_mib: int, vcpu: int, tcg: bool) -> CgroupLimits:
    """The cgroup of one VM's VMM: its guest RAM plus the VMM's own overhead (and the
    translation cache under TCG), a thread ceiling and a CPU weight by vCPU count."""
    overhead = QEMU_OVERHEAD_MIB + (TCG_CACHE_MIB if tcg else 0)
    return CgroupLimits(
        memory_bytes=(memory_mib + overhead) * MIB,
        pids=PIDS_BASE + vcpu,
        cpu_weight=min(MAX_WEIGHT, WEIGHT_PER_VCPU * vcpu),
    )


def cgroup_name(vm_id: str) -> str:
    """A VM's cgroup under banger's own (one per VMM process: VMs and template VMs)."""
    return f"vm-{vm_id}"


# Where VMM uids come from (config `vmm_uids`): far above login users (1000-60000),
# systemd's dynamic users (61184-65519) and the usual subordinate ranges of /etc/subuid
# (100000 on, 65536 per user); inside systemd's unassigned 1879048192-2147352575, and below
# 2^31, which some tools still read as a signed number.
DEFAULT_VMM_UIDS = "1900000000-1900065535"


def uid_range(text: str) -> range:
    """`FIRST-LAST` (inclusive) as a range; "" is none (VMMs keep the daemon's user)."""
    if not text:
        return range(0)
    first, sep, last = text.partition("-")
    if not (sep and first.isdigit() and last.isdigit()):
        raise ValueError(f"{text!r} is not FIRST-LAST, e.g. {DEFAULT_VMM_UIDS}")
    low, high = int(first), int(last)
    if not 1000 <= low <= high < 1 << 31:
        raise ValueError(f"{text!r}: need 1000 <= FIRST <= LAST < 2147483648")
    return range(low, high + 1)


@dataclass(frozen=True)
class RunAs:
    """The unprivileged user and group a VMM runs as."""

    uid: int
    gid: int


def console_cut(size: int, block: int, limit: int = CONSOLE_LOG_MAX_BYTES) -> int:
    """How many bytes to drop from the head of a console log of `size` bytes: 0 while it
    is within `limit`, else enough to keep about half of it, rounded down to whole
    filesystem blocks (what collapsing a file's head needs)."""
    if size <= limit:
        return 0
    keep = limit // 2
    return (size - keep) // block * block
