"""Human sizes ("8G", "512M", "1.5GiB") to bytes and back."""

from __future__ import annotations

import re

from banger.core.errors import InvalidInput

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}

GIB = 1024**3
MIB = 1024**2


def parse_size(text: str | int, *, what: str = "size") -> int:
    """Parse a size; suffixes are binary (G = GiB), a bare number is bytes."""
    if isinstance(text, int):
        value = text
    else:
        match = _SIZE.match(text)
        if not match:
            raise InvalidInput(
                f"invalid {what} {text!r}", hint="use a number with a suffix, e.g. 8G or 512M"
            )
        number, unit, _ = match.groups()
        value = int(float(number) * 1024 ** _POWERS[unit.lower()])
    if value <= 0:
        raise InvalidInput(f"invalid {what} {text!r}: must be positive")
    return value


def format_size(num_bytes: int) -> str:
    for unit, power in (("T", 4), ("G", 3), ("M", 2), ("K", 1)):
        scale = 1024**power
        if num_bytes >= scale:
            value = num_bytes / scale
            return f"{value:.0f}{unit}" if value == int(value) else f"{value:.1f}{unit}"
    return f"{num_bytes}B"
