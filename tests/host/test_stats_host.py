from __future__ import annotations

import os
from pathlib import Path

import pytest

from banger.core.errors import HostError
from banger.core.stats import GUEST_REPORT_MAX_BYTES
from banger.host.stats import ProcFS, read_bounded


def fake_proc(root: Path) -> Path:
    process = root / "4242"
    process.mkdir(parents=True)
    (process / "stat").write_text(
        "4242 (qemu) S 1 1 1 0 -1 0 0 0 0 0 250 50 0 0 20 0 3 0 100 1000 2000\n"
    )
    (process / "status").write_text("Name:\tqemu\nVmRSS:\t    2048 kB\n")
    (process / "smaps_rollup").write_text("Rss:  2048 kB\nPss:  1024 kB\n")
    net = root / "net"
    net.mkdir()
    header = "  sl  local_address rem_address   st ... inode\n"
    row = ("   0: 0100A8C0:D431 0200A8C0:0016 01 00000000:00000000 00:00000000 "
           "00000000     0        0 {inode} 1 0000000000000000 20 4 30 10 -1\n")
    (net / "tcp").write_text(header + row.format(inode=77) + row.format(inode=78))
    fds = root / "self" / "fd"
    fds.mkdir(parents=True)
    os.symlink("socket:[78]", fds / "5")
    os.symlink("/dev/null", fds / "6")
    return root


def test_process_figures(tmp_path: Path) -> None:
    proc = ProcFS(fake_proc(tmp_path))
    figures = proc.process(4242)
    assert figures is not None
    assert (figures.cpu_ticks, figures.rss_bytes, figures.pss_bytes) == (300, 2 << 20, 1 << 20)
    (tmp_path / "4242" / "smaps_rollup").unlink()
    figures = proc.process(4242)
    assert figures is not None and figures.pss_bytes is None
    assert proc.process(99) is None


def test_connections_leave_out_our_own_sockets(tmp_path: Path) -> None:
    proc = ProcFS(fake_proc(tmp_path))
    assert proc.connections("192.168.0.2") == 1
    assert proc.connections("192.168.0.3") == 0


class Flood:
    """A channel that never ends, like a login shell that prints forever."""

    def __init__(self) -> None:
        self.read_bytes = 0

    async def read(self, n: int = -1) -> bytes:
        self.read_bytes += n
        return b"y\n" * (n // 2)


class Once:
    def __init__(self, data: bytes) -> None:
        self._data = data

    async def read(self, n: int = -1) -> bytes:
        data, self._data = self._data[:n], self._data[n:]
        return data


async def test_a_flooding_guest_report_is_cut_off_at_the_bound() -> None:
    flood = Flood()
    with pytest.raises(HostError, match="passed 256 KiB"):
        await read_bounded(flood, GUEST_REPORT_MAX_BYTES)
    assert flood.read_bytes <= GUEST_REPORT_MAX_BYTES + 65536


async def test_a_report_within_the_bound_is_read_whole() -> None:
    report = b"0.00 0.01 0.05 1/80 123\n@@\n" * 1000
    assert await read_bounded(Once(report), GUEST_REPORT_MAX_BYTES) == report
