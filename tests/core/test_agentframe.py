from __future__ import annotations

import pytest

from banger.core.agentframe import (
    HELLO,
    MAX_PAYLOAD,
    ExecHeader,
    ExitStatus,
    Frame,
    FrameDecoder,
    FrameError,
    FrameType,
    after_hello,
    chunks,
    encode,
    parse_exit,
    parse_file_error,
    read_header,
    write_header,
)


def test_frames_round_trip_through_the_decoder_byte_by_byte() -> None:
    frames = [Frame(1, FrameType.STDOUT, b"out"), Frame(7, FrameType.STDIN_CLOSE),
              Frame(2**32 - 1, FrameType.ERROR, "é".encode())]
    data = b"".join(encode(f) for f in frames)
    decoder = FrameDecoder()
    got = [frame for byte in data for frame in decoder.feed(bytes([byte]))]
    assert got == frames


def test_an_oversize_frame_is_refused_on_both_ends() -> None:
    with pytest.raises(FrameError):
        encode(Frame(1, FrameType.STDOUT, b"x" * (MAX_PAYLOAD + 1)))
    header = (MAX_PAYLOAD + 1).to_bytes(4, "big") + (1).to_bytes(4, "big") + b"\x05"
    with pytest.raises(FrameError, match="at most"):
        FrameDecoder().feed(header)


def test_garbage_is_an_error_not_a_wait() -> None:
    with pytest.raises(FrameError):
        FrameDecoder().feed(b"HTTP/1.1 200 OK\r\n\r\n")
    with pytest.raises(FrameError, match="unknown frame type"):
        FrameDecoder().feed(b"\0\0\0\0\0\0\0\1\x63")


def test_large_data_is_split_into_bounded_frames() -> None:
    data = bytes(range(256)) * 1000
    encoded = chunks(3, FrameType.STDIN, data)
    assert len(encoded) == -(-len(data) // MAX_PAYLOAD)
    frames = FrameDecoder().feed(b"".join(encoded))
    assert b"".join(f.payload for f in frames) == data
    assert {f.stream for f in frames} == {3}


def test_hello_is_found_after_leftovers_of_the_line_protocol() -> None:
    assert after_hello(b"READY\nOK\n") is None
    assert after_hello(b"READY\nOK\n" + HELLO + b"rest") == b"rest"


def test_exec_header_wants_exactly_one_of_argv_and_command() -> None:
    with pytest.raises(ValueError):
        ExecHeader()
    with pytest.raises(ValueError):
        ExecHeader(argv=["true"], command="true")
    with pytest.raises(ValueError):
        ExecHeader(argv=[])
    with pytest.raises(ValueError):
        ExecHeader(argv=["env"], env={"A=B": "1"})
    payload = ExecHeader(argv=["ls", "-l"], env={"A": "1=2"}, cwd="/tmp").payload()
    assert payload == b"arg=ls\0arg=-l\0env=A=1=2\0cwd=/tmp\0"
    assert ExecHeader(command="echo hi", user="me").payload() == b"sh=echo hi\0user=me\0"
    with pytest.raises(ValueError, match="NUL"):
        ExecHeader(argv=["a\0b"]).payload()


def test_exit_status_is_a_code_or_a_signal() -> None:
    assert parse_exit(b"exit 3") == ExitStatus(exit_code=3)
    assert parse_exit(b"signal 9") == ExitStatus(signal=9)
    for bad in (b"nope", b"exit", b"exit -1", b"exit 1\n", b"signal 99999"):
        with pytest.raises(FrameError):
            parse_exit(bad)


def test_file_headers_and_errors() -> None:
    assert read_header("/etc/hostname") == b"path=/etc/hostname\0"
    assert write_header("/root/a b", 0o640) == b"path=/root/a b\0mode=640\0"
    with pytest.raises(ValueError):
        write_header("/x", 0o10000)
    with pytest.raises(ValueError):
        read_header("/x\0y")
    assert parse_file_error(b"2 cannot read /x: No such file or directory") == (
        2, "cannot read /x: No such file or directory")
    assert parse_file_error(b"odd") == (0, "odd")
