from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from banger.core.errors import ConfigError, NetworkExhausted
from banger.core.netplan import (
    TAP_PREFIX,
    allocate_ip,
    bridge_network,
    mac_for,
    prefix_len,
    tap_name_for,
)

CIDR = "172.16.0.0/24"
BRIDGE = "172.16.0.1"
HOSTS = [str(h) for h in ipaddress.IPv4Network(CIDR).hosts()]
VM_IDS = st.text(alphabet="0123456789abcdef", min_size=12, max_size=12)


def test_first_guest_gets_the_address_after_the_bridge() -> None:
    assert allocate_ip(BRIDGE, CIDR, []) == "172.16.0.2"


def test_lowest_free_address_is_reused() -> None:
    used = ["172.16.0.2", "172.16.0.4", ""]
    assert allocate_ip(BRIDGE, CIDR, used) == "172.16.0.3"


def test_bridge_address_is_skipped_wherever_it_is() -> None:
    assert allocate_ip("172.16.0.5", CIDR, []) == "172.16.0.1"
    used = ["172.16.0.1", "172.16.0.2", "172.16.0.3", "172.16.0.4"]
    assert allocate_ip("172.16.0.5", CIDR, used) == "172.16.0.6"


@given(st.sets(st.sampled_from(HOSTS)))
def test_allocation_is_the_lowest_free_non_bridge_host(used: set[str]) -> None:
    free = [h for h in HOSTS if h not in used and h != BRIDGE]
    if not free:
        with pytest.raises(NetworkExhausted):
            allocate_ip(BRIDGE, CIDR, used)
        return
    assert allocate_ip(BRIDGE, CIDR, used) == free[0]


def test_exhaustion_is_a_typed_error_with_a_hint() -> None:
    with pytest.raises(NetworkExhausted) as info:
        allocate_ip("10.0.0.1", "10.0.0.0/30", ["10.0.0.2"])
    assert info.value.code == "network_exhausted"
    assert "cidr" in info.value.hint
    assert "10.0.0.0/30" in info.value.message


def test_whole_subnet_fills_up_then_exhausts() -> None:
    used: list[str] = []
    for _ in range(len(HOSTS) - 1):
        used.append(allocate_ip(BRIDGE, CIDR, used))
    assert len(set(used)) == 253
    assert BRIDGE not in used
    with pytest.raises(NetworkExhausted):
        allocate_ip(BRIDGE, CIDR, used)


@pytest.mark.parametrize(
    ("bridge", "cidr", "message"),
    [
        ("10.0.0.1", CIDR, "not inside cidr"),
        ("172.16.0.1", "172.16.0.0/31", "too small"),
        ("nonsense", CIDR, "invalid bridge_ip/cidr"),
        (BRIDGE, "172.16.0.0/33", "invalid bridge_ip/cidr"),
    ],
)
def test_bad_networks_are_config_errors(bridge: str, cidr: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        bridge_network(bridge, cidr)


def test_host_bits_in_cidr_are_tolerated() -> None:
    assert bridge_network("172.16.0.1", "172.16.0.1/24") == ipaddress.IPv4Network(CIDR)
    assert prefix_len("172.16.0.1/24") == 24


@given(VM_IDS)
def test_mac_is_stable_locally_administered_unicast(vm_id: str) -> None:
    mac = mac_for(vm_id)
    assert mac == mac_for(vm_id)
    assert re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", mac)
    first = int(mac.split(":")[0], 16)
    assert first & 0b10  # locally administered
    assert not first & 0b01  # unicast


def test_macs_differ_between_vms() -> None:
    assert mac_for("aaaaaaaaaaaa") != mac_for("bbbbbbbbbbbb")


@given(st.text(alphabet="0123456789abcdef", min_size=1, max_size=40))
def test_tap_names_fit_ifnamsiz_and_carry_the_prefix(vm_id: str) -> None:
    tap = tap_name_for(vm_id)
    assert len(tap.encode()) <= 15
    assert tap.startswith(TAP_PREFIX)
    assert tap == tap_name_for(vm_id)
