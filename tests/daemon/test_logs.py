"""bangerd.log holds JSON lines only: warnings and crashes become records, raw output goes to
bangerd.stderr, and asyncssh's known DSA deprecation noise is filtered where it is imported."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

# Each case runs in a child: warnings filters, fds 1/2 and excepthooks are process-wide.
_PRELUDE = """
import sys, warnings
from pathlib import Path
from banger.daemon.logs import (
    redirect_raw_output, route_crashes_to_log, route_warnings_to_log, setup_logging,
)
state = Path(sys.argv[1])
redirect_raw_output(state / "bangerd.stderr")
setup_logging(state / "bangerd.log", "info")
route_warnings_to_log()
route_crashes_to_log()
"""


def _run_daemon_like(tmp_path: Path, body: str) -> tuple[list[dict[str, Any]], str]:
    script = _PRELUDE + textwrap.dedent(body)
    proc = subprocess.run(
        [sys.executable, "-W", "always", "-c", script, str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.stdout == proc.stderr == ""  # nothing escaped to the parent's pipes
    lines = (tmp_path / "bangerd.log").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line is JSON
    assert all(isinstance(r, dict) for r in records)
    return records, (tmp_path / "bangerd.stderr").read_text()


def test_a_warning_is_one_record_with_category_and_module(tmp_path: Path) -> None:
    records, raw = _run_daemon_like(tmp_path, """
        import json.decoder
        for _ in range(3):
            warnings.warn_explicit(
                "old api", FutureWarning, json.decoder.__file__, 7, module="json.decoder",
            )
    """)
    assert len(records) == 1
    (record,) = records
    assert record["level"] == "warning" and record["logger"] == "py.warnings"
    assert record["msg"] == "old api"
    assert record["category"] == "FutureWarning"
    assert record["module"] == "json.decoder"
    assert record["source"].endswith("json/decoder.py:7")
    assert raw == ""


def test_asyncssh_dsa_noise_is_filtered_and_nothing_else(tmp_path: Path) -> None:
    records, raw = _run_daemon_like(tmp_path, """
        from banger.host.sshlib import load_asyncssh
        load_asyncssh()
        warnings.warn("still reported", UserWarning)
    """)
    assert [r["msg"] for r in records] == ["still reported"]
    assert "DSA" not in raw


def test_an_uncaught_exception_is_a_record_with_its_traceback(tmp_path: Path) -> None:
    script = _PRELUDE + "raise RuntimeError('boom')\n"
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    (record,) = [json.loads(line) for line in (tmp_path / "bangerd.log").read_text().splitlines()]
    assert record["level"] == "critical"
    assert "boom" in record["msg"]
    assert "RuntimeError: boom" in record["exc"]


def test_a_crash_in_a_thread_is_a_record(tmp_path: Path) -> None:
    records, _ = _run_daemon_like(tmp_path, """
        import threading
        t = threading.Thread(target=lambda: 1 / 0, name="poller")
        t.start(); t.join()
    """)
    (record,) = records
    assert "poller" in record["msg"]
    assert "ZeroDivisionError" in record["exc"]


def test_raw_writes_go_to_the_stderr_file(tmp_path: Path) -> None:
    records, raw = _run_daemon_like(tmp_path, """
        import os
        print("printed by a library")
        sys.stderr.write("written to stderr\\n"); sys.stderr.flush()
        os.write(2, b"written to fd 2\\n")
    """)
    assert records == []
    # stdout is block-buffered, so its line may come last.
    assert sorted(raw.splitlines()) == [
        "printed by a library", "written to fd 2", "written to stderr",
    ]
