"""The VM state machine: which operations each state allows, judged on the state the VMM
process makes real."""

from __future__ import annotations

import pytest

from banger.core.models import VMState
from banger.core.vmstates import ALIVE_STATES, ALLOWED, allows, effective_state

ALL = list(VMState)


@pytest.mark.parametrize("recorded", ALL)
def test_a_vm_whose_vmm_is_gone_is_stopped_or_never_started(recorded: VMState) -> None:
    state = effective_state(recorded, alive=False)
    assert state == (recorded if recorded == VMState.CREATED else VMState.STOPPED)


@pytest.mark.parametrize("recorded", ALL)
def test_a_live_vmm_behind_a_stopped_record_is_running(recorded: VMState) -> None:
    state = effective_state(recorded, alive=True)
    assert state in ALIVE_STATES
    if recorded in (VMState.PAUSED, VMState.ERROR, VMState.RUNNING):
        assert state == recorded


@pytest.mark.parametrize("recorded", ALL)
@pytest.mark.parametrize("alive", [True, False])
def test_start_resize_and_delete_need_a_stopped_vmm_and_the_rest_a_live_one(
    recorded: VMState, alive: bool
) -> None:
    for operation in ("start", "resize", "delete"):
        assert allows(operation, recorded, alive) is not alive
    for operation in ("pause", "resume", "kill"):
        assert allows(operation, recorded, alive) is alive


def test_snapshot_and_login_need_a_running_guest() -> None:
    assert allows("snapshot", VMState.RUNNING, True)
    assert not allows("snapshot", VMState.PAUSED, True)
    assert not allows("snapshot", VMState.RUNNING, False)
    assert allows("login", VMState.ERROR, True)  # to look at what went wrong
    assert not allows("login", VMState.PAUSED, True)
    assert not allows("login", VMState.STARTING, True)
    assert set(ALLOWED) == {
        "start", "resize", "delete", "pause", "resume", "kill", "snapshot", "login",
    }
