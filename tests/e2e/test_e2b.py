"""The E2B-compatible endpoint end to end: the unmodified e2b SDK (pinned in the test
dependencies), run inside the test namespace against `banger e2b env`'s loopback listener,
drives real guests (warm clones of the test image)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import BangerEnv

pytestmark = pytest.mark.e2e
DRIVER = Path(__file__).with_name("e2b_driver.py")


@pytest.fixture(scope="module")
def e2b_env(second_banger_module: Callable[..., BangerEnv]) -> BangerEnv:
    env = second_banger_module("warm_start = true\n")
    env.run("image", "warm", "debian-bookworm", timeout=900)
    variables = env.json("e2b", "env", "--json")
    assert variables["E2B_API_URL"] == "http://127.0.0.1:49982"
    key_file = env.root / "home/.config/banger/e2b-api-key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    env.env.update(variables)
    return env


def drive(env: BangerEnv, *args: str, timeout: float = 900) -> dict[str, Any]:
    proc = subprocess.run(
        env.netns.exec_argv([sys.executable, str(DRIVER), *args]),
        # glibc's fatal messages (an abort in a C extension) to stderr, not the terminal.
        env={**env.env, "LIBC_FATAL_STDERR_": "1"},
        capture_output=True, text=True, timeout=timeout,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    result: dict[str, Any] = json.loads(proc.stdout.splitlines()[-1])
    return result


def test_the_sync_sdk_runs_commands_and_files(e2b_env: BangerEnv) -> None:
    seen = drive(e2b_env, "sync")
    assert seen["run"] == ["hi\nuser\n/home/user\n", "oops\n", 0, "hi\nuser\n/home/user\n",
                           "oops\n"]
    assert seen["exit"] == 3
    assert seen["root"] == "root\n"
    assert seen["sudo"] == "root\n"
    assert seen["env_cwd"] == "hi there\n/tmp\n"
    assert seen["background_pid"] in seen["listed_pids"]
    assert seen["killed"] is True
    assert seen["background_pid"] not in seen["after_kill_pids"]
    assert seen["stdin"] == "piped in"
    assert "40 100" in seen["pty"]
    assert seen["written"] == "/home/user/notes/hello.txt"
    assert seen["read"] == "hello e2b"
    assert seen["listed"] == ["hello.txt"]
    assert seen["owner"] == "user\n"
    assert seen["exists"] is True
    assert seen["make_dir"] is True
    assert seen["renamed"] == "/home/user/notes/sub/moved.txt"
    assert seen["deep"] == ["/home/user/notes/sub", "/home/user/notes/sub/moved.txt"]
    assert seen["exists_after_remove"] is False
    assert seen["missing"] == "NotFoundException"
    assert seen["list"] == [seen["id"]]
    assert "running" in seen["state"]
    assert seen["killed_sandbox"] is True
    assert seen["list_after"] == []
    assert seen["id"] not in e2b_env.run("vm", "list").stdout


def test_the_async_sdk(e2b_env: BangerEnv) -> None:
    seen = drive(e2b_env, "async")
    assert seen.pop("paused_state").endswith("paused")
    assert seen == {"run": "async\nLinux\n", "read": "bytes", "running": True,
                    "after_resume": "back\n"}


def test_ten_sandboxes_in_parallel(e2b_env: BangerEnv) -> None:
    seen = drive(e2b_env, "parallel", "10", timeout=1800)
    assert seen["outputs"] == [str(i) for i in range(10)]


def test_api_key_and_access_token_are_required(e2b_env: BangerEnv) -> None:
    probe = (
        "import os, urllib.request, urllib.error\n"
        "url = os.environ['E2B_API_URL']\n"
        "for path, headers in (('/v2/sandboxes', {'X-API-KEY': 'wrong'}),\n"
        "                      ('/health', {'E2b-Sandbox-Id': 'nope'})):\n"
        "    try:\n"
        "        urllib.request.urlopen(urllib.request.Request(url + path, headers=headers))\n"
        "        print('open')\n"
        "    except urllib.error.HTTPError as exc:\n"
        "        print(exc.code)\n"
    )
    proc = subprocess.run(e2b_env.netns.exec_argv([sys.executable, "-c", probe]),
                          env=e2b_env.env, capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["401", "502"]
