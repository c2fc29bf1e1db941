"""scripts/uninstall.sh against a stand-in `banger` that records what it is asked: running
VMs are stopped, banger's ssh block goes, the daemon stops, the entry points and the venv go,
and the data directories are printed, not touched."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "uninstall.sh"
VMS = [
    {"name": "web", "state": "running"},
    {"name": "old", "state": "stopped"},
    {"name": "wedged", "state": "error"},
    {"name": "fresh", "state": "created"},
]


@pytest.fixture
def root() -> Iterator[Path]:
    # Short: it holds a Unix socket.
    with tempfile.TemporaryDirectory(prefix="bgu-", dir="/tmp") as path:
        yield Path(path)


def install(root: Path, *, daemon_up: bool) -> dict[str, str]:
    prefix, bindir, home = root / "opt", root / "bin", root / "home"
    (prefix / "bin").mkdir(parents=True)
    bindir.mkdir()
    (home / ".config" / "banger").mkdir(parents=True)
    (prefix / "bin" / "python").symlink_to(sys.executable)
    sock = root / "bangerd.sock"
    if daemon_up:
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(sock))
        server.close()  # the socket file is what the script looks at
    (root / "vms.json").write_text(json.dumps(VMS))
    fake = bindir / "banger"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {root}/calls\n'
        'case "$*" in\n'
        f'  "daemon socket") echo {sock} ;;\n'
        f'  "vm list --json") cat {root}/vms.json ;;\n'
        "esac\n"
    )
    fake.chmod(0o755)
    (bindir / "bangerd").symlink_to(prefix / "bin" / "python")
    return {
        "PATH": os.environ["PATH"], "HOME": str(home), "BANGER_PREFIX": str(prefix),
        "BANGER_BINDIR": str(bindir), "XDG_STATE_HOME": "/data/state",
    }


def uninstall(env: dict[str, str]) -> str:
    proc = subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_stops_vms_and_daemon_removes_entry_points_and_prints_data_paths(root: Path) -> None:
    env = install(root, daemon_up=True)
    out = uninstall(env)
    assert (root / "calls").read_text().splitlines() == [
        "daemon socket", "vm list --json", "vm stop web", "vm stop wedged",
        "ssh-config --uninstall", "daemon stop",
    ]
    assert sorted(p.name for p in root.iterdir()) == [
        "bangerd.sock", "bin", "calls", "home", "vms.json",
    ]
    assert list((root / "bin").iterdir()) == []
    assert (root / "home" / ".config" / "banger").is_dir()  # user data stays
    lines = out.splitlines()
    assert lines[0].startswith("banger removed.")
    assert lines[1].split()[0] == f"{root}/home/.config/banger/"
    assert lines[2].split()[0] == "/data/state/banger/"
    assert lines[3].split()[0] == f"{root}/home/.cache/banger/"


def test_no_daemon_is_started_just_to_be_stopped(root: Path) -> None:
    env = install(root, daemon_up=False)
    uninstall(env)
    assert (root / "calls").read_text().splitlines() == [
        "daemon socket", "ssh-config --uninstall", "daemon stop",
    ]


def test_runs_again_after_banger_is_gone(root: Path) -> None:
    env = install(root, daemon_up=False)
    uninstall(env)
    assert "banger removed." in uninstall(env)
