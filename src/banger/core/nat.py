"""Guest containment rules, as nft scripts (applied atomically with `nft -f -`).

Everything lives in banger's own tables, in base chains named after the bridge (so two
installations on one host never touch each other's rules); a sync flushes and refills only
those chains. No rule of anyone else is read, flushed or replaced.

`table bridge banger` (layer 2, per TAP):
* `pre_B` (prerouting): a guest sends only ARP and IPv4, only from its own MAC and IP, and
  ARP only for its own IP; everything else from one of our TAPs is dropped, including every
  frame of a TAP that has no guest rules yet (fail closed while a VM starts).
* `fwd_B` (forward, port to port): guests of one network group reach each other; other
  frames between our TAPs are dropped.

`table inet banger` (layer 3, per bridge):
* `in_B` (input): from the bridge the host accepts only DNS on the bridge address and the
  replies to its own connections (ssh, `curl NAME.vm:PORT`).
* `fwd_B` (forward): guests route out only as their egress policy says (all with NAT; an
  allowlist of networks and of addresses their DNS answers gave); nothing from other
  networks reaches a guest except replies.
* `nat_B` (postrouting): what a guest may send out is masqueraded."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

TABLE = "banger"
FAMILY = "inet"
BRIDGE_FAMILY = "bridge"
_SET_PREFIX = "eg_"


@dataclass(frozen=True)
class GuestNet:
    """What the rules need to know about one live guest."""

    name: str
    vm_id: str
    ip: str
    mac: str
    tap: str
    nat: bool = False
    allow_cidrs: tuple[str, ...] = ()
    allow_names: bool = False  # has a set filled from its DNS answers
    group: str = ""


@dataclass(frozen=True)
class Chains:
    nat: str
    forward: str
    input: str
    l2_prerouting: str
    l2_forward: str

    def inet(self) -> tuple[str, str, str]:
        return self.nat, self.forward, self.input

    def bridge(self) -> tuple[str, str]:
        return self.l2_prerouting, self.l2_forward


def _safe(bridge: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", bridge)


def chain_names(bridge: str) -> Chains:
    safe = _safe(bridge)
    return Chains(f"nat_{safe}", f"fwd_{safe}", f"in_{safe}", f"pre_{safe}", f"fwd_{safe}")


def expected_chains(bridge: str) -> list[tuple[str, str]]:
    """(family, chain) of every base chain a bridge has while its guests run."""
    chains = chain_names(bridge)
    return [(FAMILY, chain) for chain in chains.inet()] + [
        (BRIDGE_FAMILY, chain) for chain in chains.bridge()
    ]


def allow_set_name(bridge: str, vm_id: str) -> str:
    """The set of addresses a guest's DNS answers allowed it to reach."""
    return f"{_SET_PREFIX}{_safe(bridge)}_{vm_id}"


def _definitions(bridge: str) -> list[str]:
    c = chain_names(bridge)
    inet, l2 = f"{FAMILY} {TABLE}", f"{BRIDGE_FAMILY} {TABLE}"
    return [
        f"add table {inet}",
        f"add chain {inet} {c.nat} "
        "{ type nat hook postrouting priority srcnat; policy accept; }",
        f"add chain {inet} {c.forward} "
        "{ type filter hook forward priority filter; policy accept; }",
        f"add chain {inet} {c.input} "
        "{ type filter hook input priority filter; policy accept; }",
        f"add table {l2}",
        f"add chain {l2} {c.l2_prerouting} "
        "{ type filter hook prerouting priority filter; policy accept; }",
        f"add chain {l2} {c.l2_forward} "
        "{ type filter hook forward priority filter; policy accept; }",
    ]


def _set_definition(name: str) -> str:
    return f"add set {FAMILY} {TABLE} {name} {{ type ipv4_addr; flags timeout; }}"


def _names(items: Iterable[str]) -> str:
    return "{ " + ", ".join(f'"{item}"' for item in sorted(set(items))) + " }"


