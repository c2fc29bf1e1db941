"""Firecracker backend: one `firecracker --api-sock <vm_dir>/firecracker.sock` process per VM,
configured over HTTP/1.1 on that Unix socket (requests from banger.core.firecracker), then
InstanceStart. The process runs in its own session so it outlives a crashed daemon, which
re-adopts it by PID and command line.

Per VM dir: firecracker.sock (API), firecracker.log (Firecracker's log), firecracker.metrics
(JSON lines), console.log (the guest serial console), vmm.log (the process's own output),
vsock.sock, the root disks (banger.host.rootdisk) and snapshot/ (vmstate + memory).

Drives are given to Firecracker by their names in the VM dir, which is the process's working
directory (the base image, outside it, by its full path). A snapshot records the paths as
given, so it names "the disks of whatever VM dir it is loaded in": that is what lets every VM
restored from a warm template open its own copies of the template's disks.

Under a root daemon with Firecracker's jailer at hand (host/vmm/jailer.py), each VMM runs
jailed instead: as the VM's own uid, chrooted in a jail that holds links to what it opens,
in the VM's cgroup. Every file is then given by its name in the jail, and the daemon finds
the API and vsock sockets there. Snapshots and warm templates name files outside any one
jail, so a jailed VM has neither (it boots cold).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from banger.core import firecracker as api
from banger.core.confine import RunAs, cgroup_name, vmm_limits
from banger.core.cpio import append_archive, newc_archive
from banger.core.errors import BootFailed, HostError, InvalidState, MissingTool
from banger.core.guest import OVERLAY_VERSION, overlay_boot_args, overlay_initramfs_files
from banger.core.jailer import Jail, jailer_argv
from banger.host import consolelog, hostinfo
from banger.host.processes import CommandRunner, SubprocessRunner
from banger.host.rootdisk import RootDisks, RootLayout, read_layout
from banger.host.vmlinux import ensure_vmlinux
from banger.host.vmm.base import LaunchSpec
from banger.host.vmm.jailer import find_jailer, read_jail, remove_jail, stage_jail
from banger.host.vmm.launch import Confinement, start_vmm
from banger.host.vmm.shutdown import send_signal, shut_down, vmm_alive

API_SOCKET = "firecracker.sock"
LOG_FILE = "firecracker.log"
METRICS_FILE = "firecracker.metrics"
VSOCK_SOCKET = "vsock.sock"
SNAPSHOT_DIR = "snapshot"
_SOCKET_WAIT = 10.0
_API_TIMEOUT = 30.0  # InstanceStart loads the kernel and initrd before it answers
_SNAPSHOT_TIMEOUT = 300.0  # writing (or mapping) the guest's memory on a loaded host
# reboot=k: a guest reboot (what SendCtrlAltDel leads to) resets through the i8042, which
# makes Firecracker exit. pci=off: Firecracker has no PCI bus unless asked for one.
_BOOT_ARGS = "reboot=k pci=off"


@dataclass(frozen=True)
class Snapshot:
    vmstate: Path
    memory: Path


def snapshot_paths(vm_dir: Path) -> Snapshot:
    return Snapshot(vm_dir / SNAPSHOT_DIR / "vmstate", vm_dir / SNAPSHOT_DIR / "memory")


async def api_call(socket_path: Path, request: api.Request, timeout: float = _API_TIMEOUT) -> Any:
    """Send one request on the API socket; the response's JSON body (None for 204), or
    FirecrackerError with Firecracker's fault_message."""

    async def exchange() -> api.Response:
        reader, writer = await asyncio.open_unix_connection(str(socket_path))
        try:
            writer.write(request.encode())
            await writer.drain()
            data = b""
            while True:
                try:
                    return api.parse_response(data)
                except api.IncompleteResponse:
                    chunk = await reader.read(65536)
                    if not chunk:
                        raise HostError(
                            f"firecracker closed the API connection during {request.describe()}"
                        ) from None
                    data += chunk
        finally:
            writer.close()

    try:
        response = await asyncio.wait_for(exchange(), timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        raise HostError(
            f"firecracker API {request.describe()} failed: {exc or type(exc).__name__}"
        ) from exc
    return api.check_response(request, response)


async def _accepts(socket_path: Path) -> bool:
    # The socket file appears at bind(), a moment before the server listens.
    try:
        _, writer = await asyncio.open_unix_connection(str(socket_path))
    except OSError:
        return False
    writer.close()
    return True


def firecracker_version(binary: str) -> str | None:
    """`firecracker --version`'s first line, or None if it cannot be run."""
    try:
        proc = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0] if proc.returncode == 0 and lines else None


