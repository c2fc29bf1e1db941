"""A `kill -9` of bangerd in the middle of `vm create` leaves nothing that no record owns
once the daemon is back: no VM directory (with its plaintext `[[file_sync]]` staging copy),
no TAP, no VMM."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from banger.core.netplan import tap_name_for
from tests.e2e.conftest import BANGER, BangerEnv

pytestmark = pytest.mark.e2e


def test_killed_in_the_middle_of_create_leaves_nothing(
    second_banger: Callable[..., BangerEnv], tmp_path: Path
) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cret\n")
    env = second_banger(f'[[file_sync]]\nhost = "{secret}"\nguest = "~/token"\n')
    env.run("daemon", "status")  # up, so that its PID is known
    daemon = env.daemon_pid()
    assert daemon is not None
    vms_dir = env.state_dir / "vms"
    create = subprocess.Popen(
        env.netns.exec_argv([*BANGER, "vm", "create", "--name", "doomed"]), env=env.env,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(vms_dir.glob("*/work-staging/token")):
            assert time.monotonic() < deadline, "vm create never staged its files"
            time.sleep(0.005)
        os.kill(daemon, signal.SIGKILL)
    finally:
        create.wait(timeout=60)
    assert create.returncode != 0
    [staged] = vms_dir.glob("*/work-staging")  # what the crash left, for now
    doomed_tap = tap_name_for(staged.parent.name)

    assert env.json("vm", "list") == []  # a new daemon starts and sweeps
    assert list(vms_dir.iterdir()) == []
    assert doomed_tap not in env.netns.links()  # (the session's other guests share the netns)
    vmms = subprocess.run(["pgrep", "-f", str(vms_dir)], capture_output=True, text=True)
    assert vmms.stdout == ""
