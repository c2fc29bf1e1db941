"""Bad input gets one `error:` line and a `hint:` line, a non-zero exit, no traceback, and
changes nothing."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from tests.e2e.conftest import BangerEnv


def _assert_clean_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode != 0
    # Progress lines may come first; the error is the last thing said, on one line.
    lines = proc.stderr.strip().splitlines()
    assert lines[-2].startswith("error: ") and lines[-1].startswith("hint: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for needle in needles:
        assert needle in proc.stderr


def _snapshot(env: BangerEnv) -> tuple[list[str], list[str], list[str]]:
    vms = sorted(vm["name"] for vm in env.json("vm", "list"))
    dirs = sorted(p.name for p in (env.state_dir / "vms").glob("*"))
    taps = sorted(link for link in env.netns.links() if link.startswith("bgr"))
    return vms, dirs, taps


@pytest.fixture(scope="module")
def running(banger: BangerEnv) -> str:
    banger.run("vm", "create", "--name", "busy")
    return "busy"


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("vm", "create", "--name", "busy", "--no-start"), ("already exists",)),
        (("vm", "create", "--name", "Not_A_Label"), ("invalid name",)),
        (("vm", "create", "--name", "x", "--image", "no-such-image"), ("no-such-image",)),
        (("vm", "show", "ghost"), ("ghost",)),
        (("vm", "start", "busy"), ("already running",)),
        (("vm", "delete", "busy"), ("is running",)),
        (("vm", "create", "--disk-size", "lots"), ("disk size",)),
        (("vm", "kill", "--signal", "NOPE", "busy"), ("signal",)),
        (("vm", "run", "--branch", "b"), ("--branch",)),
    ],
)
def test_bad_input_is_a_clean_error_and_changes_nothing(
    banger: BangerEnv, running: str, args: tuple[str, ...], needles: tuple[str, ...]
) -> None:
    before = _snapshot(banger)
    _assert_clean_error(banger.run(*args, check=False), *needles)
    assert _snapshot(banger) == before
    assert banger.json("vm", "show", running)["state"] == "running"


def test_bad_config_names_the_key(second_banger: Callable[..., BangerEnv]) -> None:
    env = second_banger(register=False)
    env.write_config('bridge_name = "bgt1"\nno_such_key = 1\n')
    _assert_clean_error(env.run("vm", "list", check=False), "no_such_key")
    env.write_config('bridge_name = "bgt1"\naccel = "warp"\n')
    _assert_clean_error(env.run("vm", "list", check=False), "accel")


def test_missing_qemu_leaves_nothing_behind(second_banger: Callable[..., BangerEnv]) -> None:
    env = second_banger('qemu_bin = "/nonexistent/qemu"\n')
    before = _snapshot(env)
    _assert_clean_error(env.run("vm", "create", "--name", "noqemu", check=False), "qemu")
    assert _snapshot(env) == before


def test_rm_keeps_the_vm_when_ssh_never_came_up(second_banger: Callable[..., BangerEnv]) -> None:
    env = second_banger("boot_timeout = 2\n")
    proc = env.run("vm", "run", "--rm", "--name", "slow", "--", "true", check=False)
    _assert_clean_error(proc, "ssh")
    shown = env.json("vm", "show", "slow")
    assert shown["state"] == "error"
    assert env.run("vm", "logs", "slow").stdout  # the console is there to inspect
    env.run("vm", "delete", "--force", "slow")
