"""Text that comes from a guest (agent errors, console lines, ssh's stderr), made safe to show
on the user's terminal: a guest must not be able to move the cursor, retitle the window,
rewrite what was printed before, or answer-back through escape sequences.

Control characters other than newline and tab are shown as `\\xNN`; a serial console's
CRLF line endings become plain newlines first."""

from __future__ import annotations

import re

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def neutralize(text: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text.replace("\r\n", "\n"))
