"""The VM state machine: what each recorded state means for the daemon.

A VM is `created`, then `starting` until ssh answers, `running` (or `paused`), `stopping`
while it shuts down, and `stopped`; `error` is a guest that booted but never became usable
(kept for `vm logs`). The record can lag the VMM process (a daemon crash, a guest powering
itself off), so the daemon checks the process and moves the record with these rules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from banger.core.models import VMState

# A VMM process may be running: one that is gone means the guest stopped.
ALIVE_STATES = frozenset({
    VMState.STARTING, VMState.RUNNING, VMState.PAUSED, VMState.STOPPING, VMState.ERROR
})
# The supervisor watches these for a guest that powered itself off.
SUPERVISED_STATES = frozenset({VMState.RUNNING, VMState.PAUSED, VMState.ERROR})
# A live VMM found in one of these after a daemon restart is adopted as running (its start or
# stop was cut short); paused and error VMs keep their state.
ADOPTED_AS_RUNNING = frozenset({
    VMState.STARTING, VMState.STOPPING, VMState.CREATED, VMState.STOPPED
})
# A client may ssh into these (ERROR: to look at what went wrong).
REACHABLE_STATES = frozenset({VMState.RUNNING, VMState.ERROR})
# In use, whatever the process says: deleting their image is refused.
ACTIVE_STATES = frozenset({
    VMState.STARTING, VMState.RUNNING, VMState.PAUSED, VMState.STOPPING
})

# Where the VMM process is gone (or never ran).
STOPPED_STATES = frozenset({VMState.CREATED, VMState.STOPPED})

Operation = Literal["start", "resize", "delete", "pause", "resume", "kill", "snapshot", "login"]

# The states from which each operation may proceed, by effective state (below). `stop` is
# not here: it succeeds from any state (a stopped VM is just marked stopped again), and
# `delete --force` halts a live VM first.
ALLOWED: Mapping[Operation, frozenset[VMState]] = {
    "start": STOPPED_STATES,
    "resize": STOPPED_STATES,  # vCPUs, memory and the work disk change only while stopped
    "delete": STOPPED_STATES,
    "pause": ALIVE_STATES,  # pause and resume are idempotent on a live VM
    "resume": ALIVE_STATES,
    "kill": ALIVE_STATES,
    "snapshot": frozenset({VMState.RUNNING}),
    "login": REACHABLE_STATES,
}


def effective_state(recorded: VMState, alive: bool) -> VMState:
    """What a VM is, given whether its VMM process lives: a live-looking record whose process
    is gone is stopped, and a live process behind a stopped-looking record is running (what
    the supervisor makes of both)."""
    if not alive:
        return VMState.STOPPED if recorded in ALIVE_STATES else recorded
    return VMState.RUNNING if recorded in STOPPED_STATES else recorded


def allows(operation: Operation, recorded: VMState, alive: bool) -> bool:
    return effective_state(recorded, alive) in ALLOWED[operation]
