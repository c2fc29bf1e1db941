"""Fakes of the host adapters (banger.host.*), one per external system, for the unit tests
of the services: they record what they were asked and touch nothing on the machine."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from banger.core import agent, dns, nat, perlkit, stats
from banger.core.confine import CgroupLimits
from banger.core.errors import BootFailed, HostError, InvalidInput
from banger.core.imagerecipe import PACKAGES
from banger.core.imagerecipe import STAGE as IMAGE_STAGE
from banger.core.kernelcatalog import CatalogKernel
from banger.core.models import ProgressEvent
from banger.core.nat import GuestNet
from banger.core.oci import Reference
from banger.core.stats import CgroupFigures
from banger.host import kernelpull, oci
from banger.host.dns import PacketHandler
from banger.host.imagebuild import BuiltImage
from banger.host.kernelpull import FetchedKernel
from banger.host.ocipull import PulledImage
from banger.host.processes import Result
from banger.host.stats import ProcessFigures

ProgressSink = Callable[[ProgressEvent], None]


# banger.host.processes


@dataclass
class FakeRunner:
    """Records every command; answers from `responses` keyed by argv prefix."""

    responses: dict[tuple[str, ...], Result] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    fail_on: set[tuple[str, ...]] = field(default_factory=set)
    inputs: list[bytes | None] = field(default_factory=list)  # stdin of each call

    async def run(
        self, argv: Sequence[str], *, check: bool = True, privileged: bool = False,
        input: bytes | None = None,
    ) -> Result:
        key = tuple(argv)
        self.calls.append(key)
        self.inputs.append(input)
        for prefix in self.fail_on:
            if key[: len(prefix)] == prefix:
                if check:
                    raise HostError(f"`{' '.join(argv)}` failed: fake failure")
                return Result(key, 1, "", "fake failure")
        for prefix, result in self.responses.items():
            if key[: len(prefix)] == prefix:
                return result
        return Result(key, 0, "", "")


# banger.host.network


class FakeNetwork:
    def __init__(self) -> None:
        self.bridges: dict[str, str] = {}
        self.taps: dict[str, str] = {}

    async def link_exists(self, name: str) -> bool:
        return name in self.bridges or name in self.taps

    async def ensure_bridge(self, name: str, ip: str, prefix_len: int) -> None:
        self.bridges[name] = f"{ip}/{prefix_len}"

    async def create_tap(self, tap: str, bridge: str) -> None:
        if bridge not in self.bridges:
            raise HostError(f"no bridge {bridge}")
        self.taps[tap] = bridge

    async def delete_tap(self, tap: str) -> None:
        self.taps.pop(tap, None)

    async def list_taps(self, prefix: str, bridge: str) -> list[str]:
        return [t for t, master in self.taps.items() if t.startswith(prefix) and master == bridge]


class FakeLoopbackPorts:
    """Ports from 40000 up; `taken` are in use by someone else."""

    def __init__(self) -> None:
        self.taken: set[int] = set()
        self._next = 40000

    def is_free(self, port: int) -> bool:
        return port not in self.taken

    def pick_free(self) -> int:
        while self._next in self.taken:
            self._next += 1
        self._next += 1
        return self._next - 1


# banger.host.disks


class FakeDisks:
    def __init__(self) -> None:
        self.overlays: dict[Path, Path] = {}
        self.work: dict[Path, int] = {}
        self.free = 1 << 50

    def free_bytes(self, path: Path) -> int:
        return self.free

    async def create_overlay(self, base: Path, overlay: Path) -> None:
        overlay.write_bytes(b"qcow2")
        self.overlays[overlay] = base

    async def create_work_disk(self, path: Path, size_bytes: int, staging: Path) -> None:
        path.write_bytes(b"ext4")
        self.work[path] = size_bytes

    async def grow_work_disk(self, path: Path, size_bytes: int) -> None:
        if size_bytes < self.work.get(path, 0):
            raise InvalidInput("shrinking the work disk is not supported")
        self.work[path] = size_bytes


# banger.host.nat


@dataclass
class FakeBridgeRules:
    bridge_ip: str
    guests: list[GuestNet]
    quarantined: set[str]


@dataclass
class FakeNat:
    is_available: bool = True
    rules: dict[str, FakeBridgeRules] = field(default_factory=dict)
    allowed: dict[str, dict[str, int]] = field(default_factory=dict)  # vm id -> ip -> seconds
    forwarding: bool = False
    calls: list[str] = field(default_factory=list)

    def available(self) -> bool:
        return self.is_available

    @property
    def guests(self) -> dict[str, list[GuestNet]]:
        return {bridge: rules.guests for bridge, rules in self.rules.items()}

    async def replace(
        self, bridge: str, bridge_ip: str, guests: Sequence[GuestNet],
        quarantined_taps: Iterable[str],
    ) -> None:
        self.calls.append("replace")
        ordered = sorted(guests, key=lambda g: g.ip)
        self.rules[bridge] = FakeBridgeRules(bridge_ip, ordered, set(quarantined_taps))
        with_sets = {g.vm_id for g in ordered if g.allow_names}
        self.allowed = {k: v for k, v in self.allowed.items() if k in with_sets}

    async def remove(self, bridge: str) -> None:
        self.calls.append("remove")
        self.rules.pop(bridge, None)
        self.allowed.clear()

    async def missing(self, bridge: str) -> list[str]:
        return [] if bridge in self.rules else [
            f"{family} {chain}" for family, chain in nat.expected_chains(bridge)
        ]

    async def allow(self, bridge: str, vm_id: str, addresses: Sequence[tuple[str, int]]) -> None:
        self.calls.append("allow")
        self.allowed.setdefault(vm_id, {}).update(dict(addresses))

    async def enable_forwarding(self) -> None:
        self.forwarding = True


# banger.host.cgroups


class FakeCgroups:
    version = "fake"

    def __init__(self) -> None:
        self.groups: dict[str, tuple[int, CgroupLimits]] = {}
        self.parent_prepared = False

    def prepare_parent(self) -> str:
        self.parent_prepared = True
        return "banger"

    def confine(self, name: str, pid: int, limits: CgroupLimits) -> None:
        self.groups[name] = (pid, limits)

    def usage(self, name: str) -> CgroupFigures | None:
        found = self.groups.get(name)
        if found is None:
            return None
        return CgroupFigures(64 << 20, found[1].memory_bytes, 3, found[1].pids)


# banger.host.dns


class FakeResolved:
    def __init__(self, available: bool = True) -> None:
        self.is_available = available
        self.routes: dict[str, tuple[str, str]] = {}
        self.calls: list[tuple[str, ...]] = []

    def available(self) -> bool:
        return self.is_available

    async def route(self, link: str, server: str, domain: str) -> None:
        self.calls.append(("route", link, server, domain))
        self.routes[link] = (server, domain)

    async def revert(self, link: str) -> None:
        self.calls.append(("revert", link))
        self.routes.pop(link, None)


class FakeDNSListener:
    """Nothing is bound; tests call `query` to push a packet through the handler."""

    def __init__(self, fail: OSError | None = None) -> None:
        self.fail = fail
        self.address: tuple[str, int] | None = None
        self.handler: PacketHandler | None = None
        self.closed = False

    async def start(self, address: str, port: int, handler: PacketHandler) -> None:
        if self.fail is not None:
            raise self.fail
        self.address = (address, port)
        self.handler = handler

    async def query(self, packet: bytes, client: str = "172.16.0.9") -> bytes | None:
        assert self.handler is not None, "not started"
        return await self.handler(packet, client)

    async def close(self) -> None:
        self.closed = True


class FakeForwarder:
    def __init__(self, answer: Callable[[bytes], bytes | None] | None = None) -> None:
        self.answer = answer
        self.forwarded: list[tuple[bytes, list[tuple[str, int]]]] = []

    async def forward(
        self, packet: bytes, query: dns.Query, upstreams: list[tuple[str, int]]
    ) -> bytes | None:
        self.forwarded.append((packet, upstreams))
        return self.answer(packet) if self.answer is not None else None


# banger.host.agent


class FakeAgentChannel:
    """Records what was sent; `fail` makes the next call raise; with `settled`, the agent
    answers only once that event is set."""

    def __init__(self) -> None:
        self.ready: list[Path] = []
        self.identities: list[tuple[Path, agent.Identity]] = []
        self.fail: BootFailed | None = None
        self.settled: asyncio.Event | None = None
        self.exec_agent: Callable[
            [], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
        ] | None = None

    async def wait_ready(self, socket: Path, timeout: float, alive: Callable[[], bool]) -> None:
        if self.settled is not None:
            await self.settled.wait()
        self._maybe_fail()
        self.ready.append(socket)

    async def send_identity(
        self, socket: Path, identity: agent.Identity, timeout: float,
        alive: Callable[[], bool],
    ) -> None:
        self._maybe_fail()
        self.identities.append((socket, identity))

    async def open(
        self, socket: Path, timeout: float, alive: Callable[[], bool]
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The exec channel: a stand-in agent set by the test as `exec_agent`."""
        if self.exec_agent is None:
            raise BootFailed(f"cannot reach the guest agent at {socket}")
        return await self.exec_agent()

    def _maybe_fail(self) -> None:
        if self.fail is not None:
            error, self.fail = self.fail, None
            raise error


