"""A guest's network policy, as values: where it may send traffic beyond its bridge (egress)
and which other guests it may talk to (its network group).

Egress is one of three: everything (`--nat`), an allowlist (`--egress-allow`: CIDRs, and
names whose addresses bangerd's DNS resolved for that guest), or nothing (the default)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from banger.core.errors import InvalidInput

# An allowed name's addresses stay allowed at least this long after an answer, whatever its
# TTL: a guest connects right after resolving, and a TTL of 0 would allow nothing.
MIN_ALLOW_SECONDS = 60
# ... and at most this long, so a huge TTL does not allow an address for days.
MAX_ALLOW_SECONDS = 86400

_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_NAME = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")
_ADDRESS = re.compile(r"^[0-9./]+$")
_GROUP = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")


@dataclass(frozen=True)
class EgressAllow:
    """An allowlist: IPv4 networks, and DNS names (`*.example.org`: any name under it)."""

    cidrs: tuple[str, ...] = ()
    names: tuple[str, ...] = ()

    def permits_name(self, name: str) -> bool:
        """Whether a query for `name` (lower case, no trailing dot) may be answered."""
        for allowed in self.names:
            if allowed.startswith("*."):
                if name.endswith(allowed[1:]):
                    return True
            elif name == allowed:
                return True
        return False


def parse_egress_allow(entries: Iterable[str]) -> EgressAllow:
    """Split and check `--egress-allow` entries (each may hold several, comma-separated)."""
    cidrs: list[str] = []
    names: list[str] = []
    for entry in entries:
        for item in (part.strip().lower().rstrip(".") for part in entry.split(",")):
            if not item:
                continue
            if _ADDRESS.fullmatch(item):
                cidrs.append(_network(item))
            elif _NAME.fullmatch(item) and "." in item:
                names.append(item)
            else:
                raise InvalidInput(
                    f"invalid egress entry {item!r}",
                    hint="use IPv4 addresses or CIDRs (10.1.0.0/16) and DNS names "
                    "(example.org, *.example.org)",
                )
    return EgressAllow(tuple(dict.fromkeys(cidrs)), tuple(dict.fromkeys(names)))


def normalize_egress_allow(entries: Iterable[str]) -> list[str]:
    """The entries as stored on the VM: checked, split, deduplicated."""
    allow = parse_egress_allow(entries)
    return [*allow.cidrs, *allow.names]


def _network(item: str) -> str:
    try:
        network = ipaddress.IPv4Network(item, strict=False)
    except ValueError as exc:
        raise InvalidInput(f"invalid egress entry {item!r}: {exc}",
                           hint="use an IPv4 address or CIDR, e.g. 10.1.0.0/16") from None
    return str(network) if network.prefixlen < 32 else str(network.network_address)


def validate_group(group: str) -> str:
    if group and not _GROUP.fullmatch(group):
        raise InvalidInput(
            f"invalid network group {group!r}",
            hint="1-32 of a-z, 0-9 and '-', not starting or ending with '-'",
        )
    return group


def describe(nat: bool, egress_allow: Iterable[str]) -> str:
    """One line for `vm show`: what the guest reaches beyond the host."""
    allowed = list(egress_allow)
    if nat:
        return "all (nat)"
    if allowed:
        return "only " + ", ".join(allowed)
    return "none"


def allow_seconds(ttl: int) -> int:
    """How long a resolved address stays allowed (see MIN/MAX_ALLOW_SECONDS)."""
    return min(max(ttl, MIN_ALLOW_SECONDS), MAX_ALLOW_SECONDS)
