"""The Firecracker backend end to end: the real CLI and daemon with `backend = "firecracker"`,
against the real binary where it and hardware KVM exist, and always against the stand-in
(tests/support/firecracker_standin.py), which serves the same API and boots the configured
kernel, initrd, drives and TAP with QEMU. Either way the daemon runs it exactly as it runs
Firecracker: as `firecracker_bin`, by PID, over the API socket."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import BangerEnv, real_firecracker
from tests.support.firecracker_standin import write_wrapper


@pytest.fixture(params=["stand-in", "real"])
def firecracker_bin(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "stand-in":
        return str(write_wrapper(tmp_path / "bin"))
    binary, reason = real_firecracker()
    if binary is None:
        print(f"skipping the real-Firecracker run: {reason}")
        pytest.skip(reason)
    return binary


def test_boot_ssh_stop_start_on_firecracker(
    second_banger: Callable[..., BangerEnv], firecracker_bin: str, test_image: dict[str, str]
) -> None:
    base = Path(test_image["rootfs"])
    base_mtime = base.stat().st_mtime_ns
    env = second_banger(f'backend = "firecracker"\nfirecracker_bin = "{firecracker_bin}"\n')
    assert env.json("daemon", "status")["backend"] == "firecracker"

    created = env.json("vm", "create", "--name", "fc", "--memory", "1024")
    assert created["state"] == "running"
    assert created["backend"] == "firecracker"
    vm_dir = Path(created["dir"])
    for name in ("firecracker.log", "firecracker.metrics", "console.log", "root.json"):
        assert (vm_dir / name).exists(), name

    out = env.run(
        "vm", "ssh", "fc", "--", "sh", "-c",
        "hostname; findmnt -n -o FSTYPE /; findmnt -n -o FSTYPE /root; "
        "echo root-kept > /etc/banger-fc; echo work-kept > /root/fc.txt; sync",
    ).stdout.split()
    assert out[0] == "fc"
    # A reflinked copy is a plain ext4 root; elsewhere the guest-side overlay makes `/`.
    mode = json.loads((vm_dir / "root.json").read_text())["mode"]
    assert out[1] == {"reflink": "ext4", "overlay": "overlay"}[mode]
    assert out[2] == "ext4"

    assert "stopped" in env.run("vm", "stop", "fc").stdout
    started = env.run("vm", "start", "fc")
    assert "running" in started.stdout
    kept = env.run("vm", "ssh", "fc", "--", "cat", "/etc/banger-fc", "/root/fc.txt").stdout
    assert kept.split() == ["root-kept", "work-kept"]

    doctor = env.run("doctor", check=False).stdout
    assert "firecracker" in doctor

    env.run("vm", "delete", "--force", "fc")
    assert not vm_dir.exists()
    assert base.stat().st_mtime_ns == base_mtime  # the shared base image is never written


def test_pause_resume_snapshot_and_restore_on_firecracker(
    second_banger: Callable[..., BangerEnv], firecracker_bin: str, test_image: dict[str, str]
) -> None:
    env = second_banger(f'backend = "firecracker"\nfirecracker_bin = "{firecracker_bin}"\n')
    created = env.json("vm", "create", "--name", "fcs", "--memory", "1024")
    vm_dir = Path(created["dir"])
    boot_id = env.run("vm", "ssh", "fcs", "--", "cat", "/proc/sys/kernel/random/boot_id").stdout

    assert env.run("vm", "pause", "fcs").stdout.split() == ["fcs", "paused"]
    assert env.json("vm", "show", "fcs")["state"] == "paused"
    refused = env.run("vm", "ssh", "fcs", "--", "true", check=False)
    assert refused.returncode != 0 and "banger vm resume fcs" in refused.stderr
    assert env.run("vm", "resume", "fcs").stdout.split() == ["fcs", "running"]
    assert env.run("vm", "ssh", "fcs", "--", "echo", "resumed").stdout.strip() == "resumed"

    stats = env.json("vm", "stats", "fcs")
    host = stats["samples"][-1]["host"]
    assert host["vmm"] is not None and host["vmm"]["net_rx_bytes"] > 0

    env.run("vm", "ssh", "fcs", "--", "sh", "-c", "echo before-snapshot > /dev/shm/mark")
    assert "snapshot saved" in env.run("vm", "snapshot", "fcs").stdout
    assert (vm_dir / "snapshot" / "vmstate").exists()
    assert (vm_dir / "snapshot" / "memory").exists()
    # The VM runs on after its snapshot; memory changed now is not in the snapshot.
    env.run("vm", "ssh", "fcs", "--", "sh", "-c", "echo after-snapshot > /dev/shm/mark")
    env.run("vm", "kill", "fcs")

    assert "running" in env.run("vm", "start", "fcs", "--from-snapshot").stdout
    restored = env.run(
        "vm", "ssh", "fcs", "--", "cat", "/proc/sys/kernel/random/boot_id", "/dev/shm/mark"
    ).stdout.split()
    assert restored == [boot_id.strip(), "before-snapshot"]  # the same boot, not a new one

    env.run("vm", "pause", "fcs")
    env.run("vm", "delete", "--force", "fcs")
    assert not vm_dir.exists()
