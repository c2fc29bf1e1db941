"""`banger context ...`: named remote daemons, as `docker context` keeps them."""

from __future__ import annotations

import os
from typing import Any

from banger.cli.context import Context
from banger.cli.render import print_json, print_table
from banger.cli.spec import Arg, Group, Opt, echo
from banger.core.errors import InvalidInput

context = Group("context", "Name remote bangerds (ssh://USER@HOST) and choose the one to use.")
NAME = Arg("name", help="The context's name (`default` is the local daemon).")


@context.command(
    NAME,
    Arg("url", help="ssh://[USER@]HOST[:PORT]: that user's bangerd, through ssh."),
    Opt("--description", default="", help="A note shown by `banger context ls`."),
)
def add(ctx: Context, name: str, url: str, description: str) -> None:
    """Add a context: a remote host whose user's bangerd banger drives through ssh.

    The remote host needs banger installed (on the PATH of a non-interactive ssh session)
    and ssh access without a prompt (a key); no other port is opened.

      banger context add devbox ssh://me@devbox
      banger context use devbox
    """
    from banger.client.remote import load_contexts, save_contexts
    from banger.core.remote import DEFAULT_CONTEXT, parse_host, validate_context_name

    validate_context_name(name)
    if name == DEFAULT_CONTEXT:
        raise InvalidInput(f"{DEFAULT_CONTEXT!r} is the local daemon; pick another name")
    remote = parse_host(url)
    if remote is None:
        raise InvalidInput("a context names a remote host", hint="ssh://[USER@]HOST[:PORT]")
    contexts = load_contexts(os.environ)
    if name in contexts.hosts:
        raise InvalidInput(
            f"context {name!r} exists ({contexts.hosts[name]})",
            hint=f"banger context rm {name} first",
        )
    contexts.hosts[name] = remote.url
    if description:
        contexts.descriptions[name] = description
    save_contexts(os.environ, contexts)
    echo(f"added context {name} ({remote.url}); use it with `banger context use {name}`")


@context.command(NAME)
def use(ctx: Context, name: str) -> None:
    """Make NAME the context every command uses (`default`: the local daemon).
    BANGER_HOST, BANGER_CONTEXT, --host and --context still win over it."""
    from banger.client.remote import load_contexts, save_contexts

    contexts = load_contexts(os.environ)
    contexts.host_of(name)  # it exists
    contexts.current = name
    save_contexts(os.environ, contexts)
    echo(f"using context {name}")


@context.command(NAME)
def rm(ctx: Context, name: str) -> None:
    """Remove a context (the current one: banger goes back to `default`)."""
    from banger.client.remote import load_contexts, save_contexts
    from banger.core.remote import DEFAULT_CONTEXT

    contexts = load_contexts(os.environ)
    contexts.host_of(name)
    if name == DEFAULT_CONTEXT:
        raise InvalidInput("the default context cannot be removed")
    del contexts.hosts[name]
    contexts.descriptions.pop(name, None)
    if contexts.current == name:
        contexts.current = DEFAULT_CONTEXT
    save_contexts(os.environ, contexts)
    echo(f"removed context {name}")


@context.command(Opt("--json", dest="as_json", flag=True, help="Machine-readable output."))
def ls(ctx: Context, as_json: bool) -> None:
    """List the contexts; `*` marks the one in use."""
    from banger.client.remote import load_contexts
    from banger.core.remote import DEFAULT_CONTEXT

    contexts = load_contexts(os.environ)
    active = os.environ.get("BANGER_CONTEXT") or contexts.current
    rows: list[dict[str, Any]] = [{"name": DEFAULT_CONTEXT, "host": "unix://",
             "description": "the local bangerd", "current": active == DEFAULT_CONTEXT}]
    rows += [
        {"name": name, "host": contexts.hosts[name],
         "description": contexts.descriptions.get(name, ""), "current": active == name}
        for name in sorted(contexts.hosts)
    ]
    if as_json:
        print_json(rows)
        return
    print_table(
        ["NAME", "HOST", "DESCRIPTION"],
        [[r["name"] + (" *" if r["current"] else ""), r["host"], r["description"]]
         for r in rows],
    )
    if os.environ.get("BANGER_HOST"):
        echo(f"note: BANGER_HOST={os.environ['BANGER_HOST']} overrides the context", err=True)