def find_firecracker(configured: str | None) -> str | None:
    return hostinfo.which(configured or "firecracker")


def overlay_initrd(initrd: Path, cache_dir: Path) -> Path:
    """The image's initrd with banger's root overlay hook appended, cached by content."""
    try:
        source = initrd.read_bytes()
    except OSError as exc:
        raise HostError(f"cannot read initrd {initrd}: {exc.strerror}") from exc
    digest = hashlib.sha256(source + OVERLAY_VERSION.encode()).hexdigest()[:16]
    target = cache_dir / f"initrd-overlay-{digest}"
    if not target.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}")
        tmp.write_bytes(append_archive(source, newc_archive(overlay_initramfs_files())))
        tmp.replace(target)
    return target


class FirecrackerHypervisor:
    name = "firecracker"

    def __init__(
        self,
        firecracker_bin: str | None,
        cache_dir: Path,
        *,
        runner: CommandRunner | None = None,
        root_mode: str = "auto",
        confinement: Confinement | None = None,
        jailer_bin: str | None = None,
        chroot_base: Path | None = None,
    ) -> None:
        self._configured = firecracker_bin
        self._cache = cache_dir
        self._confinement = confinement or Confinement()
        self._jailer_bin = jailer_bin
        self._chroot_base = chroot_base or cache_dir.parent / "jailer"
        self._disks = RootDisks(runner or SubprocessRunner(), root_mode)
        # Children we started; polled so they never linger as zombies.
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def binary(self) -> str:
        found = find_firecracker(self._configured)
        if found is None:
            raise MissingTool(
                f"{self._configured or 'firecracker'} not found",
                hint="install Firecracker on PATH or set firecracker_bin in config",
            )
        return found

    def jailer(self) -> str | None:
        """The jailer VMMs start through (only a root daemon's VMMs get one)."""
        return find_jailer(self._jailer_bin, find_firecracker(self._configured))

    # Disks

    async def prepare_root(self, base: Path, vm_dir: Path, size_bytes: int) -> None:
        await self._disks.create(base, vm_dir, size_bytes)

    async def clone_root(self, source_dir: Path, vm_dir: Path) -> None:
        await self._disks.clone(source_dir, vm_dir)

    # Lifecycle

    async def start(self, spec: LaunchSpec) -> int:
        layout = read_layout(spec.vm_dir)
        kernel = await asyncio.to_thread(ensure_vmlinux, spec.kernel, self._cache)
        initrd, boot_args, drives = self._boot_disks(spec, layout)
        if layout.mode == "overlay" and initrd is not None:
            initrd = await asyncio.to_thread(overlay_initrd, initrd, self._cache)
        jailing = await self._jailing(spec)
        where = str(spec.vm_dir)
        own = [spec.vm_dir / d.path for d in drives if not Path(d.path).is_absolute()]
        shared = {"vmlinux": kernel, **({"initrd": initrd} if initrd else {})}
        if jailing is not None:
            # Everything by its name in the jail, which is the jailed process's `/`.
            kernel, initrd, where = Path("vmlinux"), Path("initrd") if initrd else None, ""
            for number, drive in enumerate(drives):
                if Path(drive.path).is_absolute():
                    shared[f"shared-{drive.drive_id}"] = Path(drive.path)
                    drives[number] = replace(drive, path=f"shared-{drive.drive_id}")
        plan = api.boot_plan(
            kernel=str(kernel),
            initrd=str(initrd) if initrd else None,
            boot_args=boot_args,
            vcpu=spec.vcpu,
            memory_mib=spec.memory_mib,
            drives=drives,
            tap=spec.tap,
            mac=spec.mac,
            log_path=os.path.join(where, LOG_FILE),
            metrics_path=os.path.join(where, METRICS_FILE),
            console_path=os.path.join(where, spec.console_log.name),
            vsock_path=os.path.join(where, VSOCK_SOCKET),
        )
        pid = await self._spawn(spec, jailing, own=own, shared=shared)
        try:
            for request in [*plan.requests(), api.instance_start()]:
                await api_call(self._api(spec.vm_dir), request)
        except HostError as exc:
            self._abort(pid)
            raise BootFailed(exc.message, hint=f"see {spec.vm_dir / LOG_FILE} and "
                             f"{spec.vmm_log}") from None
        return pid

    async def start_from_template(self, spec: LaunchSpec, state: Path) -> int:
        """Restore a VM from a warm template (`save_template`): load the template's state
        and memory (mapped copy-on-write) onto the VM's own disks (see the module doc), TAP
        and vsock socket, paused; point the work drive at the VM's disk again, which tells
        the guest its real size (it saw the template's 1 TiB placeholder); then resume."""
        assert spec.memory_file is not None, "a restore needs the template's memory file"
        if await self._jailing(spec) is not None:
            raise BootFailed("a jailed Firecracker VM boots cold (no warm templates)")
        pid = await self._spawn(spec, None)
        sock = spec.vm_dir / API_SOCKET
        try:
            for request in _before_load(spec):
                await api_call(sock, request)
            await api_call(sock, api.snapshot_load(
                str(state), str(spec.memory_file), resume_vm=False,
                network_overrides={api.IFACE_ID: spec.tap},
                vsock_override=str(self.agent_socket(spec.vm_dir)),
            ), timeout=_SNAPSHOT_TIMEOUT)
            await api_call(sock, api.patch_drive(
                "work", _drive_path(str(spec.work_disk), spec.vm_dir)
            ))
            await api_call(sock, api.resume())
        except HostError as exc:
            self._abort(pid)
            raise BootFailed(exc.message, hint=f"see {spec.vm_dir / LOG_FILE}") from None
        return pid

    async def save_template(self, vm_dir: Path, state: Path, memory: Path) -> None:
        _refuse_jailed(vm_dir, "warm templates")
        sock = vm_dir / API_SOCKET
        await api_call(sock, api.pause())
        await api_call(sock, api.snapshot_create(str(state), str(memory)),
                       timeout=_SNAPSHOT_TIMEOUT)

    def agent_socket(self, vm_dir: Path) -> Path:
        # The host end of the VM's vsock device: banger-agent listens on agent.VSOCK_PORT.
        return _root(vm_dir) / VSOCK_SOCKET

    async def start_from_snapshot(self, spec: LaunchSpec) -> int:
        """Restore the VM from its snapshot (see `snapshot`) and let it run."""
        snap = snapshot_paths(spec.vm_dir)
        if not (snap.vmstate.exists() and snap.memory.exists()):
            raise InvalidState(f"VM {spec.name!r} has no snapshot",
                               hint=f"banger vm snapshot {spec.name} while it runs")
        if await self._jailing(spec) is not None:
            raise InvalidState("a jailed Firecracker VM has no snapshots")
        pid = await self._spawn(spec, None)
        sock = spec.vm_dir / API_SOCKET
        try:
            for request in (
                *_before_load(spec),
                api.snapshot_load(str(snap.vmstate), str(snap.memory), resume_vm=True,
                                  network_overrides={api.IFACE_ID: spec.tap}),
            ):
                await api_call(sock, request, timeout=_SNAPSHOT_TIMEOUT)
        except HostError as exc:
            self._abort(pid)
            raise BootFailed(exc.message, hint=f"see {spec.vm_dir / LOG_FILE}") from None
        return pid

    def _boot_disks(
        self, spec: LaunchSpec, layout: RootLayout
    ) -> tuple[Path | None, str, list[api.DriveSpec]]:
        boot_args = f"{spec.cmdline} {_BOOT_ARGS}"

        def drive(drive_id: str, path: str, read_only: bool, root: bool = False) -> api.DriveSpec:
            return api.DriveSpec(drive_id, _drive_path(path, spec.vm_dir), read_only, root)

        # Firecracker attaches the root drive first and the others in order: the work disk
        # is vdb on every backend (banger-agent mounts it there in restored VMs).
        drives = [
            drive("rootfs", layout.root, read_only=layout.root_read_only, root=True),
            drive("work", str(spec.work_disk), read_only=False),
        ]
        if layout.mode == "overlay":
            if spec.initrd is None:
                raise BootFailed(
                    "this image has no initrd, which the root overlay needs",
                    hint="register the image with its initrd (or boot it with a catalog "
                    "kernel: --kernel generic-6.1), or keep the state dir on a filesystem "
                    "with reflinks (btrfs, xfs)",
                )
            assert layout.overlay is not None
            drives.append(drive("overlay", layout.overlay, read_only=False))
            boot_args = f"{boot_args} {overlay_boot_args('/dev/vdc')}"
        return spec.initrd, boot_args, drives

    def makes_templates(self) -> bool:
        """False when VMMs run jailed: a template's files would live outside every jail."""
        return self.jailer() is None or not self._confinement.uids.confines()

    async def _jailing(self, spec: LaunchSpec) -> tuple[str, Jail, RunAs] | None:
        """The jailer, the VM's jail and its uid, if the VMM is to run jailed."""
        jailer = self.jailer()
        if jailer is None:
            return None
        run_as = await self._confinement.uids.run_as(spec.vm_dir)
        if run_as is None:
            return None
        return jailer, Jail(cgroup_name(spec.vm_id), self._chroot_base), run_as

    async def _spawn(
        self, spec: LaunchSpec, jailing: tuple[str, Jail, RunAs] | None, *,
        own: Sequence[Path] = (), shared: dict[str, Path] | None = None,
    ) -> int:
        binary = self.binary()
        remove_jail(spec.vm_dir)
        sock = spec.vm_dir / API_SOCKET
        for stale in (sock, spec.vm_dir / VSOCK_SOCKET):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        # Firecracker opens, but does not create, its log, metrics and serial files.
        consolelog.restart(spec.console_log)
        for path in (spec.vm_dir / LOG_FILE, spec.vm_dir / METRICS_FILE):
            path.write_bytes(b"")
        argv = [binary, "--api-sock", str(sock), "--id", f"banger-{spec.vm_id}"]
        cwd: Path | None = spec.vm_dir
        if jailing is not None:
            jailer, jail, run_as = jailing
            files = [spec.vm_dir / LOG_FILE, spec.vm_dir / METRICS_FILE, spec.console_log, *own]
            await asyncio.to_thread(stage_jail, jail, run_as, spec.vm_dir, own=files,
                                    shared=shared or {}, tap=spec.tap)
            argv, cwd = self._jailed_argv(spec, jailer, jail, run_as), None
            sock = jail.outside(API_SOCKET)

        async def api_up() -> bool:
            return sock.exists() and await _accepts(sock)

        pid, up = await start_vmm(
            argv, log_path=spec.vmm_log, children=self._children, what="firecracker",
            ready=api_up, timeout=_SOCKET_WAIT, cwd=cwd,
        )
        if up:
            return pid
        self._abort(pid)
        raise BootFailed(f"firecracker did not open {sock} within {_SOCKET_WAIT:.0f}s",
                         hint=f"see {spec.vmm_log}")

    def _jailed_argv(self, spec: LaunchSpec, jailer: str, jail: Jail, run_as: RunAs) -> list[str]:
        cgroups = self._confinement.cgroups
        return jailer_argv(
            jailer, self.binary(), jail, run_as,
            cgroup_version=cgroups.version if cgroups else None,
            parent_cgroup=cgroups.prepare_parent() if cgroups else "",
            limits=vmm_limits(memory_mib=spec.memory_mib, vcpu=spec.vcpu, tcg=False),
            firecracker_args=["--api-sock", f"/{API_SOCKET}"],
        )

    def _api(self, vm_dir: Path) -> Path:
        return _root(vm_dir) / API_SOCKET

    def _abort(self, pid: int) -> None:
        self.kill(pid, signal.SIGKILL)
        child = self._children.pop(pid, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(5)

    def is_running(self, pid: int | None, vm_dir: Path) -> bool:
        jail = read_jail(vm_dir)
        marker = str(vm_dir / API_SOCKET) if jail is None else jail.id
        return vmm_alive(self._children, pid, marker)

    def owns(self, argv: Sequence[str]) -> bool:
        return "--api-sock" in argv

    async def stop(self, pid: int, vm_dir: Path, timeout: float) -> bool:
        graceful = await shut_down(
            pid,
            running=lambda: self.is_running(pid, vm_dir),
            ask_guest=lambda: api_call(self._api(vm_dir), api.send_ctrl_alt_del(), timeout=5.0),
            timeout=timeout,
        )
        await asyncio.to_thread(remove_jail, vm_dir)
        return graceful

    async def release(self, vm_dir: Path) -> None:
        await asyncio.to_thread(remove_jail, vm_dir)
        self._confinement.uids.release(vm_dir)

    def kill(self, pid: int, signal_number: int) -> None:
        send_signal(pid, signal_number)

    # Running VMs

    async def pause(self, vm_dir: Path) -> None:
        await api_call(self._api(vm_dir), api.pause())

    async def resume(self, vm_dir: Path) -> None:
        await api_call(self._api(vm_dir), api.resume())

    async def snapshot(self, vm_dir: Path) -> Snapshot:
        """A full snapshot into the VM dir. The VM is paused while it is written and resumed
        after, whatever happens. It is written next to the previous one and replaces it
        after: a VM restored from that one maps its memory file, which must not change
        under it (the old file lives on, unlinked, while the VM maps it)."""
        _refuse_jailed(vm_dir, "snapshots")
        snap = snapshot_paths(vm_dir)
        snap.vmstate.parent.mkdir(exist_ok=True)
        fresh = Snapshot(snap.vmstate.with_name("vmstate.new"), snap.memory.with_name("memory.new"))
        sock = vm_dir / API_SOCKET
        await api_call(sock, api.pause())
        try:
            await api_call(sock, api.snapshot_create(str(fresh.vmstate), str(fresh.memory)),
                           timeout=_SNAPSHOT_TIMEOUT)
        finally:
            await api_call(sock, api.resume())
        fresh.memory.replace(snap.memory)
        fresh.vmstate.replace(snap.vmstate)
        return snap

    async def flush_metrics(self, vm_dir: Path) -> None:
        await api_call(self._api(vm_dir), api.flush_metrics())

    async def metrics(self, vm_dir: Path) -> list[api.MetricsSample]:
        # A paused or stopping VMM may not answer; its earlier samples still count.
        with contextlib.suppress(HostError):
            await api_call(self._api(vm_dir), api.flush_metrics(), timeout=5.0)
        return await asyncio.to_thread(read_metrics, vm_dir)


def _root(vm_dir: Path) -> Path:
    """Where the VM's Firecracker makes its sockets: its jail, else its VM dir."""
    jail = read_jail(vm_dir)
    return vm_dir if jail is None else jail.root


def _refuse_jailed(vm_dir: Path, what: str) -> None:
    if read_jail(vm_dir) is not None:
        raise InvalidState(f"a jailed Firecracker VM has no {what}",
                           hint="its files are linked into its jail, which those would leave")


def _drive_path(path: str, vm_dir: Path) -> str:
    """A drive's path as Firecracker gets it: its name if it is in the VM dir (see the
    module doc), else the full path."""
    return Path(path).name if Path(path).parent == vm_dir else path


def _before_load(spec: LaunchSpec) -> tuple[api.Request, ...]:
    """What a snapshot load needs configured first: Firecracker's log, metrics and console."""
    return (
        api.put_logger(str(spec.vm_dir / LOG_FILE)),
        api.put_metrics(str(spec.vm_dir / METRICS_FILE)),
        api.put_serial(str(spec.console_log)),
    )


def read_metrics(vm_dir: Path, limit: int = 60) -> list[api.MetricsSample]:
    """The last `limit` samples Firecracker flushed to the VM's metrics file."""
    try:
        with open(vm_dir / METRICS_FILE, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - (1 << 20)))
            text = f.read().decode(errors="replace")
    except FileNotFoundError:
        return []
    return api.parse_metrics(text)[-limit:]
