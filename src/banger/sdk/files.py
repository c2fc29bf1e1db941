"""`sb.files`: the guest's files through banger's guest agent (no ssh). Paths are
absolute guest paths."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from banger.client import Client

Hints = Callable[[], AbstractContextManager[None]]


class Files:
    def __init__(self, client: Client, vm: str, hints: Hints) -> None:
        self._client = client
        self._vm = vm
        self._hints = hints

    def read(self, path: str) -> bytes:
        with self._hints():
            return self._client.read_file(self._vm, path)

    def read_text(self, path: str) -> str:
        return self.read(path).decode()

    def write(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        """Replace the file at `path` (atomically: readers see the old or the new content,
        never a mix); a str is written as UTF-8. The directory must exist."""
        content = data.encode() if isinstance(data, str) else data
        with self._hints():
            self._client.write_file(self._vm, path, content, mode)
