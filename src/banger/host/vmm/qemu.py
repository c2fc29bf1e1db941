"""QEMU `-M microvm` backend: virtio-mmio disks/net/rng, serial console to a file, QMP for
control. The process is started in its own session so it outlives a crashed daemon, which
re-adopts it by PID and command line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from banger.core import agent, slirp
from banger.core.confine import (
    QEMU_SANDBOX,
    QEMU_SANDBOX_RUNAS,
    TCG_CACHE_MIB,
    RunAs,
    cgroup_name,
    vmm_limits,
)
from banger.core.errors import BootFailed, HostError, MissingTool
from banger.core.vmdir import VMDir
from banger.host import consolelog
from banger.host.vmm.base import LaunchSpec
from banger.host.vmm.launch import CgroupPlacement, Confinement, start_vmm
from banger.host.vmm.qmp import qmp_command, qmp_command_with_fd
from banger.host.vmm.shutdown import send_signal, shut_down, vmm_alive

_STARTUP_GRACE = 10.0
# Saving and loading a template's device state moves ~100 KiB (its RAM stays in the memory
# file); generous for a loaded host.
_MIGRATION_TIMEOUT = 60.0
# x-ignore-shared: RAM in a shared memory-backend-file is not copied into the stream.
# A disk stays open read-write while its guest runs: QEMU would otherwise reopen it read-only
# by path when it stops writing (saving a template), which the unprivileged VMM user cannot.
_KEEP_FD = ",auto-read-only=off"
_IGNORE_SHARED = {"capabilities": [{"capability": "x-ignore-shared", "state": True}]}


def qemu_argv(qemu_bin: str, spec: LaunchSpec, run_as: RunAs | None = None) -> list[str]:
    """`run_as`: QEMU opens everything as the daemon's user, then drops to this one."""
    cpu = "host" if spec.accel == "kvm" else "max"
    # The translation cache has a fixed size so the VM's memory ceiling can count it.
    accel = f"tcg,tb-size={TCG_CACHE_MIB}" if spec.accel == "tcg" else spec.accel
    # pit/pic/rtc: the Debian kernel needs a legacy timer to calibrate under TCG.
    machine = "microvm,pit=on,pic=on,rtc=on,x-option-roms=off"
    if spec.memory_file is not None:
        machine += ",memory-backend=mem"
    argv = [
        qemu_bin,
        "-name", f"banger-{spec.name},process=banger-{spec.vm_id}",
        "-M", machine,
        "-accel", accel,
        "-cpu", cpu,
        "-smp", str(spec.vcpu),
        "-m", str(spec.memory_mib),
        "-nodefaults", "-no-user-config", "-nographic",
        "-kernel", str(spec.kernel),
        "-append", spec.cmdline,
        # append: the daemon cuts the log's head off while QEMU writes (host/consolelog.py).
        "-chardev", f"file,id=console,path={spec.console_log},append=on",
        "-serial", "chardev:console",
        "-drive", f"id=root,file={spec.root_disk},format=qcow2,if=none,discard=unmap{_KEEP_FD}",
        "-device", "virtio-blk-device,drive=root",
        "-drive", f"id=work,file={spec.work_disk},format=raw,if=none,discard=unmap{_KEEP_FD}",
        "-device", "virtio-blk-device,drive=work",
        "-netdev", f"tap,id=net0,ifname={spec.tap},script=no,downscript=no"
        if spec.user_net is None else slirp.netdev(spec.user_net, "net0"),
        "-device", f"virtio-net-device,netdev=net0,mac={spec.mac}",
        "-object", "rng-random,id=rng0,filename=/dev/urandom",
        "-device", "virtio-rng-device,rng=rng0",
        "-qmp", f"unix:{spec.control_socket},server=on,wait=off",
        "-pidfile", str(spec.files.pid_file),
        "-sandbox", QEMU_SANDBOX if run_as is None else QEMU_SANDBOX_RUNAS,
    ]
    if run_as is not None:
        argv += ["-runas", f"{run_as.uid}:{run_as.gid}"]
    if spec.memory_file is not None:
        share = "on" if spec.memory_shared else "off"
        argv += [
            "-object", f"memory-backend-file,id=mem,size={spec.memory_mib}M,"
            f"mem-path={spec.memory_file},share={share}",
        ]
    if spec.agent:
        # After every other device: a template and the VMs restored from it must lay out
        # their virtio-mmio slots identically.
        argv += [
            "-device", "virtio-serial-device",
            "-chardev", f"socket,id=agent,path={spec.agent_socket},server=on,wait=off",
            "-device", f"virtserialport,chardev=agent,name={agent.PORT_NAME}",
        ]
    if spec.incoming:
        argv += ["-S", "-incoming", "defer"]
    if spec.initrd:
        argv[argv.index("-append"):argv.index("-append")] = ["-initrd", str(spec.initrd)]
    return argv