def render_rules(
    bridge: str, bridge_ip: str, guests: Sequence[GuestNet], *,
    quarantined_taps: Iterable[str] = (), existing_sets: Iterable[str] = (),
) -> str:
    """Replace this bridge's rules with those for `guests`. `quarantined_taps`: our TAPs
    without a guest here (a VM starting, a template VM), whose frames are all dropped;
    `existing_sets`: sets in the table now (this bridge's that no guest needs are deleted)."""
    c = chain_names(bridge)
    inet, l2 = f"{FAMILY} {TABLE}", f"{BRIDGE_FAMILY} {TABLE}"
    ordered = sorted(guests, key=lambda g: g.ip)
    wanted_sets = [allow_set_name(bridge, g.vm_id) for g in ordered if g.allow_names]
    lines = [*_definitions(bridge), *(_set_definition(name) for name in wanted_sets)]
    lines += [f"flush chain {inet} {chain}" for chain in c.inet()]
    lines += [f"flush chain {l2} {chain}" for chain in c.bridge()]

    taps = {g.tap for g in ordered} | set(quarantined_taps)
    for guest in ordered:
        on_tap = f'iifname "{guest.tap}" ether saddr {guest.mac}'
        comment = f'comment "banger vm {guest.name}"'
        lines += [
            f"add rule {l2} {c.l2_prerouting} {on_tap} arp saddr ether {guest.mac} "
            f"arp saddr ip {guest.ip} accept {comment}",
            f"add rule {l2} {c.l2_prerouting} {on_tap} ip saddr {guest.ip} accept {comment}",
        ]
    if taps:
        lines.append(f"add rule {l2} {c.l2_prerouting} iifname {_names(taps)} drop")
    for group, members in sorted(_groups(ordered).items()):
        if len(members) > 1:
            lines.append(
                f"add rule {l2} {c.l2_forward} iifname {_names(members)} "
                f'oifname {_names(members)} accept comment "banger group {group}"'
            )
    if taps:
        lines.append(f"add rule {l2} {c.l2_forward} iifname {_names(taps)} drop")

    from_guests = f'iifname "{bridge}"'
    out = f'iifname "{bridge}" oifname != "{bridge}"'
    inbound = f'oifname "{bridge}" iifname != "{bridge}"'
    lines += [
        f"add rule {inet} {c.input} {from_guests} ct state established,related accept",
        f"add rule {inet} {c.input} {from_guests} ip daddr {bridge_ip} "
        "meta l4proto { tcp, udp } th dport 53 accept",
        f"add rule {inet} {c.input} {from_guests} drop",
        f"add rule {inet} {c.forward} {inbound} ct state established,related accept",
        f"add rule {inet} {c.forward} {inbound} drop",
        f"add rule {inet} {c.forward} {out} ct state established,related accept",
    ]
    for guest in ordered:
        comment = f'comment "banger vm {guest.name}"'
        source = f"{out} ip saddr {guest.ip}"
        allows = []
        if guest.nat:
            allows.append(f"add rule {inet} {c.forward} {source} accept {comment}")
        else:
            if guest.allow_cidrs:
                allows.append(f"add rule {inet} {c.forward} {source} ip daddr "
                              f"{{ {', '.join(guest.allow_cidrs)} }} accept {comment}")
            if guest.allow_names:
                allows.append(f"add rule {inet} {c.forward} {source} ip daddr "
                              f"@{allow_set_name(bridge, guest.vm_id)} accept {comment}")
        if allows:
            lines += allows
            lines.append(f'add rule {inet} {c.nat} ip saddr {guest.ip} oifname != "{bridge}" '
                         f"masquerade {comment}")
    lines.append(f"add rule {inet} {c.forward} {out} drop")

    ours = _SET_PREFIX + _safe(bridge) + "_"
    lines += [f"delete set {inet} {name}" for name in sorted(set(existing_sets))
              if name.startswith(ours) and name not in wanted_sets]
    return "\n".join(lines) + "\n"


def _groups(guests: Sequence[GuestNet]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for guest in guests:
        if guest.group:
            groups.setdefault(guest.group, []).append(guest.tap)
    return groups


def render_removal(
    bridge: str, existing_sets: Iterable[str] = (), drop_tables: Iterable[str] = (),
) -> str:
    """Delete this bridge's chains and sets, and the tables of `drop_tables` (families whose
    table holds nothing else, see `holds_only`). Adding the chains first makes the delete
    valid whether or not they exist, in the same atomic transaction."""
    c = chain_names(bridge)
    inet, l2 = f"{FAMILY} {TABLE}", f"{BRIDGE_FAMILY} {TABLE}"
    ours = _SET_PREFIX + _safe(bridge) + "_"
    return "\n".join([
        *_definitions(bridge),
        *(f"delete chain {inet} {chain}" for chain in c.inet()),
        *(f"delete chain {l2} {chain}" for chain in c.bridge()),
        *(f"delete set {inet} {name}" for name in sorted(set(existing_sets))
          if name.startswith(ours)),
        *(f"delete table {family} {TABLE}" for family in sorted(set(drop_tables))),
    ]) + "\n"


def render_allow(bridge: str, vm_id: str, addresses: Iterable[tuple[str, int]]) -> str:
    """Allow a guest to reach `addresses` (ip, seconds) from now on, for that long. Adding,
    deleting and adding again restarts the timeout of an address that is already there. The
    set is made if need be (an answer may beat the sync that makes it; a sync deletes it
    again if its VM is gone)."""
    name = allow_set_name(bridge, vm_id)
    target = f"{FAMILY} {TABLE} {name}"
    lines = [f"add table {FAMILY} {TABLE}", _set_definition(name)]
    for ip, seconds in sorted(dict(addresses).items()):
        lines += [
            f"add element {target} {{ {ip} }}",
            f"delete element {target} {{ {ip} }}",
            f"add element {target} {{ {ip} timeout {seconds}s }}",
        ]
    return "\n".join(lines) + "\n" if len(lines) > 2 else ""


def table_is_empty(listing: str) -> bool:
    """Whether `nft list table ...` shows no chains and no sets (then the table can go)."""
    return not any(
        line.strip().startswith(("chain ", "set ")) for line in listing.splitlines()
    )


def holds_only(listing: str, bridge: str) -> bool:
    """Whether `nft list table ...` shows no chain and no set but `bridge`'s (then the table
    can go with them)."""
    c = chain_names(bridge)
    chains = {*c.inet(), *c.bridge()}
    sets = _SET_PREFIX + _safe(bridge) + "_"
    for line in listing.splitlines():
        words = line.split()
        if len(words) < 2:
            continue
        if words[0] == "chain" and words[1] not in chains:
            return False
        if words[0] == "set" and not words[1].startswith(sets):
            return False
    return True


def set_names(listing: str) -> list[str]:
    """The sets in `nft list table inet banger`."""
    return [
        line.split()[1] for line in listing.splitlines()
        if line.strip().startswith("set ") and len(line.split()) > 1
    ]


def chain_listed(listing: str, chain: str) -> bool:
    return any(line.split()[:2] == ["chain", chain] for line in listing.splitlines())
