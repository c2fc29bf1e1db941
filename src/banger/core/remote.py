"""Which bangerd a client talks to: the local one, or a remote user's through ssh.

`ssh://user@host[:port]` names a remote bangerd (as DOCKER_HOST does for docker); `unix://`
(or `unix:///path/to/bangerd.sock`) the local one. Named contexts, as `docker context`
keeps them, live in `contexts.toml` beside config.toml, a file banger writes itself:

    current = "devbox"

    [contexts.devbox]
    host = "ssh://me@devbox"
    description = "the build server"

Which one applies, first match wins: `--host`, `--context`, BANGER_HOST, BANGER_CONTEXT,
the file's `current`, else the local daemon. The context `default` is always the local
daemon. Plain values in and out: reading the file is the caller's."""

from __future__ import annotations

import re

from banger.core.errors import InvalidInput
from banger.core.xdg import CONTEXTS_FILE

TYPE_CHECKING = False  # not typing's: see banger.core.xdg
if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_CONTEXT = "default"
_CONTEXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
# What ssh itself would take as a user and a host name (no option-like leading "-").
_USER = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*")
_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*|\[[0-9A-Fa-f:.]+\]")


class RemoteHost:
    """A remote bangerd: the ssh destination whose user's daemon answers."""

    def __init__(self, host: str, user: str | None = None, port: int | None = None) -> None:
        self.host = host
        self.user = user
        self.port = port

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemoteHost) and self.url == other.url

    def __hash__(self) -> int:
        return hash(self.url)

    def __repr__(self) -> str:
        return f"RemoteHost({self.url!r})"

    @property
    def destination(self) -> str:
        """`user@host` (or `host`), as ssh takes it; a bracketed IPv6 address unbracketed."""
        host = self.host.strip("[]")
        return f"{self.user}@{host}" if self.user else host

    @property
    def jump(self) -> str:
        """The ProxyJump form: `user@host:port`."""
        port = f":{self.port}" if self.port else ""
        host = f"[{self.host.strip('[]')}]" if ":" in self.host else self.host
        return f"{self.user + '@' if self.user else ''}{host}{port}"

    @property
    def url(self) -> str:
        return f"ssh://{self.jump}"

    def ssh_args(self) -> list[str]:
        """The port option (when not ssh's default) and the destination, for an ssh argv."""
        port = ["-p", str(self.port)] if self.port else []
        return [*port, "--", self.destination]


def parse_host(url: str) -> RemoteHost | None:
    """`ssh://[user@]host[:port]` → RemoteHost; `unix://...` → None (the local daemon)."""
    if url.startswith("unix://"):
        return None
    if not url.startswith("ssh://"):
        raise InvalidInput(
            f"unsupported banger host {url!r}",
            hint="use ssh://[user@]host[:port] (or unix:// for the local daemon)",
        )
    rest = url.removeprefix("ssh://").rstrip("/")
    user, at, hostport = rest.rpartition("@")
    port: int | None = None
    if hostport.startswith("["):
        host, _, after = hostport.partition("]")
        host += "]"
        if after:
            port = _port(url, after.removeprefix(":")) if after.startswith(":") else -1
    else:
        host, colon, port_text = hostport.partition(":")
        if colon:
            port = _port(url, port_text)
    if (port == -1 or not _HOST.fullmatch(host) or (at and not _USER.fullmatch(user))):
        raise InvalidInput(
            f"invalid banger host {url!r}", hint="use ssh://[user@]host[:port]"
        )
    return RemoteHost(host, user or None, port)


def _port(url: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise InvalidInput(f"invalid port in banger host {url!r}", hint="a port is 1-65535")
    return int(text)


def validate_context_name(name: str) -> str:
    if not _CONTEXT_NAME.fullmatch(name):
        raise InvalidInput(
            f"invalid context name {name!r}",
            hint="letters, digits, '_', '.', '-', starting with a letter or digit",
        )
    return name


class Contexts:
    """The named contexts and the current one (`default`: the local daemon)."""

    def __init__(
        self, hosts: dict[str, str] | None = None, *, current: str = DEFAULT_CONTEXT,
        descriptions: dict[str, str] | None = None,
    ) -> None:
        self.hosts = dict(hosts or {})
        self.descriptions = dict(descriptions or {})
        self.current = current

    def host_of(self, name: str) -> str | None:
        """The host URL of context `name`; None for `default`."""
        if name == DEFAULT_CONTEXT:
            return None
        if name not in self.hosts:
            raise InvalidInput(
                f"no banger context {name!r}",
                hint="see `banger context ls`; add one with `banger context add NAME URL`",
            )
        return self.hosts[name]


def parse_contexts(data: Mapping[str, object]) -> Contexts:
    """contexts.toml, as tomllib read it."""
    table = data.get("contexts", {})
    current = data.get("current", DEFAULT_CONTEXT)
    if not isinstance(table, dict) or not isinstance(current, str):
        raise _bad_file("`contexts` must be a table and `current` a string")
    hosts: dict[str, str] = {}
    descriptions: dict[str, str] = {}
    for name, entry in table.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("host"), str):
            raise _bad_file(f"context {name!r} needs a `host` string")
        hosts[name] = entry["host"]
        if isinstance(entry.get("description"), str):
            descriptions[name] = entry["description"]
    return Contexts(hosts, current=current, descriptions=descriptions)


def _bad_file(detail: str) -> InvalidInput:
    return InvalidInput(
        f"{CONTEXTS_FILE} is malformed: {detail}",
        hint="fix it by hand, or remove it and add the contexts again",
    )


def render_contexts(contexts: Contexts) -> str:
    """contexts.toml's text (TOML basic strings, escaped as JSON strings are)."""
    import json

    lines = [
        "# Written by `banger context`; see `banger context --help`.",
        f"current = {json.dumps(contexts.current)}",
    ]
    for name in sorted(contexts.hosts):
        host = json.dumps(contexts.hosts[name])
        lines += ["", f"[contexts.{json.dumps(name)}]", f"host = {host}"]
        if contexts.descriptions.get(name):
            lines.append(f"description = {json.dumps(contexts.descriptions[name])}")
    return "\n".join(lines) + "\n"


def choose_host(
    *, flag_host: str | None, flag_context: str | None, env: Mapping[str, str],
    contexts: Contexts | None,
) -> str | None:
    """The host URL that applies (None: the local daemon), first match wins: --host,
    --context, BANGER_HOST, BANGER_CONTEXT, the current context."""
    if flag_host:
        return flag_host
    known = contexts if contexts is not None else Contexts()
    if flag_context:
        return known.host_of(flag_context)
    if env.get("BANGER_HOST"):
        return env["BANGER_HOST"]
    if env.get("BANGER_CONTEXT"):
        return known.host_of(env["BANGER_CONTEXT"])
    return known.host_of(known.current) if known.current != DEFAULT_CONTEXT else None
