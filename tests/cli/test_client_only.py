"""`pip install banger` on a machine that cannot run the daemon (macOS, say) still gives a
working remote client: the CLI and SDK never import the daemon, the host adapters or the
daemon's dependencies."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import banger.cli
import banger.client
from tests.support import fake_ssh

# What only the daemon's host needs.
DAEMON_ONLY = ("banger.daemon", "banger.host", "aiohttp", "asyncssh", "pydantic")
BLOCKER = f"""
import sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {DAEMON_ONLY!r} or name.startswith({DAEMON_ONLY!r}):
            raise ImportError(f"client-only install: no {{name}}")
        return None
sys.meta_path.insert(0, Blocker())
"""


def _modules(package: object) -> list[str]:
    path = package.__path__  # type: ignore[attr-defined]
    prefix = package.__name__ + "."  # type: ignore[attr-defined]
    found = [m.name for m in pkgutil.iter_modules(path, prefix)]
    return [name for name in found if not name.endswith(".__main__")]  # that one runs


def test_every_cli_and_client_module_imports_without_the_daemon_side() -> None:
    names = [*_modules(banger.cli), *_modules(banger.client), "banger", "banger.core.remote"]
    code = BLOCKER + "".join(f"import {name}\n" for name in names) + "print('ok')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.stdout.strip() == "ok", proc.stderr


def test_a_remote_command_runs_without_the_daemon_side(tmp_path: Path) -> None:
    """`banger vm list` against a remote host, here the stand-in ssh whose "remote" side
    fails at once: the local side got as far as ssh without importing anything blocked."""
    env = {**os.environ, "BANGER_HOST": "ssh://me@devbox",
           "BANGER_SSH_COMMAND": f"{sys.executable} {fake_ssh.__file__}",
           "FAKE_SSH_FAIL": "255", "FAKE_SSH_LOG": str(tmp_path / "log")}
    code = BLOCKER + "from banger.cli.main import main\nmain(['vm', 'list'])\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=env, check=False)
    assert "cannot reach ssh://me@devbox over ssh" in proc.stderr, proc.stderr
    assert json.loads((tmp_path / "log").read_text())[-1] == "banger daemon stdio"
