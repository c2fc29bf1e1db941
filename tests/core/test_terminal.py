from __future__ import annotations

from banger.core.terminal import neutralize


def test_escape_sequences_are_shown_not_obeyed() -> None:
    hostile = "ok\x1b]0;pwned\x07\x1b[2J\x1b[1A\rfake prompt $ \x9b31m"
    shown = neutralize(hostile)
    assert "\x1b" not in shown and "\x07" not in shown and "\r" not in shown
    assert "\x9b" not in shown
    assert shown == "ok\\x1b]0;pwned\\x07\\x1b[2J\\x1b[1A\\x0dfake prompt $ \\x9b31m"


def test_ordinary_text_is_unchanged() -> None:
    text = "line one\n\tindented — ünïcode ✓\nlast"
    assert neutralize(text) == text


def test_console_line_endings_become_newlines() -> None:
    assert neutralize("a\r\nb\r\n") == "a\nb\n"
