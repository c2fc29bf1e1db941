"""`banger vm exec` and `banger vm cp` (cli/guestcp.py): commands and files through banger's
guest agent, without ssh (loaded only when one of them runs)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from banger.cli.context import Context
from banger.cli.guestcp import copy
from banger.cli.spec import VMS, Arg, Command, Opt, echo
from banger.core.errors import InvalidInput


def _exec(
    ctx: Context, name: str, env: list[str] | None, cwd: str | None, user: str | None,
    timeout: float, command: tuple[str, ...],
) -> None:
    """Run COMMAND (after `--`) in a running VM through banger's guest agent, without ssh;
    exit with its status. Its stdin is this command's stdin when that is not a terminal.

      banger vm exec dev -- make test
      banger vm exec dev --env CI=1 --cwd /root/repo -- ./build.sh"""
    if not command:
        raise InvalidInput("give the command after `--`", hint="banger vm exec NAME -- CMD ...")
    variables = {}
    for pair in env or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--env {pair!r} is not K=V")
        variables[key] = value
    stdin = b"" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read()

    def to(stream: object) -> Callable[[bytes], None]:
        def write(data: bytes) -> None:
            buffer = stream.buffer  # type: ignore[attr-defined]
            buffer.write(data)
            buffer.flush()
        return write

    result = ctx.client.exec_vm(
        name, list(command), env=variables, cwd=cwd, user=user, stdin=stdin, timeout=timeout,
        on_stdout=to(sys.stdout), on_stderr=to(sys.stderr),
    )
    if result.get("timed_out"):
        echo(f"error: the command was killed after {timeout:g}s (--timeout)", err=True)
    if result.get("signal") is not None:
        sys.exit(128 + int(result["signal"]))
    sys.exit(int(result.get("exit_code") or 0))


exec_command = Command("exec", _exec, [
    Arg("name", complete=VMS),
    Opt("--env", dest="env", repeat=True, metavar="K=V", help="Set a variable (repeatable)."),
    Opt("--cwd", metavar="DIR", help="Run in this guest directory (default: the user's home)."),
    Opt("--user", metavar="USER", help="Run as this guest user (default: root)."),
    Opt("--timeout", type=float, default=0, metavar="SECONDS",
        help="Kill the command after this long (default: never)."),
], trailing=True)
cp_command = Command("cp", copy, [Arg("src"), Arg("dst")])
