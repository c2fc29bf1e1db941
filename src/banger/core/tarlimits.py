"""Tar streams from untrusted sources with bounded headers.

tarfile reads a GNU long-name/long-link header or a pax extended header whole into memory
before the entry it describes is seen, so a cap on entries' data never sees it: a 1.1 MB
layer of crafted headers took the daemon to 530 MiB. ``open_stream`` refuses headers over
``MAX_EXTENDED_HEADER`` for one entry before reading them (real ones carry a path and a few
xattrs: kilobytes).
"""

from __future__ import annotations

import tarfile
from typing import IO, Any

MAX_EXTENDED_HEADER = 1 << 20
# tarfile handles each extended header by recursing into the next: a chain of tiny ones
# would end in a RecursionError. A real entry has at most a long name, a long link, a pax
# header and a global one before it.
MAX_HEADER_CHAIN = 8
_EXTENDED_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE,
                   tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)


class OversizedHeader(tarfile.TarError):
    """An extended header (or a run of them) over the limits (callers already turn TarError
    into their own error: a bad layer, a bad bundle)."""


class _HeaderBudget:
    """What extended headers one archive has read: the run before the next entry, and the
    global pax headers, which tarfile keeps for the whole archive."""

    def __init__(self) -> None:
        self.chain_bytes = 0
        self.chain_length = 0
        self.global_bytes = 0

    def charge(self, info: tarfile.TarInfo) -> None:
        if info.type not in _EXTENDED_TYPES:
            self.chain_bytes = self.chain_length = 0
            return
        self.chain_bytes += info.size
        self.chain_length += 1
        if info.type == tarfile.XGLTYPE:
            self.global_bytes += info.size
        if max(self.chain_bytes, self.global_bytes) > MAX_EXTENDED_HEADER:
            raise OversizedHeader(
                f"extended tar headers of more than {MAX_EXTENDED_HEADER} bytes for one entry"
            )
        if self.chain_length > MAX_HEADER_CHAIN:
            raise OversizedHeader(f"more than {MAX_HEADER_CHAIN} extended tar headers in a row")


class _BoundedTarInfo(tarfile.TarInfo):
    def _proc_member(self, tarfile: Any) -> Any:
        budget = tarfile.__dict__.setdefault("_banger_header_budget", _HeaderBudget())
        budget.charge(self)
        return super()._proc_member(tarfile)  # type: ignore[misc]


def open_stream(stream: IO[bytes] | Any) -> tarfile.TarFile:
    """A tar reader over `stream`, read sequentially, with bounded extended headers."""
    return tarfile.open(fileobj=stream, mode="r|", errorlevel=2, tarinfo=_BoundedTarInfo)
