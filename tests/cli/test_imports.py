"""The CLI starts fast: importing it must not pull in the daemon's heavy dependencies."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

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


def cli_against(routes: dict[str, Any], argv: list[str],
                ) -> tuple[subprocess.CompletedProcess[str], list[str], set[str]]:
    """`banger ARGV` in a fresh interpreter against a daemon stand-in answering `routes`
    (a short socket path; nothing may autostart bangerd): the process (the modules it
    loaded printed last, at exit), the paths it asked for, and those modules."""
    root = Path(tempfile.mkdtemp(prefix="bgi-", dir="/tmp"))
    (root / "banger").mkdir()
    fake = FakeDaemon(root / "banger" / "bangerd.sock", routes=routes)
    try:
        code = (
            "import atexit, json, sys\n"
            "atexit.register(lambda: print(json.dumps(sorted(sys.modules))))\n"
            f"from banger.cli.main import main\nmain({argv!r})\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
            env={**os.environ, "XDG_RUNTIME_DIR": str(root)}, stdin=subprocess.DEVNULL,
        )
    finally:
        fake.close()
        shutil.rmtree(root, ignore_errors=True)
    return proc, fake.requests, set(json.loads(proc.stdout.splitlines()[-1]))


def test_vm_list_skips_what_it_does_not_need() -> None:
    """`banger vm list`, the most frequent call, stays clear of modules that cost
    milliseconds at every start (docs/architecture.md has the numbers)."""
    vm = {
        "id": "0123456789ab", "name": "dev", "image": "debian-bookworm", "state": "running",
        "spec": {"vcpu": 2, "memory_mib": 2048, "disk_size_bytes": 8 << 30},
        "ip": "172.16.0.2", "created_at": 1_700_000_000.0,
    }
    proc, _, modules = cli_against({"/v1/vms": [vm]}, ["vm", "list"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1].split()[:3] == ["dev", "running", "172.16.0.2"]
    costly = {"typing", "dataclasses", "inspect", "pathlib", "subprocess", "urllib.parse",
              "datetime", "shutil", "banger.core.models", "banger.cli.workspace"}
    assert modules.isdisjoint(costly), modules & costly


def test_vm_run_command_skips_the_model_classes() -> None:
    """`banger vm run --rm -- CMD` (create, exec through the agent, delete) builds its
    bodies by hand: the model classes would cost it more than its exec in the guest."""
    proc, requests, modules = cli_against({
        "/v1/vms": b'{"event": {"stage": "ready", "message": "dev is up"}}\n'
                   b'{"result": {"name": "dev"}}\n',
        "/v1/vms/dev/exec": b'{"stdout": "aGkK"}\n{"result": {"exit_code": 3}}\n',
        "/v1/vms/dev?force=1": {"name": "dev"},
    }, ["vm", "run", "--rm", "--", "true"])
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.splitlines()[0] == "hi" and "dev is up" in proc.stderr
    assert [path.split("?")[0] for path in requests] == [
        "/v1/vms", "/v1/vms/dev/exec", "/v1/vms/dev",
    ]
    costly = {"dataclasses", "inspect", "typing", "banger.core.models", "banger.core.api",
              "banger.core.guestapi", "banger.client.guestreach"}
    assert modules.isdisjoint(costly), modules & costly


def test_vm_run_body_is_a_create_vm_body() -> None:
    from banger.cli.vm import create_body
    from banger.core import api

    assert create_body(
        name="dev", image="alpine", vcpu=2, memory=512, disk_size="4G", ready="agent",
        cold=True, nat=True, egress_allow="example.org", network_group="g",
    ) == api.CreateVM(
        name="dev", image="alpine", vcpu=2, memory_mib=512, disk_size="4G", ready="agent",
        cold=True, nat=True, egress_allow=["example.org"], network_group="g",
    ).body()
    assert create_body(
        name=None, image=None, vcpu=None, memory=None, disk_size=None, ready="sshd",
        cold=False, nat=False, egress_allow=None, network_group=None,
    ) == api.CreateVM(ready="sshd").body()
