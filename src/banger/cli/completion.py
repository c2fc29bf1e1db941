"""Shell completion: `banger completion SHELL` prints the script, and the completers below
give live VM, image and kernel names from the daemon.

Completion runs on every Tab, so it stays cheap: names come from one request to a daemon
that is already running (no autostart), with a short timeout, and anything that goes wrong
completes nothing (no file-name fallback, no traceback in the middle of a command line).
This module is imported by the noun modules for their completers: it imports only click."""

from __future__ import annotations

import os
from collections.abc import Callable

import click

SHELLS = ("bash", "zsh", "fish", "powershell")
COMPLETE_VAR = "_BANGER_COMPLETE"
# Long enough for a daemon that is busy booting a guest, short enough not to stall a Tab.
NAME_TIMEOUT = 0.5


def _names(path: str) -> list[str]:
    from banger.client import Client

    try:
        items = Client(autostart=False).request("GET", path, timeout=NAME_TIMEOUT)
    except Exception:  # down, slow, an older daemon: whatever it is, complete nothing
        return []
    if not isinstance(items, list):
        return []
    return [
        item["name"] for item in items
        if isinstance(item, dict) and isinstance(item.get("name"), str)
    ]


def _completer(path: str) -> Callable[[click.Context, click.Parameter, str], list[str]]:
    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
        # `vm delete a b <Tab>` does not offer a and b again.
        given = ctx.params.get(param.name or "") or ()
        taken = set(given) if isinstance(given, tuple) else set()
        return [n for n in _names(path) if n.startswith(incomplete) and n not in taken]

    return complete


vm_names = _completer("/v1/vms")
image_names = _completer("/v1/images")
kernel_names = _completer("/v1/kernels")


def register_shells() -> None:
    """Use banger's own PowerShell support (see banger.cli.powershell) for the completion
    requests its script sends."""
    from click.shell_completion import add_completion_class

    from banger.cli.powershell import PowerShellComplete

    add_completion_class(PowerShellComplete)


def completing() -> bool:
    """Is this process answering a completion request from a shell?"""
    return COMPLETE_VAR in os.environ


RECIPES = """\b
Load it once per session, or install it where the shell looks for it:

\b
bash (needs the bash-completion package for the directory below):
  source <(banger completion bash)
  banger completion bash > ~/.local/share/bash-completion/completions/banger
  banger completion bash | sudo tee /etc/bash_completion.d/banger   # all users

\b
zsh (after `autoload -Uz compinit && compinit` in ~/.zshrc):
  source <(banger completion zsh)
  banger completion zsh > ~/.zfunc/_banger   # with fpath=(~/.zfunc $fpath) before compinit

\b
fish:
  banger completion fish | source
  banger completion fish > ~/.config/fish/completions/banger.fish

\b
PowerShell:
  banger completion powershell | Out-String | Invoke-Expression
  banger completion powershell >> $PROFILE
"""


@click.command(epilog=RECIPES)
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL.

    It completes commands, options and the names of your VMs, images and kernels (asked
    from a running bangerd; with the daemon down, names complete to nothing).
    """
    from click.shell_completion import get_completion_class

    register_shells()
    complete_class = get_completion_class(shell)
    assert complete_class is not None
    script = complete_class(ctx.find_root().command, {}, "banger", COMPLETE_VAR).source()
    click.echo(script, nl=not script.endswith("\n"))
