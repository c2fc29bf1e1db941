"""Errors raised through a Sandbox carry hints for programs, not CLI commands."""

from __future__ import annotations

import pytest

from banger.core import errors
from banger.core.models import VMState
from banger.sdk.hints import program_hints, sdk_hint


@pytest.mark.parametrize(("state", "hint"), [
    (VMState.STOPPED, "call sb.start()"),
    (VMState.PAUSED, "call sb.resume()"),
    (VMState.RUNNING, "call sb.stop() first"),
])
def test_an_invalid_state_hint_says_which_call_fixes_it(state: VMState, hint: str) -> None:
    error = errors.InvalidState("VM 'dev' is not running", hint="banger vm start dev")
    assert hint in (sdk_hint(error, lambda: state) or "")


def test_an_unknown_state_keeps_the_daemons_hint() -> None:
    error = errors.InvalidState("busy", hint="banger vm start dev")
    with pytest.raises(errors.InvalidState) as raised, program_hints(lambda: None):
        raise error
    assert raised.value.hint == "banger vm start dev"


def test_the_error_keeps_its_class_code_and_message() -> None:
    with pytest.raises(errors.VMNotFound) as raised, program_hints(lambda: None):
        raise errors.VMNotFound("no VM named 'x'")
    assert (raised.value.code, raised.value.message) == ("vm_not_found", "no VM named 'x'")
    assert "banger.Sandbox.list()" in raised.value.hint


def test_other_errors_pass_unchanged() -> None:
    with pytest.raises(errors.DiskFull) as raised, program_hints(lambda: None):
        raise errors.DiskFull("full")
    assert raised.value.hint == errors.DiskFull.default_hint


def test_cli_hints_are_untouched() -> None:
    assert "banger vm list" in errors.VMNotFound("x").hint
