"""`banger vm ports` from the client's side: one guest script over the caller's
`GuestCommand` (the CLI's system ssh with banger's key and the VM's pinned host key, as for
workspaces), parsed by banger.core.ports."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

from banger.core.errors import GuestCommandFailed
from banger.core.ports import REPORT_SCRIPT, Port, parse_report, ports

if TYPE_CHECKING:
    from banger.client.workspace import GuestCommand

_TIMEOUT = 60.0


def list_ports(
    guest: GuestCommand, *, vm: str, ip: str, forwarded: bool = False
) -> list[Port]:
    """The sockets listening in `vm` (guest address `ip`), with how the host reaches them
    (`forwarded`: only through `banger vm forward`, under user-mode networking)."""
    try:
        proc = subprocess.run(
            guest(REPORT_SCRIPT), capture_output=True, check=False, timeout=_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        raise GuestCommandFailed(
            f"listing the sockets of {vm} took longer than {_TIMEOUT:.0f}s",
            hint=f"see `banger vm stats {vm}`; a busy guest may answer later",
        ) from None
    stderr = proc.stderr.decode(errors="replace").strip()
    detail = stderr.splitlines()[-1] if stderr else f"exit status {proc.returncode}"
    if proc.returncode == 255:
        raise GuestCommandFailed(
            f"could not reach {vm} over ssh: {detail}",
            hint=f"is it running? see `banger vm show {vm}`",
        )
    if proc.returncode != 0:
        raise GuestCommandFailed(f"listing the sockets of {vm} failed: {detail}")
    try:
        sockets = parse_report(proc.stdout.decode(errors="replace"))
    except ValueError as exc:
        raise GuestCommandFailed(f"unreadable socket list from {vm}: {exc}") from None
    return ports(sockets, vm=vm, ip=ip, forwarded=forwarded)
