"""bangerd.log is JSON lines through a daemon's whole working life, with Python warnings
switched on the way a user's PYTHONWARNINGS or a noisy new dependency release would."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.e2e.conftest import BangerEnv

pytestmark = pytest.mark.e2e


def test_every_log_line_is_a_json_object(
    second_banger: Callable[..., BangerEnv], test_image: dict[str, str]
) -> None:
    env = second_banger("warm_start = true\n", register=False)
    env.env["PYTHONWARNINGS"] = "default"  # also shows DeprecationWarnings
    env.run(
        "image", "register", "--name", "debian-bookworm", "--rootfs", test_image["rootfs"],
        "--kernel", test_image["kernel"], "--initrd", test_image["initrd"],
    )
    env.run("vm", "create", "--name", "cold", "--cold")
    env.run("image", "warm", "debian-bookworm", timeout=900)
    warm = env.run("vm", "create", "--name", "warm")
    assert "warm template" in warm.stderr  # restored, not booted
    for name in ("cold", "warm"):
        assert "stopped" in env.run("vm", "stop", name).stdout
    env.run("daemon", "stop")

    lines = (env.state_dir / "bangerd.log").read_text().splitlines()
    assert any("bangerd listening" in line for line in lines)
    for line in lines:
        assert isinstance(json.loads(line), dict), line
    raw = env.state_dir / "bangerd.stderr"
    assert "DSA is deprecated" not in (raw.read_text() if raw.exists() else "")
