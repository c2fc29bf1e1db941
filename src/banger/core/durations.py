"""Human durations ("10s", "30m", "2h", "1h30m", "1.5h"; a bare number is seconds)."""

from __future__ import annotations

import re

from banger.core.errors import InvalidInput

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?", re.IGNORECASE)
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(text: str, *, what: str = "duration") -> float:
    """Seconds in `text`; positive, or InvalidInput naming `what`."""
    compact = text.strip().replace(" ", "")
    position, total = 0, 0.0
    while position < len(compact):
        match = _PART.match(compact, position)
        if match is None or (match.group(2) is None and match.end() != len(compact)):
            raise InvalidInput(
                f"invalid {what} {text!r}", hint="use a number with a unit, e.g. 10s, 30m, 2h"
            )
        unit = match.group(2).lower() if match.group(2) else None
        total += float(match.group(1)) * _SECONDS[unit]
        position = match.end()
    if total <= 0:
        raise InvalidInput(f"invalid {what} {text!r}: must be positive")
    return total


def format_duration(seconds: float) -> str:
    whole = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    if whole or not parts:
        parts.append(f"{whole}s")
    return "".join(parts)
