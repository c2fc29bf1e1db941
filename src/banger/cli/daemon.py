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
    network = info.get("network", "bridge")
    print_fields([
        ("pid", str(info["pid"])), ("version", info["version"]), ("socket", info["socket"]),
        ("log", info["log"]), ("state", info["state_dir"]),
        ("backend", f"{info['backend']} ({info['accel']})"),
        ("network", _NETWORKS.get(network, network)), ("vms", str(info["vms"])),
    ])


_NETWORKS = {
    "bridge": "bridge (banger's bridge, TAPs, nftables rules and .vm DNS)",
    "pool": "pool (the bridge and TAPs root made with `banger system setup`, .vm DNS)",
    "user": "user-mode networking (guests behind 127.0.0.1 ports, no .vm names; "
            "see `banger doctor`)",
}


@daemon.command()
def socket(ctx: Context) -> None:
    """Print the daemon's socket path."""
    if ctx.client.remote is not None:
        echo(f"{ctx.client.remote.url}:{ctx.client.status()['socket']}")
        return
    echo(str(ctx.client.paths.socket))


@daemon.command()
def stop(ctx: Context) -> None:
    """Stop the daemon. Running VMs keep running and are adopted by the next daemon."""
    client = ctx.unstarted_client()
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


@daemon.command(Opt("--no-start", flag=True, help="Fail if bangerd is not running."))
def stdio(ctx: Context, no_start: bool) -> None:
    """Relay stdin and stdout to this user's bangerd (started if needed): what a remote
    client runs over ssh (`banger --host ssh://USER@HOST ...`)."""
    import os
    import sys

    from banger.client import Client
    from banger.client.sshtransport import NOT_RUNNING_EXIT
    from banger.client.stdio import relay

    local = Client(host="unix://", env=os.environ)  # never a remote one: this is the remote
    if not local.ping():
        if no_start:
            echo("bangerd is not running", err=True)
            sys.exit(NOT_RUNNING_EXIT)
        local.start_daemon()
    relay(local.socket)
