"""An ordinary user's network, prepared once by root (`banger system setup --user NAME`).

The setup writes this description (JSON, root-owned, world-readable) and the user's bangerd
reads it: its own bridge and subnet, the unprivileged port its DNS listener binds on the
gateway (nftables redirects the guests' queries to port 53 there), and a pool of TAPs owned
by the user, each with the one IP and MAC its anti-spoofing rule allows. Half of the pool is
masqueraded (VMs with --nat), half is contained (no way out but DNS), so both kinds of VM work
without a per-VM firewall change."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from dataclasses import asdict, dataclass

from banger.core import nat
from banger.core.errors import ConfigError, InvalidInput

USERS_DIR = "/etc/banger/users"
DEFAULT_TAPS = 8
MAX_TAPS = 64
# 10.213.N.0/24 for user number N: away from the root daemon's default 172.16.0.0/24.
_SUBNET_BASE = ipaddress.IPv4Address("10.213.0.0")
MAX_USERS = 256
_DNS_PORT_BASE = 5300
_USER_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_BRIDGE_PREFIX = "bgu"
# Slot TAPs never start with netplan's TAP_PREFIX: the root daemon's orphan sweep skips them.
_TAP_PREFIX = "bgp"


@dataclass(frozen=True)
class TapSlot:
    tap: str
    ip: str
    mac: str
    nat: bool  # masqueraded out (for VMs with --nat), or contained


@dataclass(frozen=True)
class UserNetwork:
    user: str
    uid: int
    index: int  # which user network on this host: picks the subnet, bridge and DNS port
    bridge: str
    cidr: str
    gateway: str
    dns_port: int
    slots: tuple[TapSlot, ...]
    # The setup gave the user an ACL entry on /dev/net/tun (its teardown takes it back).
    tun_acl: bool = False
    # The group owning /dev/kvm the setup added the user to ("": none; teardown takes the
    # user out of it again).
    kvm_group: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    def free_slots(self, used_taps: set[str], *, nat: bool) -> list[TapSlot]:
        return [s for s in self.slots if s.nat == nat and s.tap not in used_taps]


def validate_user_name(name: str) -> str:
    if not _USER_NAME.match(name):
        raise InvalidInput(f"{name!r} is not a user name", hint="pass --user NAME of an "
                           "existing account (lower-case letters, digits, '-' and '_')")
    return name


def description_path(user: str) -> str:
    return f"{USERS_DIR}/{validate_user_name(user)}.json"


def plan_user_network(user: str, uid: int, index: int, taps: int = DEFAULT_TAPS) -> UserNetwork:
    """The network of user number `index` with `taps` TAPs (half of them NATed)."""
    validate_user_name(user)
    if not 0 <= index < MAX_USERS:
        raise InvalidInput(f"no room for another user network (at most {MAX_USERS})")
    if not 2 <= taps <= MAX_TAPS:
        raise InvalidInput(f"--taps must be between 2 and {MAX_TAPS}")
    network = ipaddress.IPv4Network((int(_SUBNET_BASE) + index * 256, 24))
    hosts = list(network.hosts())
    slots = tuple(
        TapSlot(
            tap=f"{_TAP_PREFIX}{index}s{i}",
            ip=str(hosts[i + 1]),
            mac=_slot_mac(user, i),
            nat=i < (taps + 1) // 2,
        )
        for i in range(taps)
    )
    return UserNetwork(
        user=user, uid=uid, index=index, bridge=f"{_BRIDGE_PREFIX}{index}",
        cidr=str(network), gateway=str(hosts[0]), dns_port=_DNS_PORT_BASE + index, slots=slots,
    )


def _slot_mac(user: str, slot: int) -> str:
    digest = hashlib.sha256(f"banger-user-net/{user}/{slot}".encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[:5])


def free_index(taken: set[int]) -> int:
    for index in range(MAX_USERS):
        if index not in taken:
            return index
    raise InvalidInput(f"no room for another user network (at most {MAX_USERS})")


def parse_user_network(text: str, *, source: str) -> UserNetwork:
    try:
        data = json.loads(text)
        slots = tuple(TapSlot(
            tap=str(s["tap"]), ip=str(s["ip"]), mac=str(s["mac"]), nat=bool(s["nat"]),
        ) for s in data["slots"])
        net = UserNetwork(
            user=str(data["user"]), uid=int(data["uid"]), index=int(data["index"]),
            bridge=str(data["bridge"]), cidr=str(data["cidr"]), gateway=str(data["gateway"]),
            dns_port=int(data["dns_port"]), slots=slots, tun_acl=bool(data.get("tun_acl")),
            kvm_group=str(data.get("kvm_group", "")),
        )
        network = ipaddress.IPv4Network(net.cidr)
        if ipaddress.IPv4Address(net.gateway) not in network or not all(
            ipaddress.IPv4Address(s.ip) in network for s in slots
        ):
            raise ValueError("an address is outside the subnet")
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{source} is not a banger user network: {exc}",
            hint="run `sudo banger system setup --user NAME` again",
        ) from exc
    return net


def render_setup_rules(net: UserNetwork) -> str:
    """The nft script of this user's network: banger's containment rules with every slot as
    a live guest (its MAC and IP only; masqueraded or contained), the DNS redirect from
    gateway:53 to the user's port (guests and the host alike), and an output rule that lets
    only the user (and root) open connections to its guests."""
    guests = [
        nat.GuestNet(name=f"{net.user} slot {s.tap}", vm_id=s.tap, ip=s.ip, mac=s.mac,
                     tap=s.tap, nat=s.nat)
        for s in net.slots
    ]
    inet = f"{nat.FAMILY} {nat.TABLE}"
    chains = nat.chain_names(net.bridge)
    dns_in, dns_out, owner = _extra_chains(net)
    dns = f"ip daddr {net.gateway} meta l4proto {{ tcp, udp }} th dport"
    lines = [
        f"add chain {inet} {dns_in} "
        "{ type nat hook prerouting priority dstnat; policy accept; }",
        f"add chain {inet} {dns_out} "
        "{ type nat hook output priority -100; policy accept; }",
        f"add chain {inet} {owner} "
        "{ type filter hook output priority filter; policy accept; }",
        *(f"flush chain {inet} {chain}" for chain in (dns_in, dns_out, owner)),
        f'add rule {inet} {dns_in} iifname "{net.bridge}" {dns} 53 redirect to :{net.dns_port}',
        # Not `redirect` here: for the host's own packets it means 127.0.0.1.
        f"add rule {inet} {dns_out} {dns} 53 dnat ip to {net.gateway}:{net.dns_port}",
        # Before the input chain's drop (render_rules just refilled it).
        f'insert rule {inet} {chains.input} iifname "{net.bridge}" {dns} {net.dns_port} accept',
        f'add rule {inet} {owner} oifname "{net.bridge}" meta skuid != {{ 0, {net.uid} }} '
        f'drop comment "banger: only {net.user} reaches these guests"',
    ]
    return nat.render_rules(net.bridge, net.gateway, guests) + "\n".join(lines) + "\n"


def render_setup_removal(net: UserNetwork, existing_sets: list[str]) -> str:
    inet = f"{nat.FAMILY} {nat.TABLE}"
    extra = _extra_chains(net)
    return nat.render_removal(net.bridge, existing_sets) + "\n".join([
        *(f"add chain {inet} {chain}" for chain in extra),
        *(f"flush chain {inet} {chain}" for chain in extra),
        *(f"delete chain {inet} {chain}" for chain in extra),
    ]) + "\n"


def _extra_chains(net: UserNetwork) -> tuple[str, str, str]:
    return f"dnsin_{net.bridge}", f"dnsout_{net.bridge}", f"own_{net.bridge}"
