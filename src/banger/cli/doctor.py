"""`banger doctor`."""

from __future__ import annotations

import sys

from banger.cli.context import Context
from banger.cli.render import print_json
from banger.cli.spec import Command, Opt, echo


def _doctor(ctx: Context, as_json: bool) -> None:
    """Check that this host can run banger VMs."""
    checks = ctx.client.doctor()
    if as_json:
        print_json(checks)
    else:
        for check in checks:
            echo(f"{check['status']:<4}  {check['name']}: {check['detail']}")
            if check["hint"] and check["status"] != "ok":
                echo(f"      hint: {check['hint']}")
    if any(c["status"] == "fail" and c["required"] for c in checks):
        sys.exit(1)


doctor = Command(
    "doctor", _doctor, [Opt("--json", dest="as_json", flag=True, help="Machine-readable output.")]
)
