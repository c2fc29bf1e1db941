"""NAT rules for guests, as nft scripts (applied atomically with `nft -f -`).

Everything lives in banger's own `table inet banger`, in two base chains per bridge (so two
installations on one host never touch each other's rules); a sync flushes and refills only
those chains. No rule of anyone else is read, flushed or replaced."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

TABLE = "banger"
FAMILY = "inet"


@dataclass(frozen=True)
class NatGuest:
    name: str
    ip: str


def chain_names(bridge: str) -> tuple[str, str]:
    """The postrouting (masquerade) and forward chains of one bridge."""
    safe = re.sub(r"[^A-Za-z0-9_]", "_", bridge)
    return f"nat_{safe}", f"fwd_{safe}"


def _chain_specs(bridge: str) -> list[str]:
    nat, fwd = chain_names(bridge)
    return [
        f"add table {FAMILY} {TABLE}",
        f"add chain {FAMILY} {TABLE} {nat} "
        "{ type nat hook postrouting priority srcnat; policy accept; }",
        f"add chain {FAMILY} {TABLE} {fwd} "
        "{ type filter hook forward priority filter; policy accept; }",
    ]


def render_rules(bridge: str, guests: Sequence[NatGuest]) -> str:
    """Replace this bridge's chains with rules for `guests`: their traffic leaving through any
    interface but the bridge is masqueraded and forwarded, and the replies come back."""
    nat, fwd = chain_names(bridge)
    lines = [*_chain_specs(bridge), f"flush chain {FAMILY} {TABLE} {nat}",
             f"flush chain {FAMILY} {TABLE} {fwd}"]
    for guest in sorted(guests, key=lambda g: g.ip):
        comment = f'comment "banger vm {guest.name}"'
        lines += [
            f'add rule {FAMILY} {TABLE} {nat} ip saddr {guest.ip} oifname != "{bridge}" '
            f"masquerade {comment}",
            f'add rule {FAMILY} {TABLE} {fwd} iifname "{bridge}" oifname != "{bridge}" '
            f"ip saddr {guest.ip} accept {comment}",
            f'add rule {FAMILY} {TABLE} {fwd} oifname "{bridge}" iifname != "{bridge}" '
            f"ip daddr {guest.ip} ct state established,related accept {comment}",
        ]
    return "\n".join(lines) + "\n"


def render_removal(bridge: str) -> str:
    """Delete this bridge's chains. Adding them first makes the delete valid whether or not
    they exist, in the same atomic transaction."""
    nat, fwd = chain_names(bridge)
    return "\n".join([
        *_chain_specs(bridge),
        f"delete chain {FAMILY} {TABLE} {nat}",
        f"delete chain {FAMILY} {TABLE} {fwd}",
    ]) + "\n"


def table_is_empty(listing: str) -> bool:
    """Whether `nft list table inet banger` shows no chains (then the table can go)."""
    return not any(line.strip().startswith("chain ") for line in listing.splitlines())
