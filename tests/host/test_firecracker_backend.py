"""FirecrackerHypervisor against the stand-in (its pretend guest): the process, the API
conversation, stop, pause/resume, snapshot and restore, faults, and the metrics reader."""

from __future__ import annotations

import json
import signal
from dataclasses import replace
from pathlib import Path

import pytest

from banger.core.errors import BootFailed, InvalidState, MissingTool
from banger.core.guest import OVERLAY_RDINIT_PATH
from banger.host.processes import FakeRunner, pid_cmdline
from banger.host.rootdisk import read_layout
from banger.host.vmm.base import LaunchSpec, PreparesRoot
from banger.host.vmm.firecracker import (
    API_SOCKET,
    FirecrackerHypervisor,
    find_firecracker,
    firecracker_version,
    read_metrics,
)
from tests.host.firecracker_standin import write_wrapper

KERNEL = Path("/var/tmp/bt-cache/dev/vmlinuz")


def _layout(vm_dir: Path, base: Path, mode: str = "overlay") -> None:
    overlay = vm_dir / "overlay.ext4"
    overlay.write_bytes(b"")
    root = base if mode == "overlay" else vm_dir / "root.ext4"
    root.touch()
    (vm_dir / "root.json").write_text(json.dumps({
        "mode": mode, "base": str(base), "root": str(root),
        "overlay": str(overlay) if mode == "overlay" else None,
    }))


def make_spec(tmp_path: Path, kernel: Path, mode: str = "overlay") -> LaunchSpec:
    vm_dir = tmp_path / "vm"
    vm_dir.mkdir()
    base = tmp_path / "rootfs.ext4"
    base.write_bytes(b"")
    _layout(vm_dir, base, mode)
    (vm_dir / "work.ext4").write_bytes(b"")
    initrd = tmp_path / "initrd.img"
    initrd.write_bytes(b"\x1f\x8b" + b"\0" * 30)
    return LaunchSpec(
        vm_id="0123456789ab", name="calm-otter", vcpu=2, memory_mib=512, kernel=kernel,
        initrd=initrd, cmdline="console=ttyS0 root=/dev/vda rw", root_disk=vm_dir / "root.qcow2",
        work_disk=vm_dir / "work.ext4", tap="bgr0123456789ab", mac="02:aa:bb:cc:dd:ee",
        vm_dir=vm_dir, accel="kvm",
    )


@pytest.fixture
def kernel(tmp_path: Path) -> Path:
    # An ELF is passed through as it is: no extraction needed for these tests.
    path = tmp_path / "vmlinux"
    path.write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 9 + b"\x02\x00\x3e\x00" + b"\0" * 44)
    return path


@pytest.fixture
def hypervisor(tmp_path: Path) -> FirecrackerHypervisor:
    binary = write_wrapper(tmp_path / "bin", guest="none")
    return FirecrackerHypervisor(str(binary), tmp_path / "cache", runner=FakeRunner())


async def test_start_configures_boots_and_stops_gracefully(
    hypervisor: FirecrackerHypervisor, tmp_path: Path, kernel: Path
) -> None:
    spec = make_spec(tmp_path, kernel)
    pid = await hypervisor.start(spec)
    try:
        assert hypervisor.is_running(pid, spec.vm_dir)
        argv = pid_cmdline(pid)
        assert argv[-4:] == ["--api-sock", str(spec.vm_dir / API_SOCKET), "--id",
                             "banger-0123456789ab"]
        log = (spec.vm_dir / "firecracker.log").read_text()
        for path in ("/logger", "/metrics", "/serial", "/boot-source", "/machine-config",
                     "/drives/rootfs", "/drives/overlay", "/drives/work",
                     "/network-interfaces/eth0", "/entropy", "/vsock", "/actions"):
            assert f"PUT {path} was executed successfully" in log, path
        assert not hypervisor.is_running(pid, tmp_path / "another-vm")
        assert await hypervisor.stop(pid, spec.vm_dir, timeout=10) is True
        assert not hypervisor.is_running(pid, spec.vm_dir)
    finally:
        hypervisor.kill(pid, signal.SIGKILL)


async def test_overlay_mode_boots_the_base_read_only_with_the_overlay_initrd(
    tmp_path: Path, kernel: Path
) -> None:
    spec = make_spec(tmp_path, kernel)
    hypervisor = FirecrackerHypervisor(None, tmp_path / "cache")
    initrd, boot_args, drives = hypervisor._boot_disks(spec, read_layout(spec.vm_dir))
    # The work disk is vdb on every backend; the base by its path, the VM's own disks by
    # their names in the VM dir (the process's working directory).
    assert [(d.drive_id, d.path, d.read_only, d.root) for d in drives] == [
        ("rootfs", str(tmp_path / "rootfs.ext4"), True, True),
        ("work", "work.ext4", False, False),
        ("overlay", "overlay.ext4", False, False),
    ]
    assert boot_args.endswith(
        f"reboot=k pci=off ro rdinit={OVERLAY_RDINIT_PATH} banger.overlay=/dev/vdc"
    )
    assert initrd == spec.initrd


async def test_reflink_mode_boots_the_copy_read_write(tmp_path: Path, kernel: Path) -> None:
    spec = make_spec(tmp_path, kernel, mode="reflink")
    hypervisor = FirecrackerHypervisor(None, tmp_path / "cache")
    _, boot_args, drives = hypervisor._boot_disks(spec, read_layout(spec.vm_dir))
    assert [(d.drive_id, d.path, d.read_only) for d in drives] == [
        ("rootfs", "root.ext4", False), ("work", "work.ext4", False),
    ]
    assert "rdinit" not in boot_args


