"""The CLI starts fast: importing it must not pull in the daemon's heavy dependencies."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("asyncssh", "aiohttp", "pydantic", "rich")


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
    ],
    ids=["import", "help", "client"],
)
def test_cli_path_stays_light(code: str) -> None:
    assert imported_after(code).isdisjoint(HEAVY)
