"""`banger vm exec` and `banger vm cp`: commands and files through banger's guest agent,
without ssh (loaded only when one of them runs)."""

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


def _cp(ctx: Context, src: str, dst: str) -> None:
    """Copy a file into or out of a running VM through banger's guest agent, one side
    written NAME:PATH (an absolute guest path; a DST ending in / keeps the file's name).

      banger vm cp ./build.sh dev:/root/
      banger vm cp dev:/var/log/syslog ./syslog"""
    from_guest, to_guest = _guest_side(src), _guest_side(dst)
    if (from_guest is None) == (to_guest is None):
        raise InvalidInput("give exactly one side as NAME:PATH",
                           hint="banger vm cp FILE NAME:/PATH, or banger vm cp NAME:/PATH FILE")
    if to_guest is not None:
        name, guest_path = to_guest
        try:
            with open(src, "rb") as f:
                data = f.read()
                mode = os.fstat(f.fileno()).st_mode & 0o7777
        except OSError as exc:
            raise InvalidInput(f"cannot read {src}: {exc.strerror}") from None
        if guest_path.endswith("/"):
            guest_path += os.path.basename(src)
        ctx.client.write_file(name, guest_path, data, mode)
        return
    assert from_guest is not None
    name, guest_path = from_guest
    data = ctx.client.read_file(name, guest_path)
    target = dst
    if os.path.isdir(target):
        target = os.path.join(target, os.path.basename(guest_path))
    try:
        with open(target, "wb") as f:
            f.write(data)
    except OSError as exc:
        raise InvalidInput(f"cannot write {target}: {exc.strerror}") from None


def _guest_side(arg: str) -> tuple[str, str] | None:
    """(NAME, PATH) of `NAME:PATH`; None for a local path (which may hold a colon only
    after a slash, as in ./a:b)."""
    name, sep, path = arg.partition(":")
    if not sep or not name or "/" in name:
        return None
    return name, path


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
cp_command = Command("cp", _cp, [Arg("src"), Arg("dst")])
