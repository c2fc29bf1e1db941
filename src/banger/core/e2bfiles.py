"""Guest file facts for the E2B-compatible endpoint, without I/O: the `find -printf` line
banger runs in the guest to list or stat paths, its parsing into envd's EntryInfo (proto3
JSON), and the events a polling directory watch reports between two listings."""

from __future__ import annotations

import shlex
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# NUL-separated fields: names and link targets may hold any other byte.
_FIELDS = ("type", "size", "mode", "owner", "group", "mtime", "path", "target")
_PRINTF = r"%y\0%s\0%m\0%u\0%g\0%T@\0%p\0%l\0"
_TYPES = {"f": "FILE_TYPE_FILE", "d": "FILE_TYPE_DIRECTORY", "l": "FILE_TYPE_SYMLINK"}
_MODE_CHAR = {"f": "-", "d": "d", "l": "l"}
MISSING_MARK = "banger-e2b: no such path"


@dataclass(frozen=True)
class Entry:
    kind: str  # find's %y letter
    size: int
    mode: int
    owner: str
    group: str
    mtime: float
    path: str
    target: str

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1] or "/"

    def info(self) -> dict[str, Any]:
        """envd's EntryInfo."""
        permissions = _MODE_CHAR.get(self.kind, "?") + stat.filemode(self.mode)[1:]
        info: dict[str, Any] = {
            "name": self.name,
            "type": _TYPES.get(self.kind, "FILE_TYPE_UNSPECIFIED"),
            "path": self.path,
            "size": str(self.size),
            "mode": self.mode,
            "permissions": permissions,
            "owner": self.owner,
            "group": self.group,
            "modifiedTime": datetime.fromtimestamp(self.mtime, UTC).isoformat().replace(
                "+00:00", "Z"),
        }
        if self.kind == "l":
            info["symlinkTarget"] = self.target
        return info


def listing_command(path: str, depth: int) -> str:
    """The shell command printing `path`'s entries `depth` levels down (0: `path` itself),
    or MISSING_MARK on stderr with status 2 when it does not exist."""
    bounds = "-maxdepth 0" if depth == 0 else f"-mindepth 1 -maxdepth {depth}"
    quoted = shlex.quote(path)
    return (f"if [ ! -e {quoted} ] && [ ! -L {quoted} ]; then echo '{MISSING_MARK}' >&2; "
            f"exit 2; fi; exec find {quoted} {bounds} -printf '{_PRINTF}'")


def parse_listing(output: bytes) -> list[Entry]:
    fields = output.split(b"\0")
    if fields and fields[-1] == b"":
        fields.pop()
    if len(fields) % len(_FIELDS):
        raise ValueError("truncated find output")
    entries = []
    for start in range(0, len(fields), len(_FIELDS)):
        raw = dict(zip(_FIELDS, (f.decode("utf-8", "replace")
                                 for f in fields[start:start + len(_FIELDS)]), strict=True))
        entries.append(Entry(
            kind=raw["type"], size=int(raw["size"]), mode=int(raw["mode"], 8),
            owner=raw["owner"], group=raw["group"], mtime=float(raw["mtime"]),
            path=raw["path"], target=raw["target"],
        ))
    return entries


def watch_events(
    root: str, before: dict[str, Entry], after: dict[str, Entry],
) -> list[dict[str, Any]]:
    """envd FilesystemEvents between two listings of the watched dir, by path; names are
    relative to `root`."""
    events = []

    def event(path: str, kind: str) -> None:
        name = path[len(root.rstrip("/")) + 1:] if path.startswith(root.rstrip("/") + "/") \
            else path
        events.append({"name": name, "type": kind})

    for path, entry in after.items():
        old = before.get(path)
        if old is None:
            event(path, "EVENT_TYPE_CREATE")
        elif (old.size, old.mtime) != (entry.size, entry.mtime) and entry.kind != "d":
            event(path, "EVENT_TYPE_WRITE")
        elif old.mode != entry.mode:
            event(path, "EVENT_TYPE_CHMOD")
    for path in before:
        if path not in after:
            event(path, "EVENT_TYPE_REMOVE")
    return events
