"""VM usage figures: the records `banger vm stats` shows and the parsers that make them from
/proc text (the VMM's on the host, the guest's over ssh). Plain dataclasses, cheap to import.

Idle, for `auto_stop_stale_after`: at a poll, no TCP connection between the host and the
guest is open (ssh sessions, port forwards, browsers; banger's own stats connection does not
count) and, since the previous poll, the guest's CPUs were busy less than `IDLE_CPU_PERCENT`
of the time (the guest's own /proc/stat; if the guest cannot be asked, the VMM process's host
CPU time over the interval is used instead, not counting the moment banger samples the guest).
Guest CPU is the better signal: an idle guest under TCG still costs its VMM ~5-15% of a host
CPU in timer emulation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from banger.core.firecracker import MetricsSample

IDLE_CPU_PERCENT = 10.0
GUEST_REPORT_SCRIPT = (
    "cat /proc/loadavg; echo @@; cat /proc/meminfo; echo @@; "
    "df -P -B1 / /root 2>/dev/null; echo @@; cat /proc/net/dev; echo @@; head -n 1 /proc/stat"
)
# A report is ~3-6 KiB (most of it /proc/meminfo and /proc/net/dev); more than this is a
# guest flooding the channel, and the sample fails instead of buffering it.
GUEST_REPORT_MAX_BYTES = 256 * 1024
_SEPARATOR = "@@"
_TCP_ESTABLISHED = "01"


@dataclass
class VMMCounters:
    """The VMM's own counters (Firecracker's metrics), totals since the VM started."""

    vcpu_exits: int = 0
    block_read_bytes: int = 0
    block_write_bytes: int = 0
    net_rx_bytes: int = 0
    net_tx_bytes: int = 0
    last_flush_ms: int = 0  # the newest metrics sample counted

    def add(self, samples: Iterable[MetricsSample]) -> VMMCounters:
        """These totals plus the samples newer than the last one counted (Firecracker's
        samples hold deltas since the previous flush)."""
        total = VMMCounters(**asdict(self))
        for s in samples:
            if s.timestamp_ms <= total.last_flush_ms:
                continue
            total.vcpu_exits += s.vcpu_exits
            total.block_read_bytes += s.block_read_bytes
            total.block_write_bytes += s.block_write_bytes
            total.net_rx_bytes += s.net_rx_bytes
            total.net_tx_bytes += s.net_tx_bytes
            total.last_flush_ms = s.timestamp_ms
        return total


@dataclass
class CgroupFigures:
    """The VMM's own cgroup: what it uses against its ceilings (None: no ceiling)."""

    memory_bytes: int
    memory_limit: int | None
    pids: int
    pids_limit: int | None


@dataclass
class HostFigures:
    """The VMM process as the host sees it."""

    cpu_percent: float | None  # of one host CPU, over the last interval
    cpu_seconds: float
    rss_bytes: int
    pss_bytes: int | None
    connections: int  # open TCP connections between host and guest, banger's own excluded
    vmm: VMMCounters | None = None  # backends with their own counters only
    cgroup: CgroupFigures | None = None  # a daemon that confines its VMMs only


@dataclass
class DiskUsage:
    mount: str
    used_bytes: int
    size_bytes: int


@dataclass
class GuestFigures:
    load: tuple[float, float, float]
    mem_total_bytes: int
    mem_used_bytes: int
    disks: list[DiskUsage] = field(default_factory=list)
    net_rx_bytes: int = 0
    net_tx_bytes: int = 0
    cpu_busy_ticks: int = 0  # all guest CPUs, from /proc/stat
    cpu_total_ticks: int = 0


@dataclass
class Sample:
    time: float
    host: HostFigures | None
    guest: GuestFigures | None
    guest_error: str = ""
    guest_cpu_percent: float | None = None  # of all guest CPUs, since the previous sample

    @property
    def idle(self) -> bool:
        if self.host is None or self.host.connections:
            return False
        busy = self.guest_cpu_percent if self.guest is not None else self.host.cpu_percent
        return busy is not None and busy < IDLE_CPU_PERCENT


@dataclass
class VMStats:
    name: str
    state: str
    interval: float
    samples: list[Sample]  # oldest first; the last one is taken when asked
    idle_since: float | None = None
    auto_stop_after: float | None = None


