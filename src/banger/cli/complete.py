"""Answering a shell's completion request: walk the command tree (banger.cli.spec) along the
words typed so far and offer subcommands, options, choices, or live VM/image/kernel names.

Completion runs on every Tab, so it stays cheap: only the noun's module is imported, names
come from one request to a daemon that is already running (no autostart), with a short
timeout, and anything that goes wrong completes nothing (no file-name fallback, no traceback
in the middle of a command line).

The shell scripts (banger.cli.completion) set _BANGER_COMPLETE=SHELL_complete and pass the
command line: COMP_WORDS and COMP_CWORD (bash, zsh: the words, the cursor's word index;
fish: the line up to the cursor, the word at the cursor) or COMP_LINE (PowerShell). The
answer is one candidate per line (zsh: three lines), as each script expects it."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, NamedTuple

from banger.cli.spec import DIR, FILE, HELP_FLAGS, IMAGES, KERNELS, VMS, Arg, Command, Group, Opt

if TYPE_CHECKING:
    from collections.abc import Iterable

# Long enough for a daemon that is busy booting a guest, short enough not to stall a Tab.
NAME_TIMEOUT = 0.5
REMOTE_NAME_TIMEOUT = 3.0  # a remote daemon: an ssh session and a Python start on the host
NAME_ROUTES = {VMS: "/v1/vms", IMAGES: "/v1/images", KERNELS: "/v1/kernels"}


class Item(NamedTuple):
    value: str
    help: str = ""
    kind: str = "plain"  # or "file"/"dir": let the shell complete paths


def answer(root: Group, request: str) -> None:
    """Print the candidates for the request in the form its shell's script reads."""
    shell, _, action = request.partition("_")
    if action == "source":  # `_BANGER_COMPLETE=bash_source banger`: the form click documented
        from banger.cli.completion import script

        sys.stdout.write(script(shell))
        return
    if shell == "powershell":
        line = os.environ.get("COMP_LINE", "")
        words = split_words(line)
        incomplete = words.pop() if words and not line[-1:].isspace() else ""
        args = words[1:]
    elif shell == "fish":
        words = split_words(os.environ.get("COMP_WORDS", ""))
        incomplete = os.environ.get("COMP_CWORD", "")
        args = words[1:]
        if incomplete and args and args[-1] == incomplete:
            args.pop()
    elif shell in ("bash", "zsh"):
        words = split_words(os.environ.get("COMP_WORDS", ""))
        try:
            cword = int(os.environ.get("COMP_CWORD", ""))
        except ValueError:
            return
        args = words[1:cword]
        incomplete = words[cword] if cword < len(words) else ""
        if shell == "bash":
            args = _join_equals(args)
    else:
        return
    prefix = ""
    items = candidates(root, args, incomplete)
    if shell != "bash" and incomplete.startswith("--") and "=" in incomplete:
        # The shell replaces the whole `--opt=val` word (bash splits it at the `=` itself).
        prefix = incomplete.partition("=")[0] + "="
    out = [_format(shell, item._replace(value=prefix + item.value)) for item in items]
    sys.stdout.write("".join(f"{line}\n" for line in out))


def _format(shell: str, item: Item) -> str:
    help_text = " ".join(item.help.split())
    if shell == "zsh":
        return f"{item.kind}\n{item.value}\n{help_text or '_'}"
    if shell == "fish":
        return f"{item.kind},{item.value}" + (f"\t{help_text}" if help_text else "")
    if shell == "powershell":
        return f"{item.kind}\t{item.value}\t{help_text}"
    return f"{item.kind},{item.value}"


def _join_equals(args: list[str]) -> list[str]:
    """bash splits `--image=deb` into `--image`, `=`, `deb` (COMP_WORDBREAKS): glue them
    back together; a trailing `=` leaves the option waiting for the word being completed."""
    joined: list[str] = []
    for word in args:
        if word == "=" and joined and joined[-1].startswith("--") and "=" not in joined[-1]:
            joined[-1] += "="
        elif joined and joined[-1].endswith("="):
            joined[-1] += word
        else:
            joined.append(word)
    if joined and joined[-1].endswith("="):
        joined[-1] = joined[-1][:-1]
    return joined


