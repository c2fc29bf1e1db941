"""The programs banger installs in guests (banger-agent in Perl; banger-boot and the initrd's
/init in shell) are files of their own in banger/guest/, so their own tools can check them
(scripts/lint-guest-programs.sh). `guest_program` reads one from banger's package data and
fills in the values banger decides: paths, labels, flags, protocol words."""

from __future__ import annotations

import re
from importlib import resources

# `@NAME@`: no word of Perl or shell has this shape, so a placeholder cannot clash with the
# program's own text, and one pass fills them all (a value is never searched for another).
_PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")


def guest_program(name: str, **values: str | int) -> str:
    """banger/guest/`name` with each `@NAME@` replaced by `values[NAME]`. A placeholder
    without a value, or a value without a placeholder, is a mistake in banger: ValueError."""
    text = resources.files("banger").joinpath("guest", name).read_text(encoding="utf-8")
    wanted = set(_PLACEHOLDER.findall(text))
    if wanted != set(values):
        raise ValueError(
            f"{name} has placeholders {sorted(wanted)}, given values for {sorted(values)}"
        )
    return _PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), text)
