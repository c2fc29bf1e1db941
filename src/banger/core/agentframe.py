"""The framed, multiplexed protocol banger-agent serves once a VM has its identity (right away
on a cold boot): exec and, later, files, many operations at once over the one channel.

A frame is ``[u32 payload length][u32 stream id][u8 type][payload]``, big-endian. Both ends
refuse a payload over MAX_PAYLOAD and an unknown type: the decoder never holds more than one
frame, so a guest that floods garbage costs the daemon one bounded buffer and a clear error.

A connection starts with the host's HELLO frame, which the agent answers with the same frame.
Whatever a channel held before (a reply of the identity step's line protocol, half a frame
from a host that went away) is skipped by scanning for that exact frame, on both ends.

An exec is one stream: OPEN_EXEC (its header) from the host, then STDIN data and
STDIN_CLOSE, at any time after; KILL (a signal number, to the process group) and RESIZE
(``COLS ROWS``, a PTY's size) at any time. The agent answers STARTED (the guest pid) once the
process is forked, STDOUT and STDERR data in the order the process wrote each (a PTY's
output is all STDOUT), STDIN_ACK (how many stdin bytes it has taken, sent whenever it has
written all it received: the host keeps at most STDIN_WINDOW bytes unacknowledged, so the
agent never holds more than that of a process that does not read), then one EXIT (``exit N``
or ``signal N``) or ERROR (UTF-8 text), which ends the stream.

A file read is READ_FILE (header: path) answered by DATA frames and DONE; a write is
WRITE_FILE (header: path, octal mode), DATA frames and DATA_END, answered by DONE once the
agent renamed its temporary file over the path (a reader never sees half a file). A file
ERROR is ``<errno> <message>``, so the host can tell a missing path from other failures.
Headers are NUL-terminated ``key=value`` records rather than
JSON: the agent is core Perl of perl-base, which has no JSON module, and no argument,
variable or path can hold a NUL. Nothing here performs I/O.
"""

from __future__ import annotations

import enum
import re
import struct
from dataclasses import dataclass, field

HEADER = struct.Struct(">IIB")
# Large enough that 20 MiB of output is ~320 frames, small enough to bound every buffer.
MAX_PAYLOAD = 64 * 1024
# Stdin bytes the host may send a process ahead of the agent's STDIN_ACK.
STDIN_WINDOW = 256 * 1024
# How much the host skips while it waits for the agent's HELLO before it gives up.
MAX_PREAMBLE = 64 * 1024
PROTOCOL = b"banger-agent/1"


class FrameType(enum.IntEnum):
    HELLO = 0
    OPEN_EXEC = 1
    STDIN = 2
    STDIN_CLOSE = 3
    KILL = 4
    STDOUT = 5
    STDERR = 6
    EXIT = 7
    ERROR = 8
    READ_FILE = 9
    WRITE_FILE = 10
    DATA = 11
    DATA_END = 12
    DONE = 13
    STARTED = 14
    RESIZE = 15
    STDIN_ACK = 16
    # Files beyond read and write (core/agentfiles.py): 20-29.
    LIST = 20
    ENTRIES = 21
    MKDIR = 22
    REMOVE = 23
    RENAME = 24
    UNTAR = 25


class FrameError(ValueError):
    """The peer sent bytes that are not a frame of this protocol."""


@dataclass(frozen=True)
class Frame:
    stream: int
    type: FrameType
    payload: bytes = b""


def encode(frame: Frame) -> bytes:
    if len(frame.payload) > MAX_PAYLOAD:
        raise FrameError(f"frame payload of {len(frame.payload)} bytes (at most {MAX_PAYLOAD})")
    return HEADER.pack(len(frame.payload), frame.stream, frame.type) + frame.payload


HELLO = encode(Frame(0, FrameType.HELLO, PROTOCOL))


def chunks(stream: int, type_: FrameType, data: bytes) -> list[bytes]:
    """`data` as encoded frames of at most MAX_PAYLOAD bytes each."""
    return [
        encode(Frame(stream, type_, data[at:at + MAX_PAYLOAD]))
        for at in range(0, len(data), MAX_PAYLOAD)
    ]


