"""Fakes of the hypervisors, key maker and SSH probe the daemon's services receive (the
fakes of the other host adapters are in tests/support/host_fakes.py)."""

from __future__ import annotations

import asyncio
import itertools
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

from banger.core.errors import HostError, InvalidState
from banger.core.firecracker import MetricsSample
from banger.core.models import ProgressEvent
from banger.daemon.vmfollowers import VMFollowerAdapters
from banger.host.imagebuild import BuiltImage
from banger.host.vmm.base import LaunchSpec
from tests.support.host_fakes import (
    FakeDNSListener,
    FakeForwarder,
    FakeGuestStats,
    FakeImageBuilder,
    FakeNat,
    FakeProcStats,
    FakeResolved,
)

_pids = itertools.count(4_000_000)


def launch_spec_in(vm_dir: Path, name: str = "template-x") -> LaunchSpec:
    """A minimal LaunchSpec for a VM whose directory is `vm_dir`."""
    return LaunchSpec(
        vm_id="0123456789ab", name=name, vcpu=1, memory_mib=128,
        kernel=Path("/k"), initrd=None, cmdline="", root_disk=Path("/r"),
        work_disk=Path("/w"), tap="bgrx", mac="02:00:00:00:00:01", vm_dir=vm_dir, accel="tcg",
    )


class FakeHypervisor:
    """Processes are entries in `running` (pid -> VM dir). Every signal ends the process."""

    name = "fake"

    def __init__(self) -> None:
        self.running: dict[int, Path] = {}
        self.launched: list[LaunchSpec] = []
        self.signals: list[tuple[int, int]] = []
        self.stopped: list[int] = []
        self.released: list[Path] = []
        self.fail_start: Exception | None = None
        self.graceful = True
        self.console = b""  # what the guest writes to its serial console when started

    async def start(self, spec: LaunchSpec) -> int:
        self.launched.append(spec)
        if self.fail_start is not None:
            raise self.fail_start
        spec.console_log.write_bytes(self.console)
        pid = next(_pids)
        self.running[pid] = spec.vm_dir
        return pid

    async def stop(self, pid: int, vm_dir: Path, timeout: float) -> bool:
        self.stopped.append(pid)
        self.running.pop(pid, None)
        return self.graceful

    def kill(self, pid: int, signal_number: int) -> None:
        self.signals.append((pid, signal_number))
        self.running.pop(pid, None)

    async def release(self, vm_dir: Path) -> None:
        self.released.append(vm_dir)

    def owns(self, argv: Sequence[str]) -> bool:
        return "-fake-vmm" in argv

    def is_running(self, pid: int | None, vm_dir: Path) -> bool:
        return pid is not None and self.running.get(pid) == vm_dir

    def exit(self, pid: int) -> None:
        """The guest powers itself off (or the VMM crashes)."""
        self.running.pop(pid)


class ResetsInPlace:
    """Mixin for a fake backend: `reset` reboots the guest in place, like QEMU's
    `system_reset`; the console then gets `console_after_reset`, and `on_reset` (if set)
    runs."""

    def __init__(self) -> None:
        super().__init__()
        self.resets: list[Path] = []
        self.console_after_reset = b""
        self.on_reset: Callable[[], None] | None = None
        self.fail_reset: Exception | None = None

    async def reset(self, vm_dir: Path) -> None:
        if self.fail_reset is not None:
            raise self.fail_reset
        self.resets.append(vm_dir)
        with launch_spec_in(vm_dir).console_log.open("ab") as console:
            console.write(self.console_after_reset)
        if self.on_reset is not None:
            self.on_reset()


class FakeResettingVMM(ResetsInPlace, FakeHypervisor):
    name = "qemu"


class FakeSnapshotVMM(FakeHypervisor):
    """A backend that also pauses, snapshots and keeps its own counters, like Firecracker.
    `paused` holds the VM dirs whose vCPUs are stopped; snapshots are files in the VM dir."""

    name = "firecracker"

    def __init__(self) -> None:
        super().__init__()
        self.paused: set[Path] = set()
        self.calls: list[str] = []
        self.samples: list[MetricsSample] = []
        self.restored: list[LaunchSpec] = []

    async def pause(self, vm_dir: Path) -> None:
        self.calls.append("pause")
        self.paused.add(vm_dir)

    async def resume(self, vm_dir: Path) -> None:
        self.calls.append("resume")
        self.paused.discard(vm_dir)

    async def stop(self, pid: int, vm_dir: Path, timeout: float) -> bool:
        if vm_dir in self.paused:
            raise AssertionError("a paused guest cannot shut itself down")
        return await super().stop(pid, vm_dir, timeout)

    async def snapshot(self, vm_dir: Path) -> Path:
        self.calls.append("snapshot")
        (vm_dir / "snapshot").write_text("state")
        return vm_dir / "snapshot"

    async def start_from_snapshot(self, spec: LaunchSpec) -> int:
        if not (spec.vm_dir / "snapshot").exists():
            raise InvalidState(f"VM {spec.name!r} has no snapshot")
        self.restored.append(spec)
        pid = next(_pids)
        self.running[pid] = spec.vm_dir
        return pid

    async def metrics(self, vm_dir: Path) -> list[MetricsSample]:
        return list(self.samples)