# banger.host.stats


class FakeProcStats:
    def __init__(self) -> None:
        self.clock_ticks = 100
        self.processes: dict[int, ProcessFigures] = {}
        self.open_connections: dict[str, int] = {}

    def process(self, pid: int) -> ProcessFigures | None:
        return self.processes.get(pid)

    def connections(self, ip: str) -> int:
        return self.open_connections.get(ip, 0)


class FakeGuestStats:
    def __init__(self) -> None:
        self.figures = stats.GuestFigures(
            (0.0, 0.0, 0.0), 1024**3, 100 * 1024**2,
            [stats.DiskUsage("/", 10**9, 4 * 10**9), stats.DiskUsage("/root", 10**6, 8 * 10**9)],
            1000, 2000,
        )
        self.error: HostError | None = None
        self.calls: list[str] = []
        self.forgotten: list[str] = []

    async def sample(
        self, ip: str, port: int = 22, *, client_key: Path, known_hosts: Path, timeout: float
    ) -> stats.GuestFigures:
        self.calls.append(ip)
        if self.error is not None:
            raise self.error
        return self.figures

    async def forget(self, ip: str, port: int = 22) -> None:
        self.forgotten.append(ip)


# banger.host.imagebuild


class FakeImageBuilder:
    """Writes small placeholder files instead of building; records each call."""

    def __init__(self, *, fail_with: Exception | None = None) -> None:
        self.fail_with = fail_with
        self.calls: list[dict[str, object]] = []

    async def build(
        self,
        *,
        suite: str,
        dest_dir: Path,
        apt_sources: Sequence[str],
        progress: ProgressSink,
    ) -> BuiltImage:
        self.calls.append({"suite": suite, "dest_dir": dest_dir, "apt_sources": list(apt_sources)})
        progress(ProgressEvent(IMAGE_STAGE, f"bootstrapping Debian {suite} (fake)", 0.0))
        if self.fail_with is not None:
            raise self.fail_with
        dest_dir.mkdir(parents=True, exist_ok=True)
        rootfs = dest_dir / "rootfs.ext4"
        with rootfs.open("wb") as handle:
            handle.truncate(64 * 1024 * 1024)
        (dest_dir / "vmlinuz").write_bytes(b"fake kernel")
        (dest_dir / "initrd.img").write_bytes(b"fake initrd")
        progress(ProgressEvent(IMAGE_STAGE, "image ready (fake)", 1.0))
        return BuiltImage(
            rootfs=rootfs,
            kernel=dest_dir / "vmlinuz",
            initrd=dest_dir / "initrd.img",
            kernel_version="0.0.0-fake",
            packages=tuple(f"{name}=0" for name in sorted(PACKAGES)),
            size_bytes=64 * 1024 * 1024,
        )


