"""`banger vm stats` as text: the summary fields and the history table."""

from __future__ import annotations

from banger.cli import stats
from banger.core.stats import (
    CgroupFigures,
    DiskUsage,
    GuestFigures,
    HostFigures,
    Sample,
    VMMCounters,
    VMStats,
)

# What the guest's report in tests/core/test_stats.py parses to.
GUEST = GuestFigures(
    (0.25, 0.10, 0.05), 2_048_000_000, 204_800_000,
    [DiskUsage("/", 900_000_000, 3_000_000_000), DiskUsage("/root", 57_344, 8_000_000_000)],
    36_000, 45_000, 161, 10_181,
)


def test_summary_fields_and_history_rows() -> None:
    report = VMStats(
        name="dev", state="running", interval=10.0,
        samples=[
            Sample(1000.0, HostFigures(None, 1.0, 100 << 20, None, 0), None, "no ssh"),
            Sample(1010.0, HostFigures(5.0, 1.5, 110 << 20, 100 << 20, 1), GUEST, "", 3.0),
        ],
        idle_since=900.0, auto_stop_after=7200.0,
    )
    fields = dict(stats.summary_fields(report, now=1020.0))
    assert fields["vmm cpu"].startswith("5.0% of one host CPU")
    assert fields["guest cpu"] == "3.0% busy (all vCPUs)"
    assert fields["disk /root"] == "56K used of 7.5G"
    assert fields["idle"] == "2m (auto-stop after 2h)"
    rows = stats.history_rows(report)
    assert len(rows) == 2 and len(rows[0]) == len(stats.HISTORY_HEADERS)
    assert rows[0][1] == "-"
    stopped = VMStats("dev", "stopped", 10.0, [])
    assert dict(stats.summary_fields(stopped, 0))["samples"].startswith("none")


def test_vmm_counters_render() -> None:
    counters = VMMCounters(6, 2 << 20, 2 << 20, 1000, 1000, 20)
    report = VMStats("dev", "running", 10.0, [
        Sample(1000.0, HostFigures(None, 1.0, 100 << 20, None, 0, counters), None, "no ssh"),
    ])
    fields = dict(stats.summary_fields(report, now=1000.0))
    assert fields["vmm block"] == "read 2M, written 2M"
    assert fields["vcpu exits"] == "6"


def test_the_vmms_cgroup_renders_against_its_limits() -> None:
    group = CgroupFigures(300 << 20, 1472 << 20, 12, 98)
    report = VMStats("dev", "running", 10.0, [
        Sample(1000.0, HostFigures(None, 1.0, 100 << 20, None, 0, cgroup=group), None, ""),
    ])
    fields = dict(stats.summary_fields(report, now=1000.0))
    assert fields["vmm cgroup"] == "memory 300M of 1.4G, 12 of 98 tasks"
