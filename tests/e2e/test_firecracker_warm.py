"""Warm templates on the Firecracker backend end to end: `image warm` boots a template VM and
saves it with snapshot/create; VMs restored from it with snapshot/load (their own TAP, vsock
socket, root copy and work disk) are distinct machines that share nothing they write.

Against the stand-in (tests/support/firecracker_standin.py) here, which maps the template's
memory copy-on-write as Firecracker does, but bridges the vsock socket to a virtio-serial
port in its QEMU guest: the guest side of the agent's AF_VSOCK path is not exercised. Against
the real binary where it and hardware KVM exist."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    BangerEnv,
    assert_isolated_then_cold_restart,
    create_restored_at_once,
    probe_clone,
    real_firecracker,
)
from tests.support.firecracker_standin import write_wrapper

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["stand-in", "real"])
def fc_warm(
    request: pytest.FixtureRequest, second_banger_module: Callable[..., BangerEnv],
    tmp_path_factory: pytest.TempPathFactory,
) -> BangerEnv:
    if request.param == "stand-in":
        binary = str(write_wrapper(tmp_path_factory.mktemp("fcbin")))
    else:
        found, reason = real_firecracker()
        if found is None:
            pytest.skip(reason)
        binary = found
    env = second_banger_module(
        f'backend = "firecracker"\nfirecracker_bin = "{binary}"\nwarm_start = true\n'
    )
    out = env.run("image", "warm", "debian-bookworm", timeout=900)
    assert "warm template" in out.stdout
    return env


def _template_dir(env: BangerEnv) -> Path:
    return env.state_dir / "templates" / "firecracker" / "debian-bookworm"


def _guest_vmm_maps(pid: int) -> str:
    """The memory maps of the process that runs the guest: Firecracker itself, or the
    stand-in's QEMU child."""
    children = [
        child for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]
    return Path(f"/proc/{children[0] if children else pid}/maps").read_text()


def test_two_vms_restored_from_one_firecracker_template(fc_warm: BangerEnv) -> None:
    template = _template_dir(fc_warm)
    assert (template / "memory").is_file() and (template / "state").is_file()
    assert fc_warm.json("image", "show", "debian-bookworm")["template"]["backend"] == (
        "firecracker"
    )

    create_restored_at_once(fc_warm, ("fcw-a", "fcw-b"))
    shown = {name: fc_warm.json("vm", "show", name) for name in ("fcw-a", "fcw-b")}
    a, b = (probe_clone(fc_warm, name) for name in ("fcw-a", "fcw-b"))

    assert (a["hostname"], b["hostname"]) == ("fcw-a", "fcw-b")
    assert shown["fcw-a"]["ip"] != shown["fcw-b"]["ip"]
    assert a["machine_id"] != b["machine_id"] and a["random"] != b["random"]
    assert a["host_key"] != b["host_key"]
    for name, probe in (("fcw-a", a), ("fcw-b", b)):
        vm = shown[name]
        assert vm["backend"] == "firecracker" and vm["template"]
        assert (Path(vm["dir"]) / "ssh_host_ed25519_key.pub").read_text().split()[:2] == (
            probe["host_key"].split()[:2]
        )
        assert "banger.agent" in probe["cmdline"]  # restored, not booted
        # Both map the template's memory file (copy-on-write) rather than RAM of their own.
        assert str(template / "memory") in _guest_vmm_maps(vm["pid"])
        # The guest learnt its own work disk's size when the drive was re-pointed at it.
        size = fc_warm.run("vm", "ssh", name, "--", "cat", "/sys/block/vdb/size").stdout
        assert int(size) * 512 == vm["spec"]["disk_size_bytes"]

    assert_isolated_then_cold_restart(fc_warm, "fcw-a", "fcw-b")


def test_broken_firecracker_template_falls_back_to_cold(fc_warm: BangerEnv) -> None:
    state = _template_dir(fc_warm) / "state"
    state.write_bytes(state.read_bytes()[:2000])  # a truncated snapshot
    out = fc_warm.run("vm", "run", "--rm", "--", "echo", "ran", timeout=600)
    assert out.stdout.strip().endswith("ran")
    assert "warning" in out.stderr and "booting cold" in out.stderr, out.stderr


def test_image_warm_for_the_other_backend(fc_warm: BangerEnv) -> None:
    # This daemon's default is Firecracker; its QEMU backend makes templates of its own.
    out = fc_warm.run("image", "warm", "--backend", "qemu", "debian-bookworm", timeout=900)
    assert "warm template" in out.stdout
    shown = fc_warm.json("image", "show", "debian-bookworm")
    assert shown["template"]["backend"] == "firecracker"
    assert sorted(shown["templates"]) == ["firecracker", "qemu"]
    assert (fc_warm.state_dir / "templates" / "qemu" / "debian-bookworm" / "memory").is_file()
    text = fc_warm.run("image", "show", "debian-bookworm").stdout
    assert "firecracker: " in text and "; qemu: " in text
    fc_warm.run("vm", "create", "--backend", "qemu", "--name", "fcw-q", timeout=600)
    cmdline = fc_warm.run("vm", "ssh", "fcw-q", "--", "cat", "/proc/cmdline").stdout
    assert "banger.agent" in cmdline  # restored from the QEMU template
    fc_warm.run("vm", "delete", "--force", "fcw-q", timeout=120)