class QemuHypervisor:
    name = "qemu"

    def __init__(
        self, qemu_bin: str = "qemu-system-x86_64", confinement: Confinement | None = None
    ) -> None:
        self._bin = qemu_bin
        self._confinement = confinement or Confinement()
        # Children we started; polled so they never linger as zombies.
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    async def start(self, spec: LaunchSpec) -> int:
        argv = qemu_argv(self._bin, spec, await self._confinement.uids.run_as(spec.vm_dir))
        cgroups = self._confinement.cgroups
        placement = None if cgroups is None else CgroupPlacement(
            cgroups, cgroup_name(spec.vm_id),
            vmm_limits(memory_mib=spec.memory_mib, vcpu=spec.vcpu, tcg=spec.accel == "tcg"),
        )
        consolelog.restart(spec.console_log)
        with contextlib.suppress(FileNotFoundError):
            spec.control_socket.unlink()

        async def monitor_up() -> bool:
            return spec.control_socket.exists()

        try:
            pid, _ = await start_vmm(
                argv, log_path=spec.vmm_log, children=self._children, what="qemu",
                ready=monitor_up, timeout=_STARTUP_GRACE, cgroup=placement,
            )
        except FileNotFoundError as exc:
            raise MissingTool(
                f"{self._bin} not found", hint="apt-get install qemu-system-x86"
            ) from exc
        return pid

    async def release(self, vm_dir: Path) -> None:
        self._confinement.uids.release(vm_dir)

    def is_running(self, pid: int | None, vm_dir: Path) -> bool:
        return vmm_alive(self._children, pid, str(vm_dir))

    def owns(self, argv: Sequence[str]) -> bool:
        return "-qmp" in argv

    async def stop(self, pid: int, vm_dir: Path, timeout: float) -> bool:
        return await shut_down(
            pid,
            running=lambda: self.is_running(pid, vm_dir),
            ask_guest=lambda: qmp_command(VMDir(vm_dir).control_socket, "system_powerdown"),
            timeout=timeout,
        )

    async def save_template(self, vm_dir: Path, state: Path, memory: Path) -> None:
        # `memory` is the template's memory-backend-file already: only the state moves.
        control = VMDir(vm_dir).control_socket
        await qmp_command(control, "stop")
        await qmp_command(control, "migrate-set-capabilities", _IGNORE_SHARED)
        fd = os.open(state, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            await qmp_command_with_fd(control, fd, "state", "migrate", {"uri": "fd:state"})
        finally:
            os.close(fd)
        deadline = time.monotonic() + _MIGRATION_TIMEOUT
        while time.monotonic() < deadline:
            info = await qmp_command(control, "query-migrate")
            status = info.get("status") if isinstance(info, dict) else None
            if status == "completed":
                return
            if status in ("failed", "cancelled"):
                said = VMDir(vm_dir).vmm_log.read_text(errors="replace").strip().splitlines()
                raise HostError(
                    f"saving the template failed: {info.get('error-desc', status)}",
                    hint=f"qemu said: {said[-1]}" if said else "",
                )
            await asyncio.sleep(0.05)
        raise HostError("saving the template timed out")

    async def start_from_template(self, spec: LaunchSpec, state: Path) -> int:
        pid = await self.start(spec)
        control = spec.control_socket
        try:
            await qmp_command(control, "migrate-set-capabilities", _IGNORE_SHARED)
            fd = os.open(state, os.O_RDONLY)
            try:
                await qmp_command_with_fd(
                    control, fd, "state", "migrate-incoming", {"uri": "fd:state"}
                )
            finally:
                os.close(fd)
            deadline = time.monotonic() + _MIGRATION_TIMEOUT
            while True:
                if not self.is_running(pid, spec.vm_dir):
                    words = spec.vmm_log.read_text(errors="replace").strip().splitlines()
                    raise BootFailed(
                        f"qemu could not load the template: {words[-1] if words else 'exited'}",
                        hint=f"full output in {spec.vmm_log}",
                    )
                status = await qmp_command(control, "query-status")
                if isinstance(status, dict) and status.get("status") not in (
                    "inmigrate", "prelaunch"
                ):
                    break
                if time.monotonic() > deadline:
                    raise BootFailed("loading the template timed out")
                await asyncio.sleep(0.02)
            await qmp_command(control, "cont")
            # The guest kept the template's view of the work disk (a 1 TiB placeholder): a
            # resize to the real size raises virtio-blk's config-change interrupt, and the
            # guest kernel reads the disk's capacity again.
            await qmp_command(
                control, "block_resize",
                {"device": "work", "size": spec.work_disk.stat().st_size},
            )
        except BaseException:
            send_signal(pid, 9)
            # The caller boots the VM cold next, on the same TAP: it must be free by then.
            for _ in range(100):
                if not self.is_running(pid, spec.vm_dir):
                    break
                await asyncio.sleep(0.05)
            raise
        return pid

    def agent_socket(self, vm_dir: Path) -> Path:
        return VMDir(vm_dir).agent_socket

    async def pause(self, vm_dir: Path) -> None:
        await qmp_command(VMDir(vm_dir).control_socket, "stop")

    async def resume(self, vm_dir: Path) -> None:
        await qmp_command(VMDir(vm_dir).control_socket, "cont")

    async def reset(self, vm_dir: Path) -> None:
        await qmp_command(VMDir(vm_dir).control_socket, "system_reset")

    def kill(self, pid: int, signal_number: int) -> None:
        send_signal(pid, signal_number)
