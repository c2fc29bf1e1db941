"""The Connect protocol's framing: envelopes, end of stream, errors, timeouts."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from banger.core.connect import (
    END_STREAM,
    EnvelopeReader,
    RPCError,
    decode,
    end_of_stream,
    envelope,
    timeout_seconds,
)


def test_an_envelope_is_flag_length_and_json() -> None:
    framed = envelope({"a": 1})
    assert framed[0] == 0
    assert struct.unpack(">I", framed[1:5])[0] == len(framed) - 5
    assert json.loads(framed[5:]) == {"a": 1}


def test_end_of_stream_carries_the_error() -> None:
    framed = end_of_stream(RPCError("not_found", "gone"))
    assert framed[0] == END_STREAM
    assert json.loads(framed[5:]) == {"error": {"code": "not_found", "message": "gone"}}
    assert json.loads(end_of_stream()[5:]) == {}


@given(st.lists(st.dictionaries(st.text(max_size=5), st.integers()), max_size=4),
       st.integers(min_value=1, max_value=7))
def test_the_reader_finds_messages_whatever_the_pieces(
    messages: list[dict[str, int]], piece: int,
) -> None:
    data = b"".join(envelope(m) for m in messages) + end_of_stream()
    reader = EnvelopeReader()
    found = []
    for start in range(0, len(data), piece):
        found += reader.feed(data[start:start + piece])
    assert found == messages
    assert reader.ended and not reader.partial


def test_the_reader_refuses_compressed_and_huge_messages() -> None:
    with pytest.raises(RPCError, match="compressed"):
        EnvelopeReader().feed(b"\x01" + struct.pack(">I", 2) + b"{}")
    with pytest.raises(RPCError) as info:
        EnvelopeReader().feed(b"\x00" + struct.pack(">I", 1 << 30))
    assert info.value.code == "resource_exhausted"


def test_errors_have_http_statuses_and_known_codes() -> None:
    assert RPCError("not_found", "x").http_status == 404
    assert RPCError("unimplemented", "x").http_status == 501
    with pytest.raises(ValueError):
        RPCError("nope", "x")


def test_decode_and_timeouts() -> None:
    assert decode(b"") == {}
    with pytest.raises(RPCError, match="JSON object"):
        decode(b"[1]")
    assert timeout_seconds(None) is None
    assert timeout_seconds("1500") == 1.5
    with pytest.raises(RPCError):
        timeout_seconds("-1")
