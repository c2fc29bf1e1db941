"""The ssh transport against a stand-in `ssh` (tests/support/fake_ssh.py) that runs the
remote command here: `banger daemon stdio` relays to a stand-in bangerd, as it would on the
remote host."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from banger.client import Client
from banger.core.errors import DaemonUnavailable
from tests.support import fake_ssh
from tests.support.fake_daemon import VMS, FakeDaemon

BIN = os.path.dirname(sys.executable)  # the venv's `banger`


@pytest.fixture
def remote_runtime() -> Iterator[Path]:
    """The remote user's XDG_RUNTIME_DIR (short: a Unix socket lives in it)."""
    root = Path(tempfile.mkdtemp(prefix="bgr-", dir="/tmp"))
    (root / "banger").mkdir()
    yield root
    import shutil

    shutil.rmtree(root, ignore_errors=True)


def local_env(tmp_path: Path, remote_runtime: Path, **extra: str) -> dict[str, str]:
    remote_env = {"XDG_RUNTIME_DIR": str(remote_runtime), "BANGER_HOST": "ssh://loop",
                  "PATH": f"{BIN}:/usr/bin:/bin"}
    return {
        **os.environ,
        "BANGER_SSH_COMMAND": f"{sys.executable} {fake_ssh.__file__}",
        "FAKE_SSH_ENV": json.dumps(remote_env),
        "FAKE_SSH_LOG": str(tmp_path / "ssh.log"),
        **extra,
    }


def test_requests_reach_the_remote_daemon(tmp_path: Path, remote_runtime: Path) -> None:
    daemon = FakeDaemon(remote_runtime / "banger" / "bangerd.sock")
    try:
        client = Client(host="ssh://me@devbox:2222", env=local_env(tmp_path, remote_runtime))
        assert client.remote is not None and client.remote.url == "ssh://me@devbox:2222"
        assert client.request("GET", "/v1/vms") == VMS
        assert client.ping()
    finally:
        daemon.close()
    argv = json.loads((tmp_path / "ssh.log").read_text().splitlines()[0])
    assert "ControlMaster=auto" in argv and "-T" in argv
    assert argv[-5:] == ["-p", "2222", "--", "me@devbox", "banger daemon stdio"]


def test_the_environment_and_contexts_choose_the_remote(
    tmp_path: Path, remote_runtime: Path
) -> None:
    env = local_env(tmp_path, remote_runtime, BANGER_HOST="ssh://devbox")
    assert Client(env=env).remote is not None
    assert Client(env=env, host="unix://").remote is None


def test_an_unreachable_host_says_so(tmp_path: Path, remote_runtime: Path) -> None:
    env = local_env(tmp_path, remote_runtime, FAKE_SSH_FAIL="255")
    with pytest.raises(DaemonUnavailable, match="cannot reach ssh://devbox over ssh: "
                       "ssh: connect to host devbox port 22: Connection refused"):
        Client(host="ssh://devbox", env=env).list_vms()


def test_a_host_without_banger_says_so(tmp_path: Path, remote_runtime: Path) -> None:
    env = local_env(tmp_path, remote_runtime)
    env["FAKE_SSH_ENV"] = json.dumps({"PATH": "/usr/bin:/bin"})
    with pytest.raises(DaemonUnavailable, match="banger is not installed on ssh://devbox"):
        Client(host="ssh://devbox", env=env).list_vms()


def test_without_autostart_a_stopped_daemon_is_not_started(
    tmp_path: Path, remote_runtime: Path
) -> None:
    client = Client(host="ssh://devbox", env=local_env(tmp_path, remote_runtime),
                    autostart=False)
    assert not client.ping()
    with pytest.raises(DaemonUnavailable, match="bangerd is not running on ssh://devbox"):
        client.list_vms()
    assert not (remote_runtime / "banger" / "bangerd.sock").exists()


def test_a_streamed_body_goes_through_too(tmp_path: Path, remote_runtime: Path) -> None:
    daemon = FakeDaemon(remote_runtime / "banger" / "bangerd.sock")
    try:
        client = Client(host="ssh://devbox", env=local_env(tmp_path, remote_runtime))
        response = client._transport.send_stream(
            "GET", "/v1/vms", iter([b"piece one", b"piece two"]), {}, 30
        )
        try:
            assert json.loads(response.read()) == VMS
        finally:
            response.close()
    finally:
        daemon.close()
