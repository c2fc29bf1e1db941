from __future__ import annotations

import dataclasses

from banger.core import stats
from banger.core.stats import DiskUsage, GuestFigures, HostFigures, Sample, VMStats

PROC_STAT = (
    "4242 (qemu-system-x86) S 1 4242 4242 0 -1 4194560 500 0 0 0 "
    "700 300 0 0 20 0 3 0 100 1000000 2000"
)
REPORT = """0.25 0.10 0.05 1/123 456
@@
MemTotal:        2000000 kB
MemFree:         1500000 kB
MemAvailable:    1800000 kB
@@
Filesystem     1-blocks      Used  Available Capacity Mounted on
/dev/vda     3000000000 900000000 2000000000      31% /
/dev/vdb     8000000000     57344 7500000000       1% /root
@@
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop
    lo:    3193      29    0    0    0     0          0         0     3193      29    0    0 0 0 0 0
  eth0: 36000   200    0    0    0     0          0         0    45000   210    0    0 0 0 0 0
@@
cpu  100 5 50 10000 20 1 2 3 0 0
"""


def test_cpu_ticks_survive_spaces_and_parens_in_the_command_name() -> None:
    assert stats.cpu_ticks(PROC_STAT) == 1000
    assert stats.cpu_ticks(PROC_STAT.replace("(qemu-system-x86)", "(a) b (c)")) == 1000


def test_status_kib_and_cpu_percent() -> None:
    assert stats.status_kib("Name:\tqemu\nVmRSS:\t  2012 kB\n", "VmRSS") == 2012
    assert stats.status_kib("VmRSS:\n", "VmRSS") is None
    assert stats.cpu_percent(100, 150, 10.0, 100) == 5.0
    assert stats.cpu_percent(100, 150, 0, 100) == 0.0


def test_parse_guest_report() -> None:
    figures = stats.parse_guest_report(REPORT)
    assert figures.load == (0.25, 0.10, 0.05)
    assert figures.mem_total_bytes == 2000000 * 1024
    assert figures.mem_used_bytes == 200000 * 1024
    assert figures.disks == [DiskUsage("/", 900000000, 3000000000),
                             DiskUsage("/root", 57344, 8000000000)]
    assert (figures.net_rx_bytes, figures.net_tx_bytes) == (36000, 45000)
    assert (figures.cpu_busy_ticks, figures.cpu_total_ticks) == (161, 10181)


def test_guest_cpu_percent() -> None:
    before = GuestFigures((0, 0, 0), 1, 1, cpu_busy_ticks=100, cpu_total_ticks=1000)
    after = dataclasses.replace(before, cpu_busy_ticks=150, cpu_total_ticks=2000)
    assert stats.guest_cpu_percent(before, after) == 5.0
    assert stats.guest_cpu_percent(after, after) is None


def test_tcp_connections_counts_established_peers_but_not_our_own() -> None:
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when ... inode\n"

    def row(remote: str, state: str, inode: int) -> str:
        return (f"   0: 0100A8C0:D431 {remote}:0016 {state} 00000000:00000000 00:00000000 "
                f"00000000     0        0 {inode} 1 0000000000000000 20 4 30 10 -1\n")

    guest = "0200A8C0"  # 192.168.0.2, little-endian
    tcp = header + row(guest, "01", 11) + row(guest, "01", 12) + row(guest, "0A", 13) \
        + row("0300A8C0", "01", 14)
    tcp6 = header + row("0000000000000000FFFF0000" + guest, "01", 15)
    assert stats.tcp_connections([tcp, tcp6], "192.168.0.2", exclude_inodes={12}) == 2


def test_idle_prefers_guest_cpu_and_needs_no_connections() -> None:
    host = HostFigures(cpu_percent=30.0, cpu_seconds=1, rss_bytes=1, pss_bytes=None,
                       connections=0)
    guest = GuestFigures((0, 0, 0), 1, 1)
    assert Sample(0, host, guest, guest_cpu_percent=2.0).idle
    assert not Sample(0, host, guest, guest_cpu_percent=None).idle
    assert not Sample(0, host, guest, guest_cpu_percent=50.0).idle
    busy_link = dataclasses.replace(host, connections=1)
    assert not Sample(0, busy_link, guest, guest_cpu_percent=2.0).idle
    assert not Sample(0, host, None).idle  # no guest figures: the VMM's 30% counts
    assert Sample(0, dataclasses.replace(host, cpu_percent=1.0), None).idle
    assert not Sample(0, None, guest, guest_cpu_percent=0.0).idle


def test_stats_round_trip_through_json_shapes() -> None:
    report = VMStats(
        name="dev", state="running", interval=10.0,
        samples=[
            Sample(1000.0, HostFigures(None, 1.0, 100 << 20, None, 0), None, "no ssh"),
            Sample(1010.0, HostFigures(5.0, 1.5, 110 << 20, 100 << 20, 1),
                   stats.parse_guest_report(REPORT), "", 3.0),
        ],
        idle_since=900.0, auto_stop_after=7200.0,
    )
    as_json = dataclasses.asdict(report)
    as_json["samples"][1]["guest"]["load"] = list(as_json["samples"][1]["guest"]["load"])
    assert stats.stats_from_dict(as_json) == report


def test_vmm_counters_add_new_samples_once() -> None:
    from banger.core.firecracker import MetricsSample

    first = stats.VMMCounters().add([MetricsSample(10, 1 << 20, 2 << 20, 300, 400, 5)])
    again = first.add([MetricsSample(10, 1 << 20, 2 << 20, 300, 400, 5),
                       MetricsSample(20, 1 << 20, 0, 700, 600, 1)])
    assert again == stats.VMMCounters(6, 2 << 20, 2 << 20, 1000, 1000, 20)
    report = VMStats("dev", "running", 10.0, [
        Sample(1000.0, HostFigures(None, 1.0, 100 << 20, None, 0, again), None, "no ssh"),
    ])
    assert stats.stats_from_dict(dataclasses.asdict(report)) == report


def test_the_vmms_cgroup_round_trips() -> None:
    group = stats.CgroupFigures(300 << 20, 1472 << 20, 12, 98)
    report = VMStats("dev", "running", 10.0, [
        Sample(1000.0, HostFigures(None, 1.0, 100 << 20, None, 0, cgroup=group), None, ""),
    ])
    assert stats.stats_from_dict(dataclasses.asdict(report)) == report