@dataclass
class FrameDecoder:
    """Feed it bytes as they arrive; it returns the complete frames."""

    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= HEADER.size:
            length, stream, kind = HEADER.unpack_from(self._buffer)
            if length > MAX_PAYLOAD:
                raise FrameError(f"frame of {length} bytes (at most {MAX_PAYLOAD})")
            try:
                type_ = FrameType(kind)
            except ValueError as exc:
                raise FrameError(f"unknown frame type {kind}") from exc
            end = HEADER.size + length
            if len(self._buffer) < end:
                break
            frames.append(Frame(stream, type_, bytes(self._buffer[HEADER.size:end])))
            del self._buffer[:end]
        return frames


def after_hello(preamble: bytes) -> bytes | None:
    """What follows the agent's HELLO in `preamble`, or None while it has not come yet."""
    at = preamble.find(HELLO)
    return None if at < 0 else preamble[at + len(HELLO):]


@dataclass(frozen=True)
class ExecHeader:
    """What to run: `argv` as is, or `command` through /bin/sh -c. `env` adds to the guest's
    login environment; `user` is a name in the guest (root by default)."""

    argv: list[str] | None = None
    command: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    user: str | None = None
    pty: tuple[int, int] | None = None  # (cols, rows): run on a new PTY of this size

    def __post_init__(self) -> None:
        if self.pty is not None:
            window_size(*self.pty)
        if (self.argv is None) == (self.command is None):
            raise ValueError("exactly one of argv and command")
        if self.argv is not None and not self.argv:
            raise ValueError("argv is empty")
        for key in self.env:
            if not key or "=" in key or "\0" in key:
                raise ValueError(f"bad environment variable name {key!r}")

    def payload(self) -> bytes:
        records = [f"arg={arg}" for arg in self.argv or []]
        if self.command is not None:
            records.append(f"sh={self.command}")
        records += [f"env={key}={value}" for key, value in self.env.items()]
        records += [f"{key}={value}" for key, value in (("cwd", self.cwd), ("user", self.user))
                    if value is not None]
        if self.pty is not None:
            records.append("pty=" + window_size(*self.pty).decode())
        if any("\0" in record for record in records):
            raise ValueError("a NUL in an argument, variable or path")
        return b"".join(record.encode() + b"\0" for record in records)


@dataclass(frozen=True)
class ExitStatus:
    """How a process ended: its exit code, or the signal that killed it."""

    exit_code: int | None = None
    signal: int | None = None


def parse_exit(payload: bytes) -> ExitStatus:
    match = re.fullmatch(rb"(exit|signal) (\d{1,3})", payload)
    if match is None:
        raise FrameError(f"an EXIT frame that is not `exit N` or `signal N`: {payload[:40]!r}")
    if match[1] == b"exit":
        return ExitStatus(exit_code=int(match[2]))
    return ExitStatus(signal=int(match[2]))


def kill_payload(signal: int) -> bytes:
    if not 1 <= signal <= 64:
        raise ValueError(f"{signal} is not a signal number")
    return str(int(signal)).encode()


def window_size(cols: int, rows: int) -> bytes:
    """A RESIZE payload (and a header's pty record)."""
    if not (1 <= cols <= 0xFFFF and 1 <= rows <= 0xFFFF):
        raise ValueError(f"a terminal of {cols}x{rows} characters")
    return f"{cols} {rows}".encode()


def parse_count(payload: bytes, what: str) -> int:
    """The number a STARTED (pid) or STDIN_ACK (bytes taken) frame carries."""
    if not re.fullmatch(rb"\d{1,18}", payload):
        raise FrameError(f"a {what} frame that is not a number: {payload[:40]!r}")
    return int(payload)


def records(**fields: str) -> bytes:
    """A header of NUL-terminated key=value records."""
    if any("\0" in value for value in fields.values()):
        raise ValueError("a NUL in a path")
    return b"".join(f"{key}={value}".encode() + b"\0" for key, value in fields.items())


def read_header(path: str) -> bytes:
    return records(path=path)


def write_header(path: str, mode: int, owner: str | None = None) -> bytes:
    """`owner`: USER[:GROUP] by name (or number), resolved in the guest; None for root."""
    if not 0 <= mode <= 0o7777:
        raise ValueError(f"mode {mode:o} is not a file mode")
    if owner is None:
        return records(path=path, mode=f"{mode:o}")
    return records(path=path, mode=f"{mode:o}", owner=owner)


def parse_file_error(payload: bytes) -> tuple[int, str]:
    """The errno and message of a file ERROR (errno 0 when the agent gave none)."""
    text = payload.decode(errors="replace")
    code, _, message = text.partition(" ")
    if code.isdigit():
        return int(code), message
    return 0, text
