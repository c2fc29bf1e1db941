"""A guest agent that floods garbage or dies, in a real guest (root in it stops or kills
banger-agent through ssh): the request in flight fails with one clear line, the daemon
stays healthy, another VM is unaffected, and the agent serves again once it is back."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import BANGER, BangerEnv

pytestmark = pytest.mark.e2e
PORT = "/dev/virtio-ports/org.banger.agent"


@pytest.fixture(scope="module")
def victim(banger: BangerEnv) -> Iterator[str]:
    with banger.vm("victim") as name:
        yield name


@pytest.fixture(scope="module")
def bystander(banger: BangerEnv) -> Iterator[str]:
    with banger.vm("bystander") as name:
        yield name


def exec_in_flight(banger: BangerEnv, vm: str) -> subprocess.Popen[str]:
    """`vm exec VM -- sleep`, returned once the command runs in the guest."""
    proc = subprocess.Popen(
        banger.netns.exec_argv([*BANGER, "vm", "exec", vm, "--", "sh", "-c",
                                "echo started; exec sleep 300"]),
        env=banger.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "started\n"
    return proc


def as_guest_root(banger: BangerEnv, vm: str, script: str) -> None:
    banger.run("vm", "ssh", vm, "--", "sh", "-c", script)


def failed_in_one_line(proc: subprocess.Popen[str]) -> str:
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    error, hint = err.splitlines()  # one error, one hint, no traceback
    assert error.startswith("error: ") and hint.startswith("hint: ")
    return error


def assert_unharmed(banger: BangerEnv, bystander: str) -> None:
    assert banger.run("vm", "exec", bystander, "--", "echo", "fine").stdout == "fine\n"
    assert banger.json("daemon", "status")["vms"] >= 2


def test_garbage_fails_the_request_in_flight(
    banger: BangerEnv, victim: str, bystander: str,
) -> None:
    proc = exec_in_flight(banger, victim)
    # A clean stop leaves the port silent; then random bytes where frames should be (the
    # write blocks once the daemon hangs up: bounded by timeout).
    as_guest_root(banger, victim, "systemctl stop banger-agent; "
                  f"timeout 10 sh -c 'head -c 65536 /dev/urandom > {PORT}'; true")
    assert failed_in_one_line(proc).startswith("error: the guest agent sent garbage")
    assert_unharmed(banger, bystander)
    as_guest_root(banger, victim, "systemctl start banger-agent")
    assert banger.run("vm", "exec", victim, "--", "echo", "back").stdout == "back\n"


def test_an_agent_killed_mid_request_says_so(
    banger: BangerEnv, victim: str, bystander: str,
) -> None:
    proc = exec_in_flight(banger, victim)
    as_guest_root(banger, victim, "systemctl kill -s KILL banger-agent")
    error = failed_in_one_line(proc)
    assert error.startswith("error: the guest agent stopped (signal"), error
    # The next request is told at once (nothing ran: agent_stopped), not after a timeout.
    again = banger.run("vm", "exec", victim, "--", "true", check=False)
    assert again.returncode == 1
    assert again.stderr.startswith("error: the guest agent stopped (signal"), again.stderr
    assert_unharmed(banger, bystander)
    banger.run("vm", "restart", victim)
    assert banger.run("vm", "exec", victim, "--", "echo", "back").stdout == "back\n"
