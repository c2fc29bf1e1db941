"""The one seam every VMM backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from banger.core.firecracker import MetricsSample
from banger.core.slirp import UserNet
from banger.core.vmdir import VMDir


@dataclass(frozen=True)
class LaunchSpec:
    vm_id: str
    name: str
    vcpu: int
    memory_mib: int
    kernel: Path
    initrd: Path | None
    cmdline: str
    root_disk: Path
    work_disk: Path
    tap: str
    mac: str
    vm_dir: Path
    accel: str  # "kvm" | "tcg"
    # Warm templates: guest RAM in this file, written through (`memory_shared`, the
    # template; QEMU only, Firecracker writes it at save) or mapped copy-on-write (a VM
    # restored from it); a channel to banger-agent; and `incoming` (QEMU): start paused,
    # waiting for a saved device state.
    memory_file: Path | None = None
    memory_shared: bool = False
    agent: bool = False
    incoming: bool = False
    # User-mode networking made by the VMM itself instead of the TAP (QEMU only).
    user_net: UserNet | None = None

    @property
    def files(self) -> VMDir:
        return VMDir(self.vm_dir)

    @property
    def console_log(self) -> Path:
        return self.files.console_log

    @property
    def vmm_log(self) -> Path:
        return self.files.vmm_log

    @property
    def control_socket(self) -> Path:
        return self.files.control_socket

    @property
    def agent_socket(self) -> Path:
        return self.files.agent_socket


class Hypervisor(Protocol):
    name: str

    async def start(self, spec: LaunchSpec) -> int:
        """Launch the VM detached from the daemon (it must survive a daemon crash); return
        the VMM's PID once it is up or raise BootFailed with its own words."""
        ...

    async def stop(self, pid: int, vm_dir: Path, timeout: float) -> bool:
        """Ask the guest to shut down; kill after `timeout`. True if it stopped gracefully."""
        ...

    def kill(self, pid: int, signal_number: int) -> None: ...

    def is_running(self, pid: int | None, vm_dir: Path) -> bool:
        """True if `pid` is alive and is this backend's process for the VM in `vm_dir`."""
        ...

    def owns(self, argv: Sequence[str]) -> bool:
        """True if a process with this argv is one of this backend's VMMs (for the orphans
        a crashed daemon left behind)."""
        ...


@runtime_checkable
class Releases(Protocol):
    """A backend that holds something per VM beyond the VM dir (the uid its VMM runs as, a
    jail): given back once the VM is deleted. Idempotent."""

    async def release(self, vm_dir: Path) -> None: ...


@runtime_checkable
class Pauses(Protocol):
    """A backend that can stop and continue a running guest's vCPUs."""

    async def pause(self, vm_dir: Path) -> None: ...
    async def resume(self, vm_dir: Path) -> None: ...


@runtime_checkable
class Resets(Protocol):
    """A backend that can hard-reset a running guest: it boots again in the same VMM
    process, with the same disks, TAP and console."""

    async def reset(self, vm_dir: Path) -> None: ...


@runtime_checkable
class Snapshots(Protocol):
    """A backend that can write a running guest's full state into its VM dir (leaving it
    running) and start the VM from that state instead of booting it."""

    async def snapshot(self, vm_dir: Path) -> object: ...
    async def start_from_snapshot(self, spec: LaunchSpec) -> int: ...


@runtime_checkable
class Templates(Protocol):
    """A backend that can save a template VM (started with `memory_file` shared and `agent`)
    and start VMs from it: each maps the template's memory copy-on-write and loads its
    device state."""

    async def save_template(self, vm_dir: Path, state: Path, memory: Path) -> None:
        """Pause the VM in `vm_dir` and write its device state to `state` and its RAM to
        `memory` (QEMU's is there already). The VMM stays up, paused; the caller kills it."""
        ...

    async def start_from_template(self, spec: LaunchSpec, state: Path) -> int:
        """Launch `spec` (with `incoming` and the template's `memory_file`), load `state`
        onto the VM's own disks, TAP and agent channel, and let the guest run."""
        ...

    def agent_socket(self, vm_dir: Path) -> Path:
        """Where the host reaches banger-agent in the VM of `vm_dir`."""
        ...


@runtime_checkable
class TemplatesSometimes(Protocol):
    """A `Templates` backend that cannot make templates in some set-ups (jailed VMMs)."""

    def makes_templates(self) -> bool:
        ...


@runtime_checkable
class ReportsMetrics(Protocol):
    """A backend with its own counters (Firecracker's metrics file)."""

    async def metrics(self, vm_dir: Path) -> list[MetricsSample]:
        """The samples flushed since the VM started (as far as the backend keeps them),
        oldest first, after asking for a fresh one."""
        ...


@runtime_checkable
class PreparesRoot(Protocol):
    """A backend that makes each VM's writable root itself (instead of the qcow2 overlay)."""

    async def prepare_root(self, base: Path, vm_dir: Path, size_bytes: int) -> None: ...

    async def clone_root(self, source_dir: Path, vm_dir: Path) -> None:
        """Give `vm_dir` a copy of the root `source_dir` has (a template's, as it was saved)."""
        ...
