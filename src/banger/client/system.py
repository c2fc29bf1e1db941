"""`banger system ...` runs root's host preparation as its own program (it changes the
host's network, so it is no daemon request) and reads back the same NDJSON a daemon
stream sends."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from banger.core.errors import HostError, error_from_dict
from banger.core.models import ProgressEvent

PROGRAM = "banger.daemon.system"


def run_system(argv: list[str], on_progress: Callable[[ProgressEvent], None]) -> Any:
    with subprocess.Popen(
        [sys.executable, "-m", PROGRAM, *argv], stdout=subprocess.PIPE, text=True,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if not line.strip():
                continue
            item = json.loads(line)
            if "event" in item:
                on_progress(ProgressEvent(**item["event"]))
            elif "error" in item:
                raise error_from_dict(item["error"])
            elif "result" in item:
                return item["result"]
    raise HostError(f"`banger system {argv[0]}` ended without an answer "
                    f"(exit status {proc.returncode})", hint="run it again with --debug")
