from __future__ import annotations

import pytest

from banger.core.programs import guest_program


def test_every_placeholder_is_filled_in_one_pass() -> None:
    # A value that looks like a placeholder stays as it is.
    script = guest_program("banger-boot.sh", SEED="@SEED@")
    assert "seed=/root/@SEED@" in script


def test_a_missing_or_an_unknown_value_is_refused() -> None:
    with pytest.raises(ValueError, match="SEED"):
        guest_program("banger-boot.sh")
    with pytest.raises(ValueError, match="NOPE"):
        guest_program("banger-boot.sh", SEED=".banger", NOPE="x")
