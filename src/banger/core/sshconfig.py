"""`ssh <name>.vm`: the ssh_config file bangerd keeps, and the marker-fenced block that pulls
it into the user's ~/.ssh/config.

The block goes at the very top of ~/.ssh/config, for two reasons. OpenSSH applies an
`Include` that sits inside a `Host`/`Match` section only when that section matches, and an
Include appended to the end of a file lands in the user's last section (say `Host github.com`),
so banger's entries would not apply to `<name>.vm`. And for every option the first value ssh
reads wins, so entries read first are not overridden by the user's `Host *` defaults (a
`User` or `StrictHostKeyChecking` there). banger's entries only match `<name>.vm`, so being
first changes nothing for any other host."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath

from banger.core.errors import InvalidInput
from banger.core.slirp import LOOPBACK

BEGIN = "# >>> banger ssh-config >>>"
END = "# <<< banger ssh-config <<<"
_NOTE = "# Added by `banger ssh-config --install`; `banger ssh-config --uninstall` removes it."


def _argument(value: str) -> str:
    """An ssh_config argument: `%` is ssh's token character, whitespace needs quotes, and
    a quote or line break cannot be written at all."""
    if any(c in value for c in '"\n\r'):
        raise InvalidInput(f"cannot use {value!r} in an ssh config file (quote or line break)")
    value = value.replace("%", "%%")
    return f'"{value}"' if any(c.isspace() for c in value) else value


def render_ssh_config(
    vms: Iterable[tuple[str, str]], *, identity_file: str, known_hosts: str,
    proxy_jump: str | None = None, loopback_ports: Mapping[str, int] | None = None,
) -> str:
    """banger's ssh_config: a `Host <name>.vm` entry per (name, ip). HostName is the IP, so
    the entries work whether or not the host resolves `.vm` names. `proxy_jump`: the
    remote host whose bridge the guests are on (`user@host:port`). `loopback_ports`: by
    name, the 127.0.0.1 port forwarded to a guest's sshd (user-mode networking), which its
    entry reaches instead of the IP; its pinned key is found under `<name>.vm`."""
    ports = loopback_ports or {}
    identity, pinned = _argument(identity_file), _argument(known_hosts)
    jump = f"    ProxyJump {_argument(proxy_jump)}\n" if proxy_jump else ""
    parts = [
        "# Written by bangerd from its VM records; changes are overwritten.\n"
        "# Use it from ~/.ssh/config with `banger ssh-config --install`.\n"
    ]
    for name, ip in sorted(vms):
        where = f"    HostName {ip}\n"
        if name in ports:
            where = (f"    HostName {LOOPBACK}\n    Port {ports[name]}\n"
                     f"    HostKeyAlias {name}.vm\n")
        parts.append(
            f"\nHost {name}.vm\n"
            f"{where}"
            f"{jump}"
            "    User root\n"
            f"    IdentityFile {identity}\n"
            "    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {pinned}\n"
            "    GlobalKnownHostsFile /dev/null\n"
            "    StrictHostKeyChecking yes\n"
            # First value wins: a user's `Host *` must not hand the sandbox their agent
            # (it could then log in wherever they can) or their X display.
            "    ForwardAgent no\n"
            "    ForwardX11 no\n"
        )
    return "".join(parts)


def include_path(ssh_config: PurePosixPath, home: PurePosixPath) -> str:
    """How ~/.ssh/config names banger's file: `~/...` under `home` (the home directory ssh
    itself expands `~` to: the passwd entry's, not $HOME), else the absolute path."""
    try:
        text = "~/" + str(ssh_config.relative_to(home))
    except ValueError:
        text = str(ssh_config)
    if any(c in text for c in '"\n\r'):
        raise InvalidInput(f"cannot use {text!r} in an ssh config file (quote or line break)")
    return f'"{text}"' if any(c.isspace() for c in text) else text


def include_block(path: str) -> str:
    return f"{BEGIN}\n{_NOTE}\nInclude {path}\n{END}\n"


def _lines(text: str) -> list[str]:
    """Lines with their endings; only "\\n" ends a line (as for ssh), so joining them gives
    back exactly `text`."""
    lines = text.split("\n")
    last = lines.pop()
    return [line + "\n" for line in lines] + ([last] if last else [])


def _is(line: str, marker: str) -> bool:
    return line.rstrip() == marker


def _find_blocks(lines: list[str]) -> list[tuple[int, int]]:
    """(first, last) line indexes of each marker-fenced block."""
    blocks = []
    start: int | None = None
    for index, line in enumerate(lines):
        if _is(line, BEGIN):
            if start is not None:
                raise _broken()
            start = index
        elif _is(line, END):
            if start is None:
                raise _broken()
            blocks.append((start, index))
            start = None
    if start is not None:
        raise _broken()
    return blocks


def _broken() -> InvalidInput:
    return InvalidInput(
        f"~/.ssh/config has an unmatched '{BEGIN}' or '{END}' line",
        hint="fix or remove banger's block by hand, then run the command again",
    )


def install(text: str, path: str) -> str:
    """`text` with banger's block at the top, or with an existing block brought up to date
    where it is (the user may have moved it on purpose). Nothing else changes."""
    lines = _lines(text)
    blocks = _find_blocks(lines)
    block = include_block(path)
    if not blocks:
        return block + text
    first, last = blocks[0]
    others = blocks[1:]  # duplicates (say, a pasted second copy) go
    after = [
        line for index, line in enumerate(lines[last + 1:], start=last + 1)
        if not any(start <= index <= end for start, end in others)
    ]
    if not lines[last].endswith("\n"):
        block = block[:-1]  # the old block ended the file without a newline
    return "".join(lines[:first]) + block + "".join(after)


def uninstall(text: str) -> str:
    """`text` without banger's block(s): the exact bytes `install` added are removed."""
    lines = _lines(text)
    blocks = _find_blocks(lines)
    return "".join(
        line for index, line in enumerate(lines)
        if not any(start <= index <= end for start, end in blocks)
    )
