"""How this daemon's guests are networked, decided once at start-up."""

from __future__ import annotations

from enum import StrEnum


class NetworkMode(StrEnum):
    BRIDGE = "bridge"  # bangerd is root: its own bridge, TAPs, nftables and `.vm` DNS
    POOL = "pool"  # not root, the host prepared once: TAPs from `banger system setup`
    USER = "user"  # not root, no setup: QEMU user-mode networking (slirp)


def setup_command(user: str) -> str:
    """The one privileged step that gives `user` full networking (pool mode)."""
    return f"sudo banger system setup --user {user}"


def choose_network_mode(euid: int, *, has_user_setup: bool) -> NetworkMode:
    if euid == 0:
        return NetworkMode.BRIDGE
    return NetworkMode.POOL if has_user_setup else NetworkMode.USER