# banger.host.ocipull


class FakeImagePuller:
    """Writes placeholder files; records each call."""

    def __init__(self, *, has_sshd: bool = True, with_kernel: bool = False,
                 fail_with: Exception | None = None) -> None:
        self.calls: list[dict[str, object]] = []
        self.has_sshd = has_sshd
        self.with_kernel = with_kernel
        self.fail_with = fail_with

    async def pull(
        self, *, reference: Reference, dest_dir: Path, max_bytes: int, progress: ProgressSink
    ) -> PulledImage:
        self.calls.append({"reference": str(reference), "dest_dir": dest_dir,
                           "max_bytes": max_bytes})
        progress(ProgressEvent(oci.STAGE, f"pulling {reference} (fake)", 0.0))
        if self.fail_with is not None:
            raise self.fail_with
        dest_dir.mkdir(parents=True, exist_ok=True)
        rootfs = dest_dir / "rootfs.ext4"
        with rootfs.open("wb") as handle:
            handle.truncate(16 * 1024 * 1024)
        kernel = initrd = None
        if self.with_kernel:
            kernel, initrd = dest_dir / "vmlinuz", dest_dir / "initrd.img"
            kernel.write_bytes(b"fake kernel")
            initrd.write_bytes(b"fake initrd")
        return PulledImage(
            rootfs=rootfs, kernel=kernel, initrd=initrd, reference=str(reference),
            digest="sha256:" + "0" * 64, layers=1, size_bytes=16 * 1024 * 1024,
            downloaded_bytes=0, has_sshd=self.has_sshd, has_systemd=True,
        )


