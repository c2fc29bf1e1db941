"""The file operations of banger-agent's channel beyond read and write (core/agentframe.py
has the frames): list, stat, mkdir, remove, rename, and unpacking a tar into a directory.

* LIST (header: path, depth) is answered by ENTRIES frames, then DONE. Depth 0 is the
  path itself (a stat), n the entries down to n levels below it. Symlinks are never
  followed. Each ENTRIES frame holds whole entries, so the host decodes frame by frame and
  the agent never holds more than one frame of a listing.
* MKDIR (path, octal mode) works like mkdir -p and answers the directory's entry (ENTRIES)
  and DONE; RENAME (source, destination) answers the destination's entry the same way;
  REMOVE (path, recursive 0/1) answers DONE.
* UNTAR (dir) is followed by DATA frames of a tar stream and DATA_END, as a file write is:
  the agent makes the directory, pipes the stream into the guest's `tar -x`, and answers
  DONE once tar succeeded (the directory tar is the guest's own: the agent stays small).

An entry is ENTRY_FIELDS NUL-terminated fields: type, octal mode, uid, gid, size, mtime,
owner, group (names, empty when the guest has none), path, symlink target (empty for
others). No path can hold a NUL. Nothing here performs I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from banger.core.agentframe import FrameError, records

ENTRY_FIELDS = 10
ENTRY_TYPES = ("file", "dir", "symlink", "other")
# How deep a listing may go: the agent keeps one directory open per level.
MAX_DEPTH = 64


@dataclass(frozen=True)
class Entry:
    """One path in the guest as the agent saw it with lstat."""

    path: str
    type: str
    size: int
    mode: int
    uid: int
    gid: int
    owner: str
    group: str
    mtime: float
    target: str | None

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rpartition("/")[2] or "/"


def list_header(path: str, depth: int) -> bytes:
    if not 0 <= depth <= MAX_DEPTH:
        raise ValueError(f"depth must be 0 to {MAX_DEPTH}")
    return records(path=path, depth=str(depth))


def mkdir_header(path: str, mode: int) -> bytes:
    if not 0 <= mode <= 0o7777:
        raise ValueError(f"mode {mode:o} is not a file mode")
    return records(path=path, mode=f"{mode:o}")


def remove_header(path: str, recursive: bool) -> bytes:
    return records(path=path, recursive="1" if recursive else "0")


def rename_header(source: str, destination: str) -> bytes:
    return records(source=source, destination=destination)


def untar_header(directory: str) -> bytes:
    return records(dir=directory)


def parse_entries(payload: bytes) -> list[Entry]:
    """The entries of one ENTRIES frame."""
    if not payload:
        return []
    fields = payload.split(b"\0")
    if fields[-1] != b"" or (len(fields) - 1) % ENTRY_FIELDS:
        raise FrameError("an ENTRIES frame that is not whole entries")
    entries = []
    for at in range(0, len(fields) - 1, ENTRY_FIELDS):
        kind, mode, uid, gid, size, mtime, owner, group, path, target = (
            field.decode(errors="surrogateescape") for field in fields[at:at + ENTRY_FIELDS]
        )
        if kind not in ENTRY_TYPES or not path.startswith("/"):
            raise FrameError(f"an entry of type {kind[:20]!r} at {path[:80]!r}")
        try:
            entries.append(Entry(
                path=path, type=kind, size=int(size), mode=int(mode, 8), uid=int(uid),
                gid=int(gid), owner=owner or uid, group=group or gid, mtime=float(mtime),
                target=target if kind == "symlink" else None,
            ))
        except ValueError as exc:
            raise FrameError(f"an entry with a bad number: {exc}") from None
    return entries
