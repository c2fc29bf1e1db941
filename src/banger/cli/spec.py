"""The CLI's command tree, declared once: groups of commands with their arguments and
options. `banger` walks it to find the invoked command (importing only that noun's module),
argparse parses just that command's arguments, and shell completion walks the same tree.

It replaces click, whose import alone cost more than the rest of a `banger vm list` call
(see docs/architecture.md). Nothing here imports argparse until a command is parsed."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing's: see banger.core.xdg
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
    from typing import Any

    from banger.cli.context import Context

    Handler = Callable[..., Any]

# Completion kinds: live names from the daemon, or the shell's own path completion.
VMS, IMAGES, KERNELS, FILE, DIR = "vms", "images", "kernels", "file", "dir"

HELP_FLAGS = ("-h", "--help")


class UsageError(Exception):
    """Bad command-line syntax: one line on stderr, exit status 2."""

    def __init__(self, message: str, prog: str) -> None:
        super().__init__(message)
        self.message = message
        self.prog = prog


class HelpShown(Exception):
    """-h/--help printed the help: the command is done (exit status 0)."""


class Arg:
    """A positional argument. nargs: None (exactly one), "?" (optional) or "+" (one or more)."""

    def __init__(
        self, dest: str, *, nargs: str | None = None, default: Any = None,
        choices: Sequence[str] | None = None, type: Callable[[str], Any] | None = None,
        complete: str | None = None, help: str | None = None,
    ) -> None:
        self.dest = dest
        self.metavar = dest.upper()
        self.nargs = nargs
        self.default = default
        self.choices = choices
        self.type = type
        self.complete = complete
        self.help = help


class Opt:
    """An option. flag=True: a boolean switch; const: stores that value when given (several
    options may share a dest); negatable: --x/--no-x, None when neither is given; repeat:
    may be given several times, a list of the values (None when never given)."""

    def __init__(
        self, *flags: str, dest: str | None = None, flag: bool = False, const: Any = None,
        negatable: bool = False, type: Callable[[str], Any] | None = None,
        choices: Sequence[str] | None = None, default: Any = None, required: bool = False,
        metavar: str | None = None, complete: str | None = None, help: str = "",
        repeat: bool = False,
    ) -> None:
        self.flags = flags
        self.repeat = repeat
        long = next(f for f in flags if f.startswith("--"))
        self.dest = dest or long[2:].replace("-", "_")
        self.flag = flag
        self.const = const
        self.negatable = negatable
        self.type = type
        self.choices = choices
        self.default = default
        self.required = required
        self.metavar = metavar
        self.complete = complete
        self.help = help

    @property
    def takes_value(self) -> bool:
        return not (self.flag or self.negatable or self.const is not None)

    @property
    def all_flags(self) -> tuple[str, ...]:
        if self.negatable:
            return (*self.flags, *(f"--no-{f[2:]}" for f in self.flags if f.startswith("--")))
        return self.flags




class Command:
    """A leaf: its handler gets the Context and one keyword argument per parameter (and
    `command`, the words after `--`, when trailing)."""

    def __init__(
        self, name: str, handler: Handler, params: Sequence[Arg | Opt], *,
        epilog: str | None = None, trailing: bool = False,
    ) -> None:
        self.name = name
        self.handler = handler
        self.params = list(params)
        self.epilog = epilog
        self.trailing = trailing

    @property
    def description(self) -> str:
        return _dedent(self.handler.__doc__ or "")

    @property
    def short_help(self) -> str:
        return short_help(self.description)

    @property
    def args(self) -> list[Arg]:
        return [p for p in self.params if isinstance(p, Arg)]

    @property
    def options(self) -> list[Opt]:
        return [p for p in self.params if isinstance(p, Opt)]

    def parser(self, prog: str) -> argparse.ArgumentParser:
        import argparse

        parser = _new_parser(
            prog=prog, description=self.description, epilog=self.epilog, allow_abbrev=False,
            formatter_class=_Formatter,
        )
        for param in self.params:
            if isinstance(param, Arg):
                kwargs: dict[str, Any] = {"metavar": param.metavar, "help": param.help}
                if param.nargs is not None:
                    kwargs["nargs"] = param.nargs
                if param.nargs == "?":
                    kwargs["default"] = param.default
                if param.choices is not None:
                    kwargs["choices"] = param.choices
                if param.type is not None:
                    kwargs["type"] = param.type
                parser.add_argument(param.dest, **kwargs)
                continue
            kwargs = {"dest": param.dest, "help": param.help}
            if param.flag:
                kwargs["action"] = "store_true"
            elif param.negatable:
                kwargs["action"] = argparse.BooleanOptionalAction
                kwargs["default"] = None
            elif param.const is not None:
                kwargs["action"] = "store_const"
                kwargs["const"] = param.const
            else:
                kwargs["default"] = param.default
                kwargs["required"] = param.required
                if param.repeat:
                    kwargs["action"] = "append"
                kwargs["metavar"] = param.metavar or param.dest.upper()
                if param.type is not None:
                    kwargs["type"] = param.type
                if param.choices is not None:
                    kwargs["choices"] = param.choices
                    kwargs["metavar"] = "{" + ",".join(param.choices) + "}"
            parser.add_argument(*param.flags, **kwargs)
        if self.trailing:
            usage = parser.format_usage().removeprefix("usage: ").strip()
            parser.usage = f"{usage} [-- COMMAND ...]"
        return parser

    def run(self, ctx: Context, prog: str, argv: list[str]) -> Any:
        command: list[str] = []
        if self.trailing and "--" in argv:
            split = argv.index("--")
            argv, command = argv[:split], argv[split + 1:]
        try:
            values = vars(self.parser(prog).parse_args(argv))
        except HelpShown:
            return 0
        if self.trailing:
            values["command"] = tuple(command)
        return self.handler(ctx, **values)


class Lazy:
    """A child whose module is imported only when it is invoked (or completed)."""

    def __init__(self, name: str, target: str, description: str) -> None:
        self.name = name
        self.target = target
        self.short_help = short_help(description)

    def load(self) -> Command | Group:
        import importlib

        module_name, attribute = self.target.split(":")
        node: Command | Group = getattr(importlib.import_module(module_name), attribute)
        return node


class Group:
    def __init__(
        self, name: str, description: str, *, options: Sequence[Opt] = (),
    ) -> None:
        self.name = name
        self.description = _dedent(description)
        self.short_help = short_help(self.description)
        self.options = list(options)  # only the root's: --debug, --version
        self.children: dict[str, Command | Group | Lazy] = {}

    def add(self, child: Command | Group | Lazy) -> None:
        self.children[child.name] = child

    def child(self, name: str) -> Command | Group | None:
        node = self.children.get(name)
        return node.load() if isinstance(node, Lazy) else node

    def command(
        self, *params: Arg | Opt, name: str | None = None, epilog: str | None = None,
        trailing: bool = False,
    ) -> Callable[[Handler], Handler]:
        """Declare a handler as a subcommand, named after the function by default."""

        def register(handler: Handler) -> Handler:
            command_name = name or handler.__name__.rstrip("_").replace("_", "-")
            self.add(Command(command_name, handler, params, epilog=epilog, trailing=trailing))
            return handler

        return register

    def format_help(self, prog: str) -> str:
        lines = [f"usage: {prog}{' [OPTIONS]' if self.options else ''} COMMAND ...", ""]
        lines += [self.description, "", "commands:"]
        width = max(len(name) for name in self.children)
        for name in sorted(self.children):
            lines.append(f"  {name:<{width}}  {self.children[name].short_help}")
        lines += ["", "options:"]
        rows = [(", ".join(o.flags), o.help) for o in self.options]
        rows.append((", ".join(HELP_FLAGS), "show this help message and exit"))
        width = max(len(flags) for flags, _ in rows)
        lines += [f"  {flags:<{width}}  {text}" for flags, text in rows]
        return "\n".join(lines) + "\n"


def _dedent(text: str) -> str:
    """A docstring without its indentation (the first line has none)."""
    first, _, rest = text.strip().partition("\n")
    if not rest:
        return first
    import textwrap

    return f"{first}\n{textwrap.dedent(rest)}".strip()


def short_help(description: str, limit: int = 64) -> str:
    """The first sentence of the first paragraph, on one line, cut at a word to fit."""
    paragraph = " ".join(description.split("\n\n", 1)[0].split())
    end = paragraph.find(". ")
    sentence = paragraph if end < 0 else paragraph[: end + 1]
    if len(sentence) <= limit:
        return sentence
    return sentence[: limit - 3].rsplit(" ", 1)[0].rstrip(",;:") + "..."


def _usage_message(message: str) -> str:
    # argparse's phrasing, made to read like banger's other errors.
    prefix = "the following arguments are required: "
    if message.startswith(prefix):
        names = message.removeprefix(prefix)
        return f"missing argument{'s' if ',' in names else ''} {names}"
    return message


def _Formatter(prog: str) -> argparse.HelpFormatter:
    """Keeps the help's layout, sized to the terminal without argparse's own lookup (which
    imports shutil, and with it compression modules, on every parse)."""
    import argparse

    columns = os.environ.get("COLUMNS", "")
    try:
        width = int(columns) if columns.isdigit() else os.get_terminal_size(1).columns
    except OSError:
        width = 80
    return argparse.RawDescriptionHelpFormatter(prog, width=max(width, 40) - 2)


def _new_parser(**kwargs: Any) -> argparse.ArgumentParser:
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> Any:
            raise UsageError(_usage_message(message), self.prog)

        def exit(self, status: int = 0, message: str | None = None) -> Any:
            if status == 0 and message is None:  # after --help
                raise HelpShown
            super().exit(status, message)

    return Parser(**kwargs)


# Argument types (argparse calls them with the string; a ValueError-like failure becomes a
# usage error naming the argument).


def path(
    *, exists: bool = False, file_okay: bool = True, dir_okay: bool = True,
    resolve: bool = False,
) -> Callable[[str], str]:
    def check(value: str) -> str:
        import argparse

        if exists and not os.path.exists(value):
            raise argparse.ArgumentTypeError(f"{value!r} does not exist")
        if not file_okay and os.path.isfile(value):
            raise argparse.ArgumentTypeError(f"{value!r} is a file")
        if not dir_okay and os.path.isdir(value):
            raise argparse.ArgumentTypeError(f"{value!r} is a directory")
        return os.path.realpath(value) if resolve else value

    check.__name__ = "path"
    return check


# A path the daemon reads where it is (`image register`, `kernel register`): made absolute
# here, checked by the daemon, after the command refused a remote one.
HOST_PATH = path(resolve=True)


def echo(text: str = "", *, err: bool = False) -> None:
    print(text, file=sys.stderr if err else sys.stdout)