def stats_from_dict(data: dict[str, Any]) -> VMStats:
    return VMStats(
        name=data["name"], state=data["state"], interval=data["interval"],
        samples=[_sample_from_dict(s) for s in data["samples"]],
        idle_since=data.get("idle_since"), auto_stop_after=data.get("auto_stop_after"),
    )


def _sample_from_dict(data: dict[str, Any]) -> Sample:
    host = None
    if data.get("host"):
        values = dict(data["host"])
        values["vmm"] = VMMCounters(**values["vmm"]) if values.get("vmm") else None
        values["cgroup"] = CgroupFigures(**values["cgroup"]) if values.get("cgroup") else None
        host = HostFigures(**values)
    guest = None
    if data.get("guest"):
        values = dict(data["guest"])
        values["load"] = tuple(values["load"])
        values["disks"] = [DiskUsage(**d) for d in values.get("disks", [])]
        guest = GuestFigures(**values)
    return Sample(
        data["time"], host, guest, data.get("guest_error", ""), data.get("guest_cpu_percent")
    )


# Host side (/proc of the VMM process)


def cpu_ticks(proc_stat: str) -> int:
    """utime + stime from /proc/PID/stat (fields after the parenthesised command name)."""
    fields = proc_stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def status_kib(status: str, key: str) -> int | None:
    """A `key:   N kB` line of /proc/PID/status, /proc/PID/smaps_rollup or /proc/meminfo."""
    for line in status.splitlines():
        if line.startswith(key + ":"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1])
    return None


def cpu_percent(ticks_before: int, ticks_after: int, seconds: float, clock_ticks: int) -> float:
    if seconds <= 0:
        return 0.0
    return max(0.0, (ticks_after - ticks_before) / clock_ticks / seconds * 100)


def guest_cpu_percent(before: GuestFigures, after: GuestFigures) -> float | None:
    total = after.cpu_total_ticks - before.cpu_total_ticks
    if total <= 0:
        return None
    return max(0.0, (after.cpu_busy_ticks - before.cpu_busy_ticks) / total * 100)


def _hex_ipv4(text: str) -> str | None:
    """An address of /proc/net/tcp{,6} (host byte order, little-endian here) as dotted IPv4;
    IPv4-mapped IPv6 addresses too."""
    if len(text) == 32 and text.startswith("0000000000000000FFFF0000"):
        text = text[24:]
    if len(text) != 8:
        return None
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return None
    return ".".join(str(b) for b in reversed(raw))


def tcp_connections(tables: Iterable[str], ip: str, exclude_inodes: set[int]) -> int:
    """Established TCP connections with `ip` at the other end, in /proc/net/tcp{,6} text."""
    count = 0
    for table in tables:
        for line in table.splitlines()[1:]:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _TCP_ESTABLISHED:
                continue
            remote = _hex_ipv4(fields[2].split(":")[0])
            if remote != ip:
                continue
            try:
                inode = int(fields[9])
            except ValueError:
                continue
            if inode not in exclude_inodes:
                count += 1
    return count


# Guest side (GUEST_REPORT_SCRIPT's output)


def parse_guest_report(text: str, interface: str = "eth0") -> GuestFigures:
    parts = text.split(_SEPARATOR + "\n")
    if len(parts) != 5:
        raise ValueError("unexpected guest report")
    loadavg, meminfo, df, netdev, cpu = parts
    load_fields = loadavg.split()
    load = (float(load_fields[0]), float(load_fields[1]), float(load_fields[2]))
    total = (status_kib(meminfo, "MemTotal") or 0) * 1024
    available = (status_kib(meminfo, "MemAvailable") or 0) * 1024
    disks = []
    for line in df.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 6 and fields[1].isdigit() and fields[2].isdigit():
            disks.append(DiskUsage(fields[-1], int(fields[2]), int(fields[1])))
    rx = tx = 0
    for line in netdev.splitlines():
        name, sep, counters = line.partition(":")
        if sep and name.strip() == interface:
            values = counters.split()
            rx, tx = int(values[0]), int(values[8])
    # cpu  user nice system idle iowait irq softirq steal ...
    ticks = [int(v) for v in cpu.split()[1:9]]
    busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7]
    return GuestFigures(
        load, total, max(0, total - available), disks, rx, tx, busy, busy + ticks[3] + ticks[4]
    )
