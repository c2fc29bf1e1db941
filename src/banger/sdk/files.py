"""`sb.files`: the guest's files through banger's guest agent (no ssh). Paths are
absolute guest paths; a missing one raises GuestPathNotFound, naming it."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from contextlib import AbstractContextManager

from banger.client import Client
from banger.core.errors import GuestPathNotFound
from banger.core.guestapi import FileEntry

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

    def write(
        self, path: str, data: bytes | str, mode: int = 0o644, owner: str | None = None,
    ) -> None:
        """Replace the file at `path` (atomically: readers see the old or the new content,
        never a mix); a str is written as UTF-8. `owner`: "USER" or "USER:GROUP" (default
        root). The directory must exist (`mkdir` makes it)."""
        content = data.encode() if isinstance(data, str) else data
        with self._hints():
            self._client.write_file(self._vm, path, content, mode, owner)

    def list(self, path: str, depth: int = 1) -> builtins.list[FileEntry]:
        """The entries under the directory `path`, `depth` levels down (symlinks are
        listed, not followed)."""
        with self._hints():
            return self._client.list_files(self._vm, path, depth)

    def stat(self, path: str) -> FileEntry:
        with self._hints():
            return self._client.stat_file(self._vm, path)

    def exists(self, path: str) -> bool:
        try:
            self.stat(path)
        except GuestPathNotFound:
            return False
        return True

    def mkdir(self, path: str, mode: int = 0o755) -> FileEntry:
        """Make the directory `path` and its missing parents (an existing one is fine)."""
        with self._hints():
            return self._client.make_dir(self._vm, path, mode)

    def remove(self, path: str, recursive: bool = False) -> None:
        """Remove a file, or a directory: an empty one, or with `recursive` all of it."""
        with self._hints():
            self._client.remove_file(self._vm, path, recursive)

    def rename(self, source: str, destination: str) -> FileEntry:
        with self._hints():
            return self._client.rename_file(self._vm, source, destination)
