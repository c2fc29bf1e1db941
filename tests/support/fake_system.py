"""Stands in for `python -m banger.daemon.system` in the CLI tests: answers as it does
(NDJSON progress events, then a result or an error) from canned values."""

from __future__ import annotations

import json
import sys

from banger.core.usernet import plan_user_network


def main(argv: list[str]) -> int:
    def emit(item: object) -> None:
        print(json.dumps(item), flush=True)

    if argv[0] == "setup" and argv[2] == "nobody-here":
        emit({"error": {"code": "invalid_input", "message": "no user named 'nobody-here' "
                        "on this host", "hint": "create the account first (useradd)"}})
        return 1
    if argv[0] == "setup":
        net = plan_user_network(argv[2], 1000, 0, taps=4)
        emit({"event": {"stage": "bridge", "message": "bridge bgu0 10.213.0.1/24"}})
        emit({"result": {"network": json.loads(net.to_json()), "persisted": "not persisted",
                         "description": "/etc/banger/users/alice.json"}})
        return 0
    emit({"result": {"users": argv[2:3]}})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
