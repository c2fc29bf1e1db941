"""The CLI starts fast: importing it must not pull in the daemon's heavy dependencies."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support.fake_daemon import FakeDaemon

HEAVY = ("asyncssh", "aiohttp", "pydantic", "rich", "click", "mcp", "uvicorn", "starlette")


def imported_after(code: str) -> set[str]:
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    return {name.split(".")[0] for name in json.loads(out.splitlines()[-1])}


@pytest.mark.parametrize(
    "code",
    [
        "import banger.cli.main",
        # What `banger --help` runs.
        "import sys\nfrom banger.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass",
        "import banger.client",
        # What `banger mcp --help` loads: the MCP SDK waits until the server starts.
        "import banger.cli.mcp",
        # The SDK's front door and its client class.
        "import banger\nbanger.Client",
        # What the client sends a body with: the daemon, not the client, checks it.
        "from banger.core import api\napi.CreateVM(name='dev').body()",
    ],
    ids=["import", "help", "client", "mcp-command", "sdk", "schema"],
)
def test_cli_path_stays_light(code: str) -> None:
    assert imported_after(code).isdisjoint(HEAVY)


def test_vm_list_skips_what_it_does_not_need() -> None:
    """`banger vm list`, the most frequent call, stays clear of modules that cost
    milliseconds at every start (docs/architecture.md has the numbers)."""
    vm = {
        "id": "0123456789ab", "name": "dev", "image": "debian-bookworm", "state": "running",
        "spec": {"vcpu": 2, "memory_mib": 2048, "disk_size_bytes": 8 << 30},
        "ip": "172.16.0.2", "created_at": 1_700_000_000.0,
    }
    # A short path (Unix sockets), and a daemon stand-in: nothing may autostart bangerd.
    root = Path(tempfile.mkdtemp(prefix="bgi-", dir="/tmp"))
    (root / "banger").mkdir()
    fake = FakeDaemon(root / "banger" / "bangerd.sock", routes={"/v1/vms": [vm]})
    try:
        code = (
            "from banger.cli.main import main\nmain(['vm', 'list'])\n"
            "import json, sys\nprint(json.dumps(sorted(sys.modules)))"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
            env={**os.environ, "XDG_RUNTIME_DIR": str(root)}, check=True,
        )
    finally:
        fake.close()
        shutil.rmtree(root, ignore_errors=True)
    table, modules = proc.stdout.splitlines()[1], proc.stdout.splitlines()[-1]
    assert table.split()[:3] == ["dev", "running", "172.16.0.2"]
    costly = {"typing", "dataclasses", "inspect", "pathlib", "subprocess", "urllib.parse",
              "datetime", "shutil", "banger.core.models", "banger.cli.workspace"}
    assert set(json.loads(modules)).isdisjoint(costly), set(json.loads(modules)) & costly
