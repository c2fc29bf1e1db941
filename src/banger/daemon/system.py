"""`python -m banger.daemon.system setup|teardown`: root's one-time preparation of an
ordinary user's network. `banger system ...` runs it (the CLI never imports the host layer)
and renders its NDJSON: progress events, then the result or the error, as the API streams."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from typing import Any

from banger.core.errors import BangerError
from banger.core.models import ProgressEvent
from banger.host.processes import SubprocessRunner
from banger.host.usernet import UserNetworks


def _emit(item: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(item) + "\n")
    sys.stdout.flush()


def _progress(event: ProgressEvent) -> None:
    _emit({"event": dataclasses.asdict(event)})


async def run(networks: UserNetworks, argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="banger system")
    verbs = parser.add_subparsers(dest="verb", required=True)
    setup = verbs.add_parser("setup")
    setup.add_argument("--user", required=True)
    setup.add_argument("--taps", type=int)
    setup.add_argument("--no-persist", action="store_true")
    teardown = verbs.add_parser("teardown")
    teardown.add_argument("--user")
    args = parser.parse_args(argv)
    if args.verb == "setup":
        result = await networks.setup(args.user, args.taps, _progress,
                                      persist=not args.no_persist)
        return dataclasses.asdict(result)
    return {"users": await networks.teardown(args.user, _progress)}


def main(argv: list[str] | None = None) -> None:
    networks = UserNetworks(SubprocessRunner(), banger=_banger_command())
    try:
        _emit({"result": asyncio.run(run(networks, sys.argv[1:] if argv is None else argv))})
    except BangerError as exc:
        _emit({"error": exc.to_dict()})
        sys.exit(1)


def _banger_command() -> str:
    """The `banger` next to this interpreter (a venv's), for the boot-time unit."""
    from pathlib import Path

    beside = Path(sys.executable).parent / "banger"
    return str(beside) if beside.exists() else "banger"


if __name__ == "__main__":
    main()
