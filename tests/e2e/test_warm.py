"""Warm templates end to end: VMs restored from one template are distinct machines, share
nothing they write, and a missing or broken template means a cold boot with a warning."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from banger.host.imagetree import customize_tree
from banger.host.perlkit import HostPerlKit
from tests.e2e.conftest import (
    BangerEnv,
    assert_isolated_then_cold_restart,
    create_restored_at_once,
    modified_test_image,
    probe_clone,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def warm_env(second_banger_module: Callable[..., BangerEnv]) -> BangerEnv:
    env = second_banger_module("warm_start = true\n")
    out = env.run("image", "warm", "debian-bookworm", timeout=900)
    assert "warm template" in out.stdout
    return env


def _template_dir(env: BangerEnv) -> Path:
    return env.state_dir / "templates" / "qemu" / "debian-bookworm"


def test_image_show_reports_the_template(warm_env: BangerEnv) -> None:
    shown = warm_env.json("image", "show", "debian-bookworm")
    template = shown["template"]
    assert template["disk_bytes"] > 0
    assert (_template_dir(warm_env) / "memory").is_file()
    text = warm_env.run("image", "show", "debian-bookworm").stdout
    assert "template" in text and "on disk" in text


def test_two_clones_are_distinct_machines(warm_env: BangerEnv) -> None:
    create_restored_at_once(warm_env, ("warm-a", "warm-b"))
    a, b = (probe_clone(warm_env, name) for name in ("warm-a", "warm-b"))
    shown = {name: warm_env.json("vm", "show", name) for name in ("warm-a", "warm-b")}

    assert (a["hostname"], b["hostname"]) == ("warm-a", "warm-b")
    assert shown["warm-a"]["ip"] != shown["warm-b"]["ip"]
    assert a["machine_id"] != b["machine_id"]
    assert a["random"] != b["random"] and len(a["random"]) == 64
    assert a["clock_skew"] < 2.0 and b["clock_skew"] < 2.0
    assert a["host_key"] != b["host_key"]
    # Each host key is the one banger pinned for that VM (vm ssh checks it strictly, too).
    for name, probe in (("warm-a", a), ("warm-b", b)):
        vm_dir = Path(shown[name]["dir"])
        assert (vm_dir / "ssh_host_ed25519_key.pub").read_text().split()[:2] == (
            probe["host_key"].split()[:2]
        )
        assert probe["root_source"].startswith("/dev/vd")
        assert "banger.agent" in probe["cmdline"]  # restored, not booted
        # The guest sees its own work disk's size, not the template's placeholder; and, as
        # after a cold boot, no IPv6 link-local address.
        assert probe["work_bytes"] == shown[name]["spec"]["disk_size_bytes"]
        assert probe["link_local"] == 0

    assert_isolated_then_cold_restart(warm_env, "warm-a", "warm-b")


def test_exec_reaches_a_restored_vm(warm_env: BangerEnv) -> None:
    # The agent that applied the identity serves the exec channel from then on.
    create_restored_at_once(warm_env, ("warm-exec",))
    try:
        proc = warm_env.run("vm", "exec", "warm-exec", "--", "sh", "-c", "hostname; exit 4",
                            check=False)
        assert (proc.returncode, proc.stdout) == (4, "warm-exec\n"), proc.stderr
    finally:
        warm_env.run("vm", "delete", "--force", "warm-exec", check=False)


def test_cold_flag_boots_cold(warm_env: BangerEnv) -> None:
    out = warm_env.run("vm", "run", "--cold", "--rm", "--", "cat", "/proc/cmdline", timeout=600)
    assert "banger.ip=" in out.stdout and "banger.agent" not in out.stdout
    assert "warm template" not in out.stderr


def test_missing_template_falls_back_to_cold_with_a_warning(warm_env: BangerEnv) -> None:
    warm_env.run("vm", "create", "--no-start", "--name", "warm-gone")
    warm_env.run("image", "warm", "--delete", "debian-bookworm")
    out = warm_env.run("vm", "start", "warm-gone", timeout=600)
    assert "warning" in out.stderr and "booting cold" in out.stderr, out.stderr
    cmdline = warm_env.run("vm", "ssh", "warm-gone", "--", "cat", "/proc/cmdline").stdout
    assert "banger.ip=" in cmdline
    warm_env.run("vm", "delete", "--force", "warm-gone", timeout=120)
    # That cold boot made a new template in the background.
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        template = warm_env.json("image", "show", "debian-bookworm")["template"]
        if template and "disk_bytes" in template:
            break
        time.sleep(2)
    else:
        pytest.fail("no new template after a cold boot")


def test_broken_template_falls_back_to_cold_with_a_warning(warm_env: BangerEnv) -> None:
    warm_env.run("image", "warm", "debian-bookworm", timeout=900)
    state = _template_dir(warm_env) / "state"
    state.write_bytes(state.read_bytes()[:1000])  # a truncated device state
    out = warm_env.run("vm", "run", "--rm", "--", "echo", "ran", timeout=600)
    assert out.stdout.strip().endswith("ran")
    assert "warning" in out.stderr and "booting cold" in out.stderr, out.stderr


def test_image_without_perl_gets_the_bundled_perl_and_a_template(
    warm_env: BangerEnv, test_image: dict[str, str], tmp_path: Path,
) -> None:
    # The image loses its perl; then banger's customisation (what an OCI pull runs) bundles
    # the host's. The agent must run on it: a template, and exec in a VM restored from it.
    with modified_test_image(warm_env, test_image, tmp_path, "noperl", "rm /usr/bin/perl\n",
                             then=_bundle_perl):
        out = warm_env.run("image", "warm", "noperl", timeout=900)
        assert "warm template" in out.stdout
        warm_env.run("vm", "create", "--image", "noperl", "--name", "noperl-vm", timeout=600)
        try:
            proc = warm_env.run("vm", "exec", "noperl-vm", "--", "sh", "-c",
                                "echo ran; test -e /usr/bin/perl || echo no-perl")
            assert proc.stdout.split() == ["ran", "no-perl"], proc.stderr
        finally:
            warm_env.run("vm", "delete", "--force", "noperl-vm", check=False, timeout=120)


def _bundle_perl(rootfs: Path) -> None:
    """Customise the image again as an OCI pull would, now that it has no perl."""
    mount = rootfs.with_suffix(".mnt")
    mount.mkdir()
    subprocess.run(["mount", "-o", "loop", str(rootfs), str(mount)], check=True)
    try:
        customize_tree(mount, strict=False, perl_kit=HostPerlKit().kit())
    finally:
        subprocess.run(["umount", str(mount)], check=True)
        mount.rmdir()


def test_registered_image_without_perl_says_why_at_once_and_vm_run_takes_ssh(
    warm_env: BangerEnv, test_image: dict[str, str], tmp_path: Path,
) -> None:
    # A registered image is not customised by banger, so nothing bundles perl into it.
    with modified_test_image(warm_env, test_image, tmp_path, "noperl", "rm /usr/bin/perl\n"):
        started = time.monotonic()
        out = warm_env.run("image", "warm", "noperl", check=False, timeout=900)
        elapsed = time.monotonic() - started
        assert out.returncode != 0
        assert "banger-agent cannot start: the image has no /usr/bin/perl" in out.stderr, (
            out.stderr
        )
        # The agent's unit said so as soon as it failed: no waiting out the agent timeout
        # (3 x boot_timeout) with the template VM running.
        assert elapsed < 180, elapsed
        assert warm_env.json("image", "show", "noperl")["template"] is None
        # `vm run -- CMD` in it takes ssh instead of the agent, at once.
        started = time.monotonic()
        out = warm_env.run("vm", "run", "--rm", "--image", "noperl", "--", "echo", "ran",
                           timeout=900)
        assert out.stdout.strip().endswith("ran")
        assert "running the command over ssh" in out.stderr, out.stderr
        assert time.monotonic() - started < 300
