"""bangerd's log: one JSON object per line, whatever the daemon or its libraries emit.

Scripts and `jq` read bangerd.log line by line, so nothing may reach it as raw text:
- Python warnings (a dependency's deprecation notice, say) become one record each, with
  their category, module and source line, once per distinct warning;
- an uncaught exception, in the main thread or another, becomes a record with its traceback;
- raw writes to the process's stdout/stderr (a C library, faulthandler after a hard crash)
  go to bangerd.stderr beside the log, which the daemon's first record names.
"""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import sys
import threading
import time
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

log = logging.getLogger("banger.daemon")
warnings_log = logging.getLogger("py.warnings")

# Fields a record may carry besides its message (passed with `extra=`), by the record
# attribute that holds them; `module` is taken by logging itself, hence `warning_module`.
_EXTRA_FIELDS = {
    "code": "code", "hint": "hint", "vm": "vm",
    "category": "category", "warning_module": "module", "source": "source",
}


class JSONLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for attribute, key in _EXTRA_FIELDS.items():
            if attribute in record.__dict__:
                entry[key] = record.__dict__[attribute]
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(log_file: Path, level: str) -> None:
    handler = logging.FileHandler(log_file)
    handler.setFormatter(JSONLogFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel({"warn": "WARNING"}.get(level, level.upper()))
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def redirect_raw_output(stderr_file: Path) -> None:
    """Point fds 1 and 2 at `stderr_file` (appending), so that nothing but the JSON handler
    writes to the log, and a hard crash's dump (faulthandler) still lands somewhere."""
    fd = os.open(stderr_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)
    faulthandler.enable(file=sys.stderr)


def route_warnings_to_log() -> None:
    """Every Python warning becomes one log record (instead of text on stderr)."""
    warnings.showwarning = _log_warning


def route_crashes_to_log() -> None:
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


_seen_warnings: set[tuple[str, str, str, int]] = set()


def _log_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int,
    file: TextIO | None = None, line: str | None = None,
) -> None:
    # Python's default filter already shows a warning once per place; `-W always` (or a
    # module that resets the registry) would repeat it on every call, and the log is not
    # the place for that.
    key = (category.__name__, str(message), filename, lineno)
    if key in _seen_warnings:
        return
    _seen_warnings.add(key)
    warnings_log.warning(
        str(message),
        extra={
            "category": category.__name__,
            "warning_module": _module_named_by(filename),
            "source": f"{filename}:{lineno}",
        },
    )


def _module_named_by(filename: str) -> str:
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) == filename:
            return name
    return Path(filename).stem


def _log_uncaught(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    log.critical("bangerd crashed: %s", value, exc_info=(kind, value, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None:
        return
    name = args.thread.name if args.thread else "?"
    log.critical(
        "thread %s crashed: %s", name, args.exc_value,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