class FakeTemplateVMM(FakeHypervisor):
    """A backend that saves templates and restores VMs from them, like QEMU's. A saved
    template's device state is a file; `fail_restore` makes the next restore fail."""

    name = "qemu"

    def __init__(self) -> None:
        super().__init__()
        self.saved: list[Path] = []
        self.restored: list[tuple[LaunchSpec, Path]] = []
        self.fail_restore: Exception | None = None

    async def save_template(self, vm_dir: Path, state: Path, memory: Path) -> None:
        assert any(d == vm_dir for d in self.running.values()), "no template VM running"
        memory.write_bytes(b"ram")
        state.write_text("device state")
        self.saved.append(state)

    async def start_from_template(self, spec: LaunchSpec, state: Path) -> int:
        assert spec.incoming and spec.agent and spec.memory_file is not None
        assert not spec.memory_shared, "restored VMs must map the template copy-on-write"
        if self.fail_restore is not None:
            error, self.fail_restore = self.fail_restore, None
            raise error
        if not state.exists():
            raise HostError("no device state")
        self.restored.append((spec, state))
        pid = next(_pids)
        self.running[pid] = spec.vm_dir
        return pid

    def agent_socket(self, vm_dir: Path) -> Path:
        return vm_dir / "agent.sock"


class FakeResettingTemplateVMM(ResetsInPlace, FakeTemplateVMM):
    pass


class FakeFirecrackerTemplateVMM(FakeTemplateVMM):
    """Templates the way the Firecracker backend makes them: it makes each root itself (an
    overlay disk here, whose text says where it came from), a restored VM gets a copy of
    the template's, and the agent is at the vsock socket."""

    name = "firecracker"

    def __init__(self) -> None:
        super().__init__()
        self.roots: list[tuple[str, Path, int]] = []  # ("prepare" | "clone", dir, size)

    async def prepare_root(self, base: Path, vm_dir: Path, size_bytes: int) -> None:
        (vm_dir / "overlay.ext4").write_text(f"fresh over {base}")
        self.roots.append(("prepare", vm_dir, size_bytes))

    async def clone_root(self, source_dir: Path, vm_dir: Path) -> None:
        (vm_dir / "overlay.ext4").write_text((source_dir / "overlay.ext4").read_text())
        self.roots.append(("clone", vm_dir, 0))

    async def save_template(self, vm_dir: Path, state: Path, memory: Path) -> None:
        (vm_dir / "overlay.ext4").write_text("the template's root")
        os.mknod(vm_dir / "vsock.sock", stat.S_IFSOCK | 0o600)  # what Firecracker leaves
        await super().save_template(vm_dir, state, memory)

    def agent_socket(self, vm_dir: Path) -> Path:
        return vm_dir / "vsock.sock"


class FakeKeyMaker:
    """Writes a key pair of text, like ssh-keygen: `path` (0600) and `path` + `.pub`."""

    def __init__(self) -> None:
        self.made: list[Path] = []

    async def make_ed25519(self, path: Path, comment: str) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        public = f"ssh-ed25519 AAAAfakekey{len(self.made):04d} {comment}"
        path.write_text(f"-----BEGIN FAKE PRIVATE KEY-----\n{comment}\n-----END-----\n")
        path.chmod(0o600)
        path.with_name(path.name + ".pub").write_text(public + "\n")
        self.made.append(path)
        return public


class FakeProbe:
    """Answers at once: ready, or the error in `outcome` (an SSHTimeout, a HostError, ...);
    with `hang`, never (until cancelled); with `ready`, once that event is set."""

    def __init__(self) -> None:
        self.outcome: Exception | None = None
        self.hang = False
        self.ready: asyncio.Event | None = None
        self.calls: list[tuple[str, str]] = []
        self.logins: list[bool] = []
        self.ports: list[int] = []

    async def wait_ready(
        self, ip: str, port: int = 22, *, client_key: Path, host_key: str, timeout: float,
        alive: Callable[[], bool], login: bool = True,
    ) -> None:
        self.calls.append((ip, host_key))
        self.ports.append(port)
        self.logins.append(login)
        if not alive():
            raise HostError("the VM exited while booting")
        if self.hang:
            await asyncio.Event().wait()
        if self.ready is not None:
            await self.ready.wait()
        if self.outcome is not None:
            raise self.outcome


class SlowImageBuilder(FakeImageBuilder):
    """Yields to the event loop while building, so concurrent callers really overlap."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def build(
        self,
        *,
        suite: str,
        dest_dir: Path,
        apt_sources: Sequence[str],
        progress: Callable[[ProgressEvent], None],
    ) -> BuiltImage:
        await self.release.wait()
        return await super().build(
            suite=suite, dest_dir=dest_dir, apt_sources=apt_sources, progress=progress
        )


def fake_vm_follower_adapters() -> VMFollowerAdapters:
    return VMFollowerAdapters(
        dns_listener=FakeDNSListener(),
        dns_forwarder=FakeForwarder(),
        resolved=FakeResolved(available=False),
        resolv_conf=lambda: "nameserver 192.0.2.53\n",
        nat=FakeNat(),
        proc=FakeProcStats(),
        guest_stats=FakeGuestStats(),
    )
