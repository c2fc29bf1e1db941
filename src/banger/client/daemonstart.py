"""Starting bangerd from the CLI or SDK: detached, in its own session, its raw output in
bangerd.stderr, and its failure explained from its log when it dies on the way up."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from banger.core.errors import BangerError, DaemonUnavailable, error_from_dict
from banger.core.paths import Paths, refuse_foreign_dirs

_DAEMON_START_TIMEOUT = 20.0


def start_daemon(paths: Paths, ping: Callable[[], bool]) -> None:
    refuse_foreign_dirs(paths, os.geteuid(), _owner_of)
    paths.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    log = _LogMark.at_end_of(paths.daemon_log)
    raw = _LogMark.at_end_of(paths.daemon_stderr)
    # bangerd.log is the daemon's own JSON log; what the process writes raw (say, a
    # traceback before its logging is set up) goes to bangerd.stderr instead.
    with open(raw.path, "ab") as stderr:
        import subprocess

        proc = subprocess.Popen(
            [sys.executable, "-m", "banger.daemon.main"],
            stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
            start_new_session=True, close_fds=True,
        )
    deadline = time.monotonic() + _DAEMON_START_TIMEOUT
    while time.monotonic() < deadline:
        if paths.socket.exists() and ping():
            return
        code = proc.poll()
        if code is not None and code != 3:  # 3: another bangerd won the lock
            raise _startup_error(log, raw, code)
        time.sleep(0.05)
    raise DaemonUnavailable(f"bangerd did not come up within {_DAEMON_START_TIMEOUT:.0f}s")


def _owner_of(path: Path) -> int | None:
    try:
        return os.lstat(path).st_uid
    except FileNotFoundError:
        return None


class _LogMark:
    """A file and how much of it there was before the daemon started."""

    def __init__(self, path: Path, offset: int) -> None:
        self.path = path
        self.offset = offset

    @classmethod
    def at_end_of(cls, path: Path) -> _LogMark:
        return cls(path, path.stat().st_size if path.exists() else 0)

    def lines_since(self) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                return f.read().decode(errors="replace").splitlines()
        except OSError:
            return []


def _startup_error(log: _LogMark, raw: _LogMark, code: int) -> BangerError:
    """The daemon's own typed error from its JSON log, else the last raw line it wrote."""
    for line in reversed(log.lines_since()):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("code"):
            return error_from_dict({
                "code": entry["code"], "message": entry.get("msg", ""),
                "hint": entry.get("hint", ""),
            })
    raw_lines = [line for line in raw.lines_since() if line.strip()]
    last = raw_lines[-1] if raw_lines else f"exit status {code}"
    return DaemonUnavailable(
        f"bangerd failed to start: {last}", hint=f"see {raw.path} and {log.path}"
    )
