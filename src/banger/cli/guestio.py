"""`banger vm exec` and `banger vm cp` (cli/guestcp.py): commands and files through banger's
guest agent, without ssh (loaded only when one of them runs)."""

from __future__ import annotations

import os
import sys

from banger.cli.context import Context
from banger.cli.guestcp import copy
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
    from banger.core import api

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
    forward_stdin = interactive or (sys.stdin is not None and not sys.stdin.isatty())
    request = api.StartProcess(
        argv=list(command), env=variables, cwd=cwd, user=user,
        pty=terminal_size() if tty else None, stdin=forward_stdin, timeout=timeout,
    )
    result = run_process(ctx.client, name, request, forward_stdin)
    if result.timed_out:
        echo(f"error: the command was killed after {timeout:g}s (--timeout)", err=True)
    if result.signal is not None:
        sys.exit(128 + result.signal)
    sys.exit(result.exit_code or 0)


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
cp_command = Command("cp", copy, [Arg("src"), Arg("dst")])
