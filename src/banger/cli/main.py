"""`banger`: the CLI. Thin: parse, call the client, render. Errors become one `error:` line
and a `hint:` line, never a traceback (unless --debug); usage errors one `error:` line and
exit status 2."""

from __future__ import annotations

import os
import sys

from banger import __version__
from banger.cli.context import Context
from banger.cli.spec import HELP_FLAGS, Command, Group, Lazy, Opt, UsageError
from banger.core.errors import BangerError

TYPE_CHECKING = False  # not typing's: see banger.core.xdg
if TYPE_CHECKING:
    from typing import Any

PROG = "banger"

ROOT = Group(PROG, "One-command development sandboxes on microVMs.", options=[
    Opt("--host", "-H", metavar="URL", help="The bangerd to use: ssh://[USER@]HOST[:PORT] "
        "(a remote user's, through ssh) or unix:// (default: BANGER_HOST, the context)."),
    Opt("--context", "-c", metavar="NAME", help="Use a named context (`banger context ls`)."),
    Opt("--debug", flag=True, help="Show tracebacks for errors."),
    Opt("--version", flag=True, help="Show the version and exit."),
])
# Only the invoked noun's module is imported, which keeps every command (and shell
# completion) fast. The short help is repeated here so `banger --help` imports none of them
# (tests/cli/test_cli.py checks it matches the module's).
for _name, _target, _help in (
    ("vm", "banger.cli.vm:vm", "Create, run and manage VMs."),
    ("image", "banger.cli.image:image", "Manage images (root filesystem + kernel + initrd)."),
    ("kernel", "banger.cli.kernel:kernel",
     "Manage kernels (catalog kernels from Debian, or registered files)."),
    ("daemon", "banger.cli.daemon:daemon", "Manage bangerd (started automatically on first use)."),
    ("doctor", "banger.cli.doctor:doctor", "Check that this host can run banger VMs."),
    ("ssh-config", "banger.cli.sshconfig:ssh_config",
     "Make plain `ssh NAME.vm` work: print or install an Include for ~/.ssh/config."),
    ("system", "banger.cli.system:system",
     "Prepare this host for ordinary users (run as root, once)."),
    ("context", "banger.cli.contexts:context",
     "Name remote bangerds (ssh://USER@HOST) and choose the one to use."),
    ("mcp", "banger.cli.mcp:mcp", "Serve banger's sandboxes to MCP clients (coding agents)."),
    ("e2b", "banger.cli.e2b:e2b", "Serve the e2b SDK's API from banger VMs."),
    ("completion", "banger.cli.completion:completion", "Print the completion script for SHELL."),
):
    ROOT.add(Lazy(_name, _target, _help))


def dispatch(ctx: Context, argv: list[str]) -> Any:
    """Walk the groups to the command, then let it parse the rest of argv."""
    node: Command | Group = ROOT
    prog = PROG
    args = list(argv)
    while isinstance(node, Group):
        if not args:
            sys.stderr.write(node.format_help(prog))
            sys.exit(2)
        word = args.pop(0)
        if word in HELP_FLAGS:
            sys.stdout.write(node.format_help(prog))
            return 0
        if node is ROOT and word == "--debug":
            ctx.debug = True
            continue
        if node is ROOT and word.split("=", 1)[0] in ("--host", "-H", "--context", "-c"):
            _root_value(ctx, word, args, prog)
            continue
        if node is ROOT and word == "--version":
            print(f"{PROG}, version {__version__}")
            return 0
        if word.startswith("-"):
            raise UsageError(f"unknown option {word}", prog)
        child = node.child(word)
        if child is None:
            raise UsageError(_unknown_command(node, word, prog), prog)
        node, prog = child, f"{prog} {word}"
    return node.run(ctx, prog, args)


def _root_value(ctx: Context, word: str, args: list[str], prog: str) -> None:
    """--host URL / --context NAME (also as --host=URL): which daemon the command uses."""
    flag, equals, value = word.partition("=")
    if not equals:
        if not args:
            raise UsageError(f"{flag} needs a value", prog)
        value = args.pop(0)
    if flag in ("--host", "-H"):
        ctx.host = value
    else:
        ctx.context = value
    if ctx.host and ctx.context:
        raise UsageError("--host and --context cannot be used together", prog)


def _unknown_command(group: Group, word: str, prog: str) -> str:
    import difflib

    message = f"no command {word!r} in `{prog}`"
    close = difflib.get_close_matches(word, group.children, n=1)
    return f"{message} (did you mean {close[0]!r}?)" if close else message


def main(argv: list[str] | None = None) -> Any:
    if "_BANGER_COMPLETE" in os.environ:  # a shell asking for completions
        from banger.cli.complete import answer

        answer(ROOT, os.environ["_BANGER_COMPLETE"])
        sys.exit(0)
    ctx = Context()
    try:
        return dispatch(ctx, sys.argv[1:] if argv is None else argv)
    except BangerError as exc:
        if ctx.debug:
            raise
        sys.stdout.flush()
        # Messages can quote a guest (agent errors, ssh's stderr, console lines).
        from banger.core.terminal import neutralize

        print(f"error: {neutralize(exc.message)}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {neutralize(exc.hint)}", file=sys.stderr)
        sys.exit(1)
    except UsageError as exc:
        print(f"error: {exc.message} (see `{exc.prog} --help`)", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("\naborted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
