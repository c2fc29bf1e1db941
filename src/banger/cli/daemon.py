"""`banger daemon status|socket|stop`."""

from __future__ import annotations

import time

from banger.cli.context import Context
from banger.cli.render import print_fields, print_json
from banger.cli.spec import Group, Opt, echo
from banger.core.errors import HostError

daemon = Group("daemon", "Manage bangerd (started automatically on first use).")


@daemon.command(Opt("--json", dest="as_json", flag=True, help="Machine-readable output."))
def status(ctx: Context, as_json: bool) -> None:
    """Show the daemon's PID, socket and log."""
    info = ctx.client.status()
    if as_json:
        print_json(info)
        return
    print_fields([
        ("pid", str(info["pid"])), ("version", info["version"]), ("socket", info["socket"]),
        ("log", info["log"]), ("state", info["state_dir"]),
        ("backend", f"{info['backend']} ({info['accel']})"), ("vms", str(info["vms"])),
    ])


@daemon.command()
def socket(ctx: Context) -> None:
    """Print the daemon's socket path."""
    echo(str(ctx.client.paths.socket))


@daemon.command()
def stop(ctx: Context) -> None:
    """Stop the daemon. Running VMs keep running and are adopted by the next daemon."""
    from banger.client import Client

    client = Client(ctx.client.paths, autostart=False)
    if not client.ping():
        echo("bangerd is not running")
        return
    client.shutdown()
    for _ in range(100):
        if not client.ping():
            echo("bangerd stopped")
            return
        time.sleep(0.05)
    raise HostError(
        "bangerd did not stop within 5s",
        hint=f"see its log, {client.paths.daemon_log}",
    )
