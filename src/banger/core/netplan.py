"""Guest addressing: static IPs from the bridge subnet, stable MACs and TAP names per VM."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable

from banger.core.errors import ConfigError, NetworkExhausted

# Every TAP banger makes starts with this, so orphans can be found after a crash.
TAP_PREFIX = "bgr"


def bridge_network(bridge_ip: str, cidr: str) -> ipaddress.IPv4Network:
    try:
        network = ipaddress.IPv4Network(cidr, strict=False)
        gateway = ipaddress.IPv4Address(bridge_ip)
    except ValueError as exc:
        raise ConfigError(f"invalid bridge_ip/cidr: {exc}") from exc
    if gateway not in network:
        raise ConfigError(f"bridge_ip {bridge_ip} is not inside cidr {cidr}")
    if network.prefixlen > 30:
        raise ConfigError(f"cidr {cidr} is too small for guests")
    return network


def allocate_ip(bridge_ip: str, cidr: str, used: Iterable[str]) -> str:
    """The lowest free host address that is not the bridge's own."""
    network = bridge_network(bridge_ip, cidr)
    taken = {ipaddress.IPv4Address(ip) for ip in used if ip}
    taken.add(ipaddress.IPv4Address(bridge_ip))
    for host in network.hosts():
        if host not in taken:
            return str(host)
    raise NetworkExhausted(f"no free guest address left in {cidr}")


def prefix_len(cidr: str) -> int:
    return ipaddress.IPv4Network(cidr, strict=False).prefixlen


def mac_for(vm_id: str) -> str:
    """A locally administered unicast MAC derived from the VM id, so it is stable."""
    digest = hashlib.sha256(vm_id.encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[:5])


def tap_name_for(vm_id: str) -> str:
    # Interface names are at most 15 bytes.
    return f"{TAP_PREFIX}{vm_id[:12]}"
