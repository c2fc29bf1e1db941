"""Output helpers: progress to stderr (one live line on a TTY, plain lines otherwise),
tables and JSON to stdout."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing's: see banger.core.xdg

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from banger.core.models import ProgressEvent


class ProgressPrinter:
    def __init__(self, stream: Any = None) -> None:
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._live = False

    def __call__(self, event: ProgressEvent) -> None:
        self.show(event.stage, event.message)

    def wire(self, event: dict[str, Any]) -> None:
        """An event in its wire form (a ProgressEvent's fields)."""
        self.show(str(event.get("stage", "")), str(event.get("message", "")))

    def show(self, stage: str, message: str) -> None:
        from banger.core.terminal import neutralize

        # The spec line and stage results stay on screen; chatty build output is overwritten.
        persistent = stage in ("spec", "ready", "create", "warning") or not self._tty
        message = neutralize(message)  # may quote a guest's console or an installer
        if self._tty:
            width = 100
            text = message[:width]
            if persistent:
                self._stream.write(f"\r\033[K{text}\n")
                self._live = False
            else:
                self._stream.write(f"\r\033[K{text}")
                self._live = True
        else:
            self._stream.write(f"{message}\n")
        self._stream.flush()

    def done(self) -> None:
        if self._live:
            self._stream.write("\r\033[K")
            self._stream.flush()
            self._live = False


def print_json(value: Any) -> None:
    import dataclasses
    import json

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    elif isinstance(value, list):
        value = [
            dataclasses.asdict(v) if dataclasses.is_dataclass(v) and not isinstance(v, type)
            else v for v in value
        ]
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    for row in [list(headers), *rows]:
        line = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        sys.stdout.write(line.rstrip() + "\n")


def print_fields(pairs: Sequence[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        sys.stdout.write(f"{key + ':':<{width + 1}} {value}\n")


def iso_time(timestamp: float) -> str:
    """Local time, to the second: 2026-01-02T03:04:05."""
    from datetime import datetime

    return datetime.fromtimestamp(timestamp).isoformat(timespec="seconds")
