"""The VM state machine: what each recorded state means for the daemon.

A VM is `created`, then `starting` until ssh answers, `running` (or `paused`), `stopping`
while it shuts down, and `stopped`; `error` is a guest that booted but never became usable
(kept for `vm logs`). The record can lag the VMM process (a daemon crash, a guest powering
itself off), so the daemon checks the process and moves the record with these rules."""

from __future__ import annotations

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