def split_words(line: str) -> list[str]:
    """Split like the shell; an unterminated quote still yields the word being typed."""
    import shlex

    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    words: list[str] = []
    try:
        for word in lexer:
            words.append(word)
    except ValueError:  # no closing quotation
        words.append(lexer.token)
    return words


def candidates(root: Group, args: list[str], incomplete: str) -> list[Item]:
    node: Command | Group = root
    index = 0
    while isinstance(node, Group):
        while index < len(args) and args[index].startswith("-"):
            index += 1  # the root's --debug; nothing at group level takes a value
        if index == len(args):
            if incomplete.startswith("-"):
                flags = [f for o in node.options for f in o.flags] + list(HELP_FLAGS)
                return [Item(f) for f in flags if f.startswith(incomplete)]
            return [
                Item(name, child.short_help) for name, child in sorted(node.children.items())
                if name.startswith(incomplete)
            ]
        child = node.child(args[index])
        if child is None:
            return []
        node, index = child, index + 1
    return _command_candidates(node, args[index:], incomplete)


def _command_candidates(command: Command, args: list[str], incomplete: str) -> list[Item]:
    if command.trailing and "--" in args:
        return []  # the guest's command line: nothing of ours to offer
    by_flag = {flag: opt for opt in command.options for flag in opt.all_flags}
    given: list[str] = []
    used: set[str] = set()
    waiting: Opt | None = None
    positional_only = False
    for word in args:
        if waiting is not None:
            waiting = None
        elif word == "--" and not positional_only:
            positional_only = True
        elif word.startswith("-") and word != "-" and not positional_only:
            flag, equals, _ = word.partition("=")
            opt = by_flag.get(flag)
            if opt is not None:
                used.add(opt.dest)
                if opt.takes_value and not equals:
                    waiting = opt
        else:
            given.append(word)
    if waiting is not None:
        return _values(waiting, incomplete)
    if incomplete.startswith("-") and not positional_only:
        if incomplete.startswith("--") and "=" in incomplete:
            flag, _, value = incomplete.partition("=")
            opt = by_flag.get(flag)
            return _values(opt, value) if opt is not None and opt.takes_value else []
        flags = [f for o in command.options if o.dest not in used for f in o.all_flags]
        return [Item(f) for f in [*flags, *HELP_FLAGS] if f.startswith(incomplete)]
    arg, taken = _current_arg(command.args, given)
    return [] if arg is None else _values(arg, incomplete, taken)


def _current_arg(args: list[Arg], given: list[str]) -> tuple[Arg | None, list[str]]:
    """The positional the next word fills, and the words it already has (nargs="+")."""
    remaining = list(given)
    for arg in args:
        if arg.nargs == "+":
            return arg, remaining
        if not remaining:
            return arg, []
        remaining.pop(0)
    return None, []


def _values(param: Arg | Opt, incomplete: str, taken: Iterable[str] = ()) -> list[Item]:
    if param.choices is not None:
        return [Item(c) for c in param.choices if c.startswith(incomplete)]
    if param.complete in (FILE, DIR):
        return [Item(incomplete, kind=param.complete)]
    route = NAME_ROUTES.get(param.complete or "")
    if route is None:
        return []
    skip = set(taken)  # `vm delete a b <Tab>` does not offer a and b again
    return [Item(n) for n in _names(route) if n.startswith(incomplete) and n not in skip]


def _names(route: str) -> list[str]:
    from banger.client import Client

    try:
        client = Client(autostart=False)
        timeout = NAME_TIMEOUT if client.remote is None else REMOTE_NAME_TIMEOUT
        items = client.request("GET", route, timeout=timeout)
    except Exception:  # down, slow, an older daemon: whatever it is, complete nothing
        return []
    if not isinstance(items, list):
        return []
    return [
        item["name"] for item in items
        if isinstance(item, dict) and isinstance(item.get("name"), str)
    ]
