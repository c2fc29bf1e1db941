"""`banger vm stats` as text: a VM's latest figures as fields and its recent samples as
table rows (the CLI prints both)."""

from __future__ import annotations

import time

from banger.core.durations import format_duration
from banger.core.stats import VMStats
from banger.core.units import format_size


def _size(num_bytes: int | None) -> str:
    return "-" if num_bytes is None else format_size(num_bytes)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def summary_fields(report: VMStats, now: float) -> list[tuple[str, str]]:
    pairs = [("name", report.name), ("state", report.state)]
    latest = report.samples[-1] if report.samples else None
    if latest is None:
        return [*pairs, ("samples", "none (the VM is not running)")]
    host, guest = latest.host, latest.guest
    if host is not None:
        pairs += [
            ("vmm cpu", f"{_percent(host.cpu_percent)} of one host CPU "
                    f"({host.cpu_seconds:.1f}s in total)"),
            ("vmm memory", f"rss {_size(host.rss_bytes)}, pss {_size(host.pss_bytes)}"),
            ("connections", f"{host.connections} open between host and guest"),
        ]
        if host.cgroup is not None:
            group = host.cgroup
            pairs.append(("vmm cgroup", f"memory {_size(group.memory_bytes)} of "
                          f"{_size(group.memory_limit)}, {group.pids} of "
                          f"{group.pids_limit or '-'} tasks"))
        if host.vmm is not None:
            pairs += [
                ("vmm block", f"read {_size(host.vmm.block_read_bytes)}, "
                              f"written {_size(host.vmm.block_write_bytes)}"),
                ("vmm network", f"rx {_size(host.vmm.net_rx_bytes)}, "
                                f"tx {_size(host.vmm.net_tx_bytes)}"),
                ("vcpu exits", str(host.vmm.vcpu_exits)),
            ]
    if guest is not None:
        pairs += [
            ("guest cpu", f"{_percent(latest.guest_cpu_percent)} busy (all vCPUs)"),
            ("load", " ".join(f"{v:.2f}" for v in guest.load)),
            ("guest memory", f"{_size(guest.mem_used_bytes)} used of "
                             f"{_size(guest.mem_total_bytes)}"),
            *[(f"disk {d.mount}", f"{_size(d.used_bytes)} used of {_size(d.size_bytes)}")
              for d in guest.disks],
            ("network", f"rx {_size(guest.net_rx_bytes)}, tx {_size(guest.net_tx_bytes)}"),
        ]
    elif latest.guest_error:
        pairs.append(("guest", f"unavailable: {latest.guest_error}"))
    if report.idle_since is not None:
        idle = f"{format_duration(max(0.0, now - report.idle_since))}"
        stop = (f"auto-stop after {format_duration(report.auto_stop_after)}"
                if report.auto_stop_after else "auto-stop off")
        pairs.append(("idle", f"{idle} ({stop})"))
    pairs.append(("samples", f"{len(report.samples)}, every {format_duration(report.interval)}"))
    return pairs


def history_rows(report: VMStats, limit: int = 10) -> list[list[str]]:
    rows = []
    for sample in report.samples[-limit:]:
        host, guest = sample.host, sample.guest
        rows.append([
            time.strftime("%H:%M:%S", time.localtime(sample.time)),
            _percent(host.cpu_percent) if host else "-",
            _percent(sample.guest_cpu_percent),
            _size(host.rss_bytes) if host else "-",
            f"{guest.load[0]:.2f}" if guest else "-",
            _size(guest.mem_used_bytes) if guest else "-",
            _size(guest.net_rx_bytes) if guest else "-",
            _size(guest.net_tx_bytes) if guest else "-",
        ])
    return rows


HISTORY_HEADERS = ["TIME", "VMM CPU", "GUEST CPU", "RSS", "LOAD", "MEM", "RX", "TX"]
