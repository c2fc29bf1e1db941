"""POSIX access ACLs in their extended-attribute form (`system.posix_acl_access`), to let
one user open a device (`/dev/net/tun`) without changing its mode for everybody. Pure: the
bytes in, the bytes out; host/usernet.py reads and writes the attribute."""

from __future__ import annotations

import struct
from dataclasses import dataclass

XATTR = "system.posix_acl_access"
_VERSION = 2
_UNDEFINED_ID = 0xFFFFFFFF
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_ENTRY = struct.Struct("<HHI")


@dataclass(frozen=True, order=True)
class Entry:
    tag: int
    id: int
    perm: int


def parse(raw: bytes) -> list[Entry]:
    if len(raw) < 4 or struct.unpack_from("<I", raw)[0] != _VERSION:
        raise ValueError("not a version 2 POSIX ACL")
    return [Entry(tag, ident, perm)
            for tag, perm, ident in _ENTRY.iter_unpack(raw[4:])]


def render(entries: list[Entry]) -> bytes:
    return struct.pack("<I", _VERSION) + b"".join(
        _ENTRY.pack(e.tag, e.perm, e.id) for e in sorted(entries)
    )


def from_mode(mode: int) -> list[Entry]:
    return [Entry(USER_OBJ, _UNDEFINED_ID, (mode >> 6) & 7),
            Entry(GROUP_OBJ, _UNDEFINED_ID, (mode >> 3) & 7),
            Entry(OTHER, _UNDEFINED_ID, mode & 7)]


def with_user(entries: list[Entry], uid: int, perm: int) -> list[Entry]:
    """`entries` with `uid` granted `perm`, and the mask widened to let it through."""
    kept = [e for e in entries if not (e.tag == USER and e.id == uid) and e.tag != MASK]
    kept.append(Entry(USER, uid, perm))
    return _masked(kept)


def without_user(entries: list[Entry], uid: int) -> list[Entry] | None:
    """`entries` without `uid`'s entry; None when only the mode's three entries would be
    left (then the attribute goes away)."""
    kept = [e for e in entries if not (e.tag == USER and e.id == uid) and e.tag != MASK]
    if not any(e.tag in (USER, GROUP) for e in kept):
        return None
    return _masked(kept)


def user_perm(entries: list[Entry], uid: int) -> int | None:
    return next((e.perm for e in entries if e.tag == USER and e.id == uid), None)


def group_obj_perm(entries: list[Entry]) -> int:
    return next(e.perm for e in entries if e.tag == GROUP_OBJ)


def _masked(entries: list[Entry]) -> list[Entry]:
    mask = 0
    for entry in entries:
        if entry.tag in (USER, GROUP_OBJ, GROUP):
            mask |= entry.perm
    return [*entries, Entry(MASK, _UNDEFINED_ID, mask)]
