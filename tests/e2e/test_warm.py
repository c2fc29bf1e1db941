"""Warm templates end to end: VMs restored from one template are distinct machines, share
nothing they write, and a missing or broken template means a cold boot with a warning."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import BANGER, BangerEnv, modified_test_image

pytestmark = pytest.mark.e2e

PROBE = (
    "hostname; cat /etc/machine-id; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'; "
    "echo; date +%s.%N; cat /etc/ssh/ssh_host_ed25519_key.pub; findmnt -n -o SOURCE /root; "
    "cat /proc/cmdline; cat /sys/block/vdb/size; ip -o -6 addr show scope link | wc -l"
)


@pytest.fixture(scope="module")
def warm_env(second_banger_module: Callable[..., BangerEnv]) -> BangerEnv:
    env = second_banger_module("warm_start = true\n")
    out = env.run("image", "warm", "debian-bookworm", timeout=900)
    assert "warm template" in out.stdout
    return env


def _template_dir(env: BangerEnv) -> Path:
    return env.state_dir / "templates" / "qemu" / "debian-bookworm"


def _probe(env: BangerEnv, name: str) -> dict[str, Any]:
    before = time.time()
    out = env.run("vm", "ssh", name, "--", "sh", "-c", PROBE).stdout.splitlines()
    after = time.time()
    hostname, machine_id, random_hex, guest_now, host_key, root_source, cmdline = out[:7]
    work_sectors, link_local = out[7:9]
    # The guest read its clock at some point while the ssh command ran.
    guest = float(guest_now)
    skew = 0.0 if before <= guest <= after else min(abs(guest - before), abs(guest - after))
    return {
        "hostname": hostname, "machine_id": machine_id, "random": random_hex,
        "clock_skew": skew, "host_key": host_key.strip(),
        "root_source": root_source, "cmdline": cmdline,
        "work_bytes": int(work_sectors) * 512, "link_local": int(link_local),
    }


def test_image_show_reports_the_template(warm_env: BangerEnv) -> None:
    shown = warm_env.json("image", "show", "debian-bookworm")
    template = shown["template"]
    assert template["disk_bytes"] > 0
    assert (_template_dir(warm_env) / "memory").is_file()
    text = warm_env.run("image", "show", "debian-bookworm").stdout
    assert "template" in text and "on disk" in text


def create_restored_at_once(env: BangerEnv, names: tuple[str, ...]) -> None:
    """`vm create` of each name, all at once, each restored from the template (no warning)."""
    procs = [
        subprocess.Popen(
            env.netns.exec_argv([*BANGER, "vm", "create", "--name", name]),
            env=env.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            stdin=subprocess.DEVNULL,
        )
        for name in names
    ]
    for proc in procs:
        _, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr
        assert "warm template" in stderr, stderr  # the progress line says it restored
        assert "warning" not in stderr, stderr


def test_two_clones_are_distinct_machines(warm_env: BangerEnv) -> None:
    create_restored_at_once(warm_env, ("warm-a", "warm-b"))
    a, b = (_probe(warm_env, name) for name in ("warm-a", "warm-b"))
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


def assert_isolated_then_cold_restart(env: BangerEnv, a: str, b: str) -> None:
    """Two clones of one template: what `a` writes, `b` does not see (root and work disk
    alike); and `a` is an ordinary VM afterwards: it stops, boots cold and keeps its data.
    Deletes both."""
    env.run("vm", "ssh", a, "--", "sh", "-c",
            "echo a > /root/only-a && echo a > /etc/only-a && sync")
    env.run("vm", "ssh", b, "--", "sh", "-c", "test ! -e /root/only-a && test ! -e /etc/only-a")
    env.run("vm", "stop", a, timeout=120)
    env.run("vm", "start", a, timeout=600)
    after = env.run("vm", "ssh", a, "--", "sh", "-c",
                    "cat /root/only-a /etc/only-a; hostname; cat /proc/cmdline").stdout
    assert after.splitlines()[:3] == ["a", "a", a]
    assert "banger.ip=" in after
    for name in (a, b):
        env.run("vm", "delete", "--force", name, timeout=120)


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


def test_image_without_perl_gets_no_template_and_says_why_at_once(
    warm_env: BangerEnv, test_image: dict[str, str], tmp_path: Path,
) -> None:
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
