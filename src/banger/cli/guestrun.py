"""`banger vm run -- CMD`'s command, through banger's guest agent (loaded only then)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from banger.cli.context import Context
from banger.cli.spec import echo
from banger.core.errors import GuestAgentUnavailable


def run_command(ctx: Context, name: str, command: Sequence[str], cwd: str | None) -> int:
    """Run `command` through the guest agent (over ssh in a VM without one), its output on
    this process's; its exit status as a shell reports it (128+N for signal N). Its stdin
    is this process's stdin when that is not a terminal (read whole first). Ctrl-C ends the
    request, and the daemon kills the command: 130."""
    import base64

    stdin = b"" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read()
    # An ExecVM body by hand, as `banger vm exec` builds its own (see cli/guestproc.py).
    body = {"argv": list(command), "cwd": cwd, "stdin": base64.b64encode(stdin).decode()}
    try:
        result = ctx.client._exec_vm_wire(name, body, _to(sys.stdout), _to(sys.stderr))
    except KeyboardInterrupt:
        return 130
    except GuestAgentUnavailable as exc:  # nothing ran
        from banger.cli.sshexec import run_ssh, ssh_argv

        echo(f"warning: {exc.message}: running the command over ssh", err=True)
        return run_ssh(ssh_argv(ctx.client.vm_access(name), command, cwd=cwd,
                                interactive=False))
    if result.get("signal") is not None:
        return 128 + int(result["signal"])
    return int(result.get("exit_code") or 0)


def _to(stream: object) -> Callable[[bytes], None]:
    def write(data: bytes) -> None:
        buffer = stream.buffer  # type: ignore[attr-defined]
        buffer.write(data)
        buffer.flush()
    return write
