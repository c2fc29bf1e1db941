"""`banger vm exec`: commands through banger's guest agent, without ssh (loaded only when it
runs; `banger vm cp` is cli/guestcp.py)."""

from __future__ import annotations

import os
import sys

from banger.cli.context import Context
from banger.cli.spec import VMS, Arg, Command, Opt, echo
from banger.core.errors import InvalidInput


def _exec(
    ctx: Context, name: str, env: list[str] | None, cwd: str | None, user: str | None,
    timeout: float, interactive: bool, tty: bool, command: tuple[str, ...],
) -> None:
    """Run COMMAND (after `--`) in a running VM through banger's guest agent, without ssh;
    exit with its status (128+N if signal N killed it). Its stdin is this command's stdin
    with -i, or when that is not a terminal; Ctrl-C sends it SIGINT. -t runs it on a
    terminal in the guest (with -i: an interactive shell).

      banger vm exec dev -- make test
      banger vm exec dev --env CI=1 --cwd /root/repo -- ./build.sh
      banger vm exec -it dev -- bash"""
    from banger.cli.guestproc import run_process, terminal_size

    if not command:
        raise InvalidInput("give the command after `--`", hint="banger vm exec NAME -- CMD ...")
    variables = {}
    for pair in env or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--env {pair!r} is not K=V")
        variables[key] = value
    if tty:
        variables.setdefault("TERM", os.environ.get("TERM") or "xterm")
    forward_stdin = interactive or _piped_stdin()
    body = {  # StartProcess's fields, checked by the daemon (cli/guestproc.py: why no class)
        "argv": list(command), "env": variables, "cwd": cwd, "user": user,
        "pty": terminal_size() if tty else None, "stdin": forward_stdin, "timeout": timeout,
    }
    result = run_process(ctx.client, name, body, forward_stdin)
    if result.get("timed_out"):
        echo(f"error: the command was killed after {timeout:g}s (--timeout)", err=True)
    if result.get("signal") is not None:
        sys.exit(128 + int(result["signal"]))
    sys.exit(int(result.get("exit_code") or 0))


def _piped_stdin() -> bool:
    """Whether our stdin is data to pass on: not a terminal, nor /dev/null (which costs a
    request or two for nothing)."""
    if sys.stdin is None or sys.stdin.isatty():
        return False
    try:
        return not os.path.samestat(os.fstat(sys.stdin.fileno()), os.stat(os.devnull))
    except (OSError, ValueError):
        return True


exec_command = Command("exec", _exec, [
    Arg("name", complete=VMS),
    Opt("--env", dest="env", repeat=True, metavar="K=V", help="Set a variable (repeatable)."),
    Opt("--cwd", metavar="DIR", help="Run in this guest directory (default: the user's home)."),
    Opt("--user", metavar="USER", help="Run as this guest user (default: root)."),
    Opt("--timeout", type=float, default=0, metavar="SECONDS",
        help="Kill the command after this long (default: never)."),
    Opt("-i", "--interactive", flag=True, help="Pass this terminal's stdin to the command."),
    Opt("-t", "--tty", flag=True, help="Run the command on a terminal (PTY) in the guest."),
], trailing=True)
