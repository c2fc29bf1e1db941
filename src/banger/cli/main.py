"""`banger`: the CLI. Thin: parse, call the client, render. Errors become one `error:` line
and a `hint:` line, never a traceback (unless --debug)."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from banger import __version__
from banger.cli.context import Context
from banger.core.errors import BangerError

# Noun -> "module:attribute". Only the invoked noun's module is imported, which keeps every
# command (and shell completion) fast.
COMMANDS = {
    "vm": "banger.cli.vm:vm",
    "image": "banger.cli.image:image",
    "kernel": "banger.cli.kernel:kernel",
    "daemon": "banger.cli.daemon:daemon",
    "doctor": "banger.cli.doctor:doctor",
    "ssh-config": "banger.cli.sshconfig:ssh_config",
    "completion": "banger.cli.completion:completion",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *super().list_commands(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, attribute = target.split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attribute)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(__version__, prog_name="banger")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """One-command development sandboxes on microVMs."""
    ctx.obj = Context(debug)



def main(argv: list[str] | None = None) -> Any:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    if "_BANGER_COMPLETE" in os.environ:  # a shell asking for completions
        from banger.cli.completion import register_shells

        register_shells()
    try:
        return cli.main(args=argv, prog_name="banger", standalone_mode=False)
    except BangerError as exc:
        if debug:
            raise
        click.echo(f"error: {exc.message}", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
