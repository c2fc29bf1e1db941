"""`banger system setup|teardown`: root prepares this host once for an ordinary user."""

from __future__ import annotations

from banger.cli.context import Context
from banger.cli.render import ProgressPrinter, print_fields, print_json
from banger.cli.spec import Group, Opt, echo

system = Group("system", "Prepare this host for ordinary users (run as root, once).")
JSON = Opt("--json", dest="as_json", flag=True, help="Machine-readable output.")


def _run(argv: list[str], as_json: bool) -> dict[str, object]:
    from banger.client.system import run_system

    printer = ProgressPrinter()
    try:
        result: dict[str, object] = run_system(argv, lambda e: None if as_json else printer(e))
    finally:
        printer.done()
    return result


@system.command(
    Opt("--user", required=True, metavar="NAME", help="The account that runs banger."),
    Opt("--taps", type=int, metavar="N", help="TAP devices in the user's pool: at most N VMs "
        "at once, half with --nat (default 8, or what the last setup made)."),
    Opt("--no-persist", flag=True, help="Do not install the boot-time unit."),
    JSON,
)
def setup(ctx: Context, user: str, taps: int | None, no_persist: bool, as_json: bool) -> None:
    """Give USER a bridge, a pool of TAPs it owns, nftables rules and a DNS port, so that
    USER's bangerd runs without root. Run again to re-apply; idempotent."""
    argv = ["setup", "--user", user, *(["--taps", str(taps)] if taps else []),
            *(["--no-persist"] if no_persist else [])]
    result = _run(argv, as_json)
    if as_json:
        print_json(result)
        return
    net = result["network"]
    assert isinstance(net, dict)
    print_fields([
        ("user", user), ("bridge", f"{net['bridge']} ({net['cidr']})"),
        ("taps", str(len(net["slots"]))), ("dns", f"{net['gateway']}:53 -> :{net['dns_port']}"),
        ("description", str(result["description"])), ("boot", str(result["persisted"])),
    ])


@system.command(
    Opt("--user", metavar="NAME", help="Only this user's network (default: every user's)."),
    JSON,
)
def teardown(ctx: Context, user: str | None, as_json: bool) -> None:
    """Remove exactly what `banger system setup` made. Idempotent."""
    result = _run(["teardown", *(["--user", user] if user else [])], as_json)
    if as_json:
        print_json(result)
        return
    users = result["users"]
    assert isinstance(users, list)
    echo(f"removed the network of {', '.join(users)}" if users else "nothing to remove")
