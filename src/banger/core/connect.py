"""The Connect RPC protocol's HTTP/1.1 framing, as the E2B SDK speaks it to a sandbox: pure
encoding and decoding, no sockets (the daemon's e2b package does the I/O).

In the protocol's own terms: a unary call is a POST whose body is one JSON message and
whose answer is one JSON message (an error is a non-2xx status with a JSON body
`{"code": "not_found", "message": ...}`). A streaming call carries "enveloped" messages in
both directions, each a flag byte, a 4-byte big-endian length and the JSON payload; the
server ends its stream with one envelope whose flag has bit 0x02 set, holding `{}` or
`{"error": {...}}`, and always answers HTTP 200 (the error travels in that last envelope)."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

END_STREAM = 0x02
COMPRESSED = 0x01
_HEADER = struct.Struct(">BI")
# A request envelope larger than this is refused (stdin pieces and requests are small).
MAX_MESSAGE = 16 * 1024 * 1024

# Connect error codes and the HTTP status a unary answer carries for each.
HTTP_STATUS = {
    "canceled": 499,
    "unknown": 500,
    "invalid_argument": 400,
    "deadline_exceeded": 504,
    "not_found": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "resource_exhausted": 429,
    "failed_precondition": 400,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "data_loss": 500,
    "unauthenticated": 401,
}


@dataclass(frozen=True)
class RPCError(Exception):
    """An error to answer in Connect's shape: `code` is one of HTTP_STATUS's keys."""

    code: str
    message: str

    def __post_init__(self) -> None:
        if self.code not in HTTP_STATUS:
            raise ValueError(f"not a Connect error code: {self.code}")

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]

    def body(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


def envelope(message: dict[str, Any], flags: int = 0) -> bytes:
    payload = json.dumps(message, separators=(",", ":")).encode()
    return _HEADER.pack(flags, len(payload)) + payload


def end_of_stream(error: RPCError | None = None) -> bytes:
    return envelope({} if error is None else {"error": error.body()}, END_STREAM)


@dataclass
class EnvelopeReader:
    """Splits a byte stream into enveloped JSON messages, whatever pieces it arrives in."""

    _buffer: bytearray = field(default_factory=bytearray)
    ended: bool = False

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """The whole messages `data` completes (an end-of-stream envelope sets `ended`)."""
        self._buffer += data
        messages = []
        while len(self._buffer) >= _HEADER.size:
            flags, length = _HEADER.unpack_from(self._buffer)
            if length > MAX_MESSAGE:
                raise RPCError("resource_exhausted", f"message of {length} bytes is too large")
            if flags & COMPRESSED:
                raise RPCError("unimplemented", "compressed messages are not supported")
            if len(self._buffer) < _HEADER.size + length:
                break
            payload = bytes(self._buffer[_HEADER.size:_HEADER.size + length])
            del self._buffer[:_HEADER.size + length]
            if flags & END_STREAM:
                self.ended = True
                continue
            messages.append(decode(payload))
        return messages

    @property
    def partial(self) -> bool:
        """Bytes of an unfinished envelope are left over."""
        return bool(self._buffer)


def decode(payload: bytes) -> dict[str, Any]:
    """A JSON message as a dict (an empty body is the empty message)."""
    if not payload.strip():
        return {}
    try:
        message = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RPCError("invalid_argument", f"message is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise RPCError("invalid_argument", "message must be a JSON object")
    return message


def timeout_seconds(header: str | None) -> float | None:
    """`Connect-Timeout-Ms` as seconds (None: absent; a malformed value is refused)."""
    if header is None:
        return None
    if not header.isdigit() or len(header) > 10:
        raise RPCError("invalid_argument", f"bad Connect-Timeout-Ms {header!r}")
    return int(header) / 1000