async def test_a_refused_request_fails_the_boot_with_firecracker_words(
    hypervisor: FirecrackerHypervisor, tmp_path: Path, kernel: Path
) -> None:
    spec = make_spec(tmp_path, kernel)
    spec.work_disk.unlink()
    with pytest.raises(BootFailed, match="refused PUT /drives/work: Drive config error"):
        await hypervisor.start(spec)
    assert hypervisor._children == {}  # the refused process was killed and reaped


async def test_pause_resume_snapshot_and_restore(
    hypervisor: FirecrackerHypervisor, tmp_path: Path, kernel: Path
) -> None:
    spec = make_spec(tmp_path, kernel)
    with pytest.raises(InvalidState, match="no snapshot"):
        await hypervisor.start_from_snapshot(spec)
    pid = await hypervisor.start(spec)
    await hypervisor.pause(spec.vm_dir)
    await hypervisor.resume(spec.vm_dir)
    snap = await hypervisor.snapshot(spec.vm_dir)
    assert snap.vmstate.exists() and snap.memory.exists()
    await hypervisor.flush_metrics(spec.vm_dir)
    assert len(read_metrics(spec.vm_dir)) == 1
    assert await hypervisor.stop(pid, spec.vm_dir, timeout=10)
    restored = await hypervisor.start_from_snapshot(spec)
    try:
        assert hypervisor.is_running(restored, spec.vm_dir)
        log = (spec.vm_dir / "firecracker.log").read_text()
        assert "PUT /snapshot/load was executed successfully" in log
        assert "/boot-source" not in log  # a restore configures nothing but logs and metrics
    finally:
        await hypervisor.stop(restored, spec.vm_dir, timeout=10)


async def test_a_missing_binary_is_a_missing_tool(tmp_path: Path, kernel: Path) -> None:
    hypervisor = FirecrackerHypervisor(str(tmp_path / "no-such-firecracker"), tmp_path / "c")
    with pytest.raises(MissingTool, match="no-such-firecracker not found"):
        await hypervisor.start(make_spec(tmp_path, kernel))


def test_it_makes_its_own_roots_and_reports_its_version(tmp_path: Path) -> None:
    binary = write_wrapper(tmp_path / "bin", guest="none")
    assert isinstance(FirecrackerHypervisor(None, tmp_path), PreparesRoot)
    assert firecracker_version(str(binary)) == "Firecracker v1.16.1"
    assert firecracker_version(str(tmp_path / "missing")) is None
    assert find_firecracker(str(binary)) == str(binary)


def test_read_metrics_without_a_file_is_empty(tmp_path: Path) -> None:
    assert read_metrics(tmp_path) == []


async def test_a_template_saves_and_restores_onto_another_vms_own_disks(
    hypervisor: FirecrackerHypervisor, tmp_path: Path, kernel: Path
) -> None:
    template = make_spec(tmp_path, kernel)
    pid = await hypervisor.start(replace(template, agent=True))
    state, memory = tmp_path / "state", tmp_path / "memory"
    await hypervisor.save_template(template.vm_dir, state, memory)
    assert state.exists() and memory.exists()
    assert hypervisor.agent_socket(template.vm_dir) == template.vm_dir / "vsock.sock"
    hypervisor.kill(pid, signal.SIGKILL)

    # A VM of its own, with its own disks under the names the snapshot recorded.
    vm_dir = tmp_path / "vm2"
    vm_dir.mkdir()
    _layout(vm_dir, tmp_path / "rootfs.ext4")
    (vm_dir / "work.ext4").write_bytes(b"")
    spec = replace(template, vm_id="ba9876543210", vm_dir=vm_dir, tap="bgrba9876543210",
                   work_disk=vm_dir / "work.ext4", memory_file=memory, incoming=True, agent=True)
    restored = await hypervisor.start_from_template(spec, state)
    try:
        assert hypervisor.is_running(restored, vm_dir)
        log = (vm_dir / "firecracker.log").read_text()
        steps = [log.index(f"{step} was executed successfully") for step in (
            "PUT /snapshot/load", "PATCH /drives/work", "PATCH /vm"
        )]
        assert steps == sorted(steps) and "/boot-source" not in log
        assert (vm_dir / "vsock.sock").is_socket()  # the vsock override: its own socket
    finally:
        hypervisor.kill(restored, signal.SIGKILL)

    # The snapshot names the drives relative to the VM dir: without the VM's own work disk
    # there is nothing to load onto.
    (vm_dir / "work.ext4").unlink()
    before = set(hypervisor._children)
    with pytest.raises(BootFailed, match="Load snapshot error"):
        await hypervisor.start_from_template(spec, state)
    assert set(hypervisor._children) <= before  # the refused process was killed and reaped


async def test_clone_root_copies_a_template_root_layout(tmp_path: Path) -> None:
    runner = FakeRunner()
    hypervisor = FirecrackerHypervisor(None, tmp_path / "cache", runner=runner)
    source, vm_dir = tmp_path / "template", tmp_path / "vm"
    source.mkdir()
    vm_dir.mkdir()
    _layout(source, tmp_path / "rootfs.ext4")
    await hypervisor.clone_root(source, vm_dir)
    assert runner.calls == [
        ("cp", "--reflink=auto", str(source / "overlay.ext4"), str(vm_dir / "overlay.ext4")),
    ]
    layout = read_layout(vm_dir)
    assert (layout.mode, layout.base, layout.overlay) == (
        "overlay", str(tmp_path / "rootfs.ext4"), str(vm_dir / "overlay.ext4")
    )


def test_the_backend_knows_its_own_vmm_processes(hypervisor: FirecrackerHypervisor) -> None:
    assert hypervisor.owns(["firecracker", "--api-sock", "/vms/0123456789ab/firecracker.sock"])
    assert not hypervisor.owns(["qemu-system-x86_64", "-qmp", "unix:/vms/0123/control.sock"])
