"""What the sandbox SDK hands back: typed, immutable results, and the text decoding of a
command's output streams."""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass

OnText = Callable[[str], object]


@dataclass(frozen=True)
class ExecResult:
    """How a command ended, with all it wrote: `exit_code`, or the `signal` that killed it
    (`timed_out`: killed by banger at the command's `timeout`). Output is text (UTF-8,
    undecodable bytes replaced); read binary files with `sb.files.read`."""

    exit_code: int | None
    signal: int | None
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class Lines:
    """Collects one output stream and hands it on line by line, without the line ending,
    so `on_stdout=print` prints what the command printed. Bytes come in chunks cut
    anywhere (a UTF-8 character or a line may span two); `finish` flushes a last
    unterminated line."""

    def __init__(self, on_line: OnText | None) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._on_line = on_line
        self._pending = ""
        self._parts: list[str] = []

    def feed(self, data: bytes) -> None:
        self._take(self._decoder.decode(data))

    def finish(self) -> str:
        """The whole text; hands on its last line if it did not end in a newline."""
        self._take(self._decoder.decode(b"", final=True))
        if self._pending and self._on_line is not None:
            self._on_line(self._pending)
        self._pending = ""
        return "".join(self._parts)

    def _take(self, text: str) -> None:
        if not text:
            return
        self._parts.append(text)
        if self._on_line is None:
            return
        *complete, self._pending = (self._pending + text).split("\n")
        for line in complete:
            self._on_line(line.removesuffix("\r"))
