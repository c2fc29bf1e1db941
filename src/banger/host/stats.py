"""Reading usage figures: the VMM process and host<->guest TCP connections from /proc, the
guest's own figures over ssh."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from banger.core import stats
from banger.core.errors import HostError


@dataclass(frozen=True)
class ProcessFigures:
    cpu_ticks: int
    rss_bytes: int
    pss_bytes: int | None


class ProcStats(Protocol):
    clock_ticks: int

    def process(self, pid: int) -> ProcessFigures | None:
        """None once the process is gone."""
        ...

    def connections(self, ip: str) -> int:
        """Established TCP connections between this network namespace and `ip`, not counting
        this process's own sockets."""
        ...


class ProcFS:
    def __init__(self, root: Path = Path("/proc")) -> None:
        self._root = root
        self.clock_ticks = os.sysconf("SC_CLK_TCK")

    def process(self, pid: int) -> ProcessFigures | None:
        base = self._root / str(pid)
        try:
            ticks = stats.cpu_ticks((base / "stat").read_text())
            rss = stats.status_kib((base / "status").read_text(), "VmRSS") or 0
        except (OSError, IndexError, ValueError):
            return None
        try:
            pss = stats.status_kib((base / "smaps_rollup").read_text(), "Pss")
        except OSError:
            pss = None  # smaps_rollup needs ptrace rights over the process
        return ProcessFigures(ticks, rss * 1024, pss * 1024 if pss is not None else None)

    def connections(self, ip: str) -> int:
        tables = []
        for name in ("tcp", "tcp6"):
            try:
                tables.append((self._root / "net" / name).read_text())
            except OSError:
                continue
        return stats.tcp_connections(tables, ip, self._own_socket_inodes())

    def _own_socket_inodes(self) -> set[int]:
        inodes: set[int] = set()
        fd_dir = self._root / "self" / "fd"
        try:
            entries = list(fd_dir.iterdir())
        except OSError:
            return inodes
        for entry in entries:
            try:
                target = os.readlink(entry)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
        return inodes


class ByteReader(Protocol):
    async def read(self, n: int = -1) -> bytes: ...


async def read_bounded(stream: ByteReader, limit: int) -> bytes:
    """All of `stream` up to EOF, or HostError once it passes `limit` bytes: a guest (its
    login shell, say) that floods the channel cannot grow the daemon's memory."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.read(65536):
        size += len(chunk)
        if size > limit:
            raise HostError(f"its report passed {limit // 1024} KiB; a guest's report is a "
                            "few KiB (does root's shell print on login?)")
        chunks.append(chunk)
    return b"".join(chunks)


class GuestStats(Protocol):
    async def sample(
        self, ip: str, port: int = 22, *, client_key: Path, known_hosts: Path, timeout: float
    ) -> stats.GuestFigures: ...

    async def forget(self, ip: str, port: int = 22) -> None:
        """Drop what is kept open for the guest's sshd at `ip`:`port` (it stopped or went
        away)."""
        ...


class SSHGuestStats:
    """Runs the report script over ssh with banger's key and pinned host keys. The connection
    stays open between samples: a key exchange per sample would cost a TCG guest more CPU
    than everything else it does while idle, and hide idleness from auto-stop."""

    def __init__(self) -> None:
        self._conns: dict[tuple[str, int], Any] = {}

    async def sample(
        self, ip: str, port: int = 22, *, client_key: Path, known_hosts: Path, timeout: float
    ) -> stats.GuestFigures:
        from banger.host.sshlib import load_asyncssh

        asyncssh = load_asyncssh()

        try:
            async with asyncio.timeout(timeout):
                conn = self._conns.get((ip, port))
                if conn is None:
                    conn = await asyncssh.connect(
                        ip, port, username="root", client_keys=[str(client_key)],
                        known_hosts=str(known_hosts), agent_path=None, config=[],
                        connect_timeout=timeout,
                    )
                    self._conns[ip, port] = conn
                process = await conn.create_process(
                    stats.GUEST_REPORT_SCRIPT, encoding=None, stderr=asyncssh.DEVNULL
                )
                try:
                    report = await read_bounded(process.stdout, stats.GUEST_REPORT_MAX_BYTES)
                except BaseException:
                    process.close()
                    raise
                await process.wait_closed()
                if process.exit_status != 0:
                    raise HostError(f"the report exited with {process.exit_status}")
        except (OSError, asyncssh.Error, TimeoutError, HostError) as exc:
            await self.forget(ip, port)
            raise HostError(f"guest stats from {ip}: {exc or type(exc).__name__}") from exc
        output = report.decode(errors="replace")
        try:
            return stats.parse_guest_report(output)
        except (ValueError, IndexError) as exc:
            raise HostError(f"guest stats from {ip}: unreadable report ({exc})") from exc

    async def forget(self, ip: str, port: int = 22) -> None:
        conn = self._conns.pop((ip, port), None)
        if conn is not None:
            conn.close()
