"""`banger doctor`."""

from __future__ import annotations

import sys

import click

from banger.cli.context import Context, pass_ctx
from banger.cli.render import print_json


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def doctor(ctx: Context, as_json: bool) -> None:
    """Check that this host can run banger VMs."""
    checks = ctx.client.doctor()
    if as_json:
        print_json(checks)
    else:
        for check in checks:
            click.echo(f"{check['status']:<4}  {check['name']}: {check['detail']}")
            if check["hint"] and check["status"] != "ok":
                click.echo(f"      hint: {check['hint']}")
    if any(c["status"] == "fail" and c["required"] for c in checks):
        sys.exit(1)
