"""Hints for programs. The daemon's hints name CLI commands (`banger vm start dev`), right
for a person at a shell; a program using the SDK is better told which call fixes it
(`sb.start()`). The error keeps its class, code and message: only its hint changes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from banger.core import errors
from banger.core.models import VMState

# The state a VM is in when its sandbox call failed, read only when the hint depends on it.
StateOf = Callable[[], VMState | None]


def sdk_hint(error: errors.BangerError, state_of: StateOf) -> str | None:
    """The hint for `error` raised by a Sandbox call; None keeps the daemon's."""
    if isinstance(error, errors.VMNotFound):
        return "it may have been deleted; banger.Sandbox.list() lists the sandboxes"
    if isinstance(error, errors.NameTaken):
        return "pass another name=, or use the existing one: banger.Sandbox.get(name)"
    if isinstance(error, errors.ImageNotFound):
        return ("banger.Client().pull_image(NAME) fetches a catalog image; "
                "banger.Client().list_images() lists the local ones")
    if isinstance(error, errors.ProcessNotFound):
        return ("sb.processes() lists the sandbox's processes; an ended one is kept until "
                "its output is read, or 60 s")
    if isinstance(error, errors.GuestPathNotFound | errors.GuestFileFailed):
        return "check the path: sb.files.list(DIRECTORY) lists what is there"
    if isinstance(error, errors.InvalidState):
        state = state_of()
        if state == VMState.PAUSED:
            return "the sandbox is paused: call sb.resume()"
        if state in (VMState.STOPPED, VMState.CREATED, VMState.ERROR):
            return "the sandbox is stopped: call sb.start()"
        if state == VMState.RUNNING:
            return "the sandbox is running: call sb.stop() first"
        return None
    if isinstance(error, errors.GuestAgentFailed):
        return ("the guest agent did not answer: sb.logs() shows the guest console; images "
                "built before the agent served exec need pulling again")
    return None


@contextmanager
def program_hints(state_of: StateOf) -> Iterator[None]:
    """Give a BangerError raised inside the block the SDK's hint for it."""
    try:
        yield
    except errors.BangerError as error:
        hint = sdk_hint(error, state_of)
        if hint is not None:
            error.hint = hint
        raise
