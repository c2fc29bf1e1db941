"""`banger e2b`: the endpoint the unmodified e2b SDK talks to (docs/e2b.md)."""

from __future__ import annotations

import shlex

from banger.cli.context import Context
from banger.cli.render import print_json
from banger.cli.spec import Group, Opt, echo

e2b = Group("e2b", "Serve the e2b SDK's API from banger VMs.")


@e2b.command(Opt("--json", dest="as_json", flag=True, help="Machine-readable output."))
def env(ctx: Context, as_json: bool) -> None:
    """Start the E2B-compatible endpoint and print the variables the e2b SDK reads, for
    `eval "$(banger e2b env)"`. The endpoint listens on e2b_listen (default
    127.0.0.1:49982); E2B_API_KEY is kept 0600 in banger's config dir."""
    from banger.client.e2b import start_e2b_endpoint

    variables = start_e2b_endpoint(ctx.client).environment()
    if as_json:
        print_json(variables)
        return
    echo("export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in variables.items()))
