"""How a daemon gives its guests a network: decided once, when bangerd starts."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class NetworkMode(StrEnum):
    # bangerd is root: it makes the bridge, TAPs and nftables rules itself.
    BRIDGE = "bridge"
    # bangerd is an ordinary user whose network root prepared once (`banger system setup`).
    POOL = "pool"
    # bangerd is an ordinary user with no setup: QEMU's user-mode network.
    USER = "user"


@dataclass(frozen=True)
class ModeChoice:
    mode: NetworkMode
    reason: str


ROOT_BRIDGE = ModeChoice(NetworkMode.BRIDGE, "bangerd runs as root")


def choose_network_mode(euid: int, *, has_setup: bool) -> ModeChoice:
    """Root always bridges (a setup for some user does not bind root's own daemon); an
    ordinary user gets the pool root prepared for them, or user-mode networking."""
    if euid == 0:
        return ROOT_BRIDGE
    if has_setup:
        return ModeChoice(NetworkMode.POOL, "root prepared this user's network")
    return ModeChoice(NetworkMode.USER, "not root and no `banger system setup` for this user")
