"""Output streams as text, line by line, whatever the chunking."""

from __future__ import annotations

from banger.sdk.results import ExecResult, Lines


def test_lines_are_handed_on_whole_without_their_ending() -> None:
    seen: list[str] = []
    lines = Lines(seen.append)
    for chunk in (b"one\ntw", b"o\r\n", b"\xc3", b"\xa9t\xc3\xa9\nlast"):
        lines.feed(chunk)
    assert seen == ["one", "two", "été"]
    assert lines.finish() == "one\ntwo\r\nété\nlast"
    assert seen == ["one", "two", "été", "last"]


def test_undecodable_bytes_are_replaced_and_no_callback_is_fine() -> None:
    lines = Lines(None)
    lines.feed(b"a\xffb\n")
    assert lines.finish() == "a\ufffdb\n"


def test_ok_means_exit_code_zero() -> None:
    assert ExecResult(0, None, "", "").ok
    assert not ExecResult(None, 9, "", "").ok