# banger.host.kernelpull


class FakeKernelFetcher:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def fetch(
        self, *, entry: CatalogKernel, archive: str, dest_dir: Path, progress: ProgressSink
    ) -> FetchedKernel:
        self.calls.append(entry.name)
        progress(ProgressEvent(kernelpull.STAGE, f"fetching {entry.name} (fake)", 0.0))
        (dest_dir / "modules/0.0-fake").mkdir(parents=True)
        for name in ("vmlinuz", "initrd.img"):
            (dest_dir / name).write_bytes(b"fake " + name.encode())
        return FetchedKernel(
            vmlinuz=dest_dir / "vmlinuz", initrd=dest_dir / "initrd.img", vmlinux=None,
            modules=dest_dir / "modules/0.0-fake", version="0.0-fake",
            package=f"{entry.package}=0",
        )


# banger.host.bundle


class PlainCodec:
    """Stores bytes as they are: the fake for unit tests."""

    @contextlib.contextmanager
    def compress(self, out: IO[bytes]) -> Iterator[IO[bytes]]:
        yield out

    @contextlib.contextmanager
    def decompress(self, src: IO[bytes]) -> Iterator[IO[bytes]]:
        yield src


# banger.host.perlkit


@dataclass
class FakePerlKits:
    """A bundled perl of two small files; counts how often it was asked for."""

    kit_requests: int = 0

    def kit(self) -> perlkit.PerlKit:
        self.kit_requests += 1
        return perlkit.PerlKit(
            {perlkit.PERL_PATH: b"\x7fELF perl", f"{perlkit.MODULE_DIR}/strict.pm": b"1;\n"},
            "/usr/lib/banger/perl/ld.so --library-path /usr/lib/banger/perl/lib perl agent",
        )
