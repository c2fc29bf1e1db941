import pytest

from banger.core.errors import ConfigError, InvalidInput
from banger.core.usernet import (
    description_path,
    free_index,
    parse_user_network,
    plan_user_network,
    render_setup_removal,
    render_setup_rules,
)


def test_each_user_number_gets_its_own_subnet_bridge_and_dns_port() -> None:
    a, b = plan_user_network("alice", 1000, 0), plan_user_network("bob", 1001, 1)
    assert (a.cidr, a.gateway, a.bridge, a.dns_port) == ("10.213.0.0/24", "10.213.0.1", "bgu0",
                                                         5300)
    assert (b.cidr, b.bridge, b.dns_port) == ("10.213.1.0/24", "bgu1", 5301)
    assert not {s.tap for s in a.slots} & {s.tap for s in b.slots}
    assert not {s.mac for s in a.slots} & {s.mac for s in b.slots}


def test_half_the_pool_is_masqueraded_and_every_slot_has_its_own_address() -> None:
    net = plan_user_network("alice", 1000, 0, taps=4)
    assert [s.nat for s in net.slots] == [True, True, False, False]
    assert len({s.ip for s in net.slots}) == 4
    assert net.gateway not in {s.ip for s in net.slots}
    assert all(len(s.tap) <= 15 for s in plan_user_network("a", 1, 255, taps=64).slots)


def test_free_slots_skip_the_taps_in_use_and_the_other_kind() -> None:
    net = plan_user_network("alice", 1000, 0, taps=4)
    assert [s.tap for s in net.free_slots({"bgp0s0"}, nat=True)] == ["bgp0s1"]
    assert [s.tap for s in net.free_slots(set(), nat=False)] == ["bgp0s2", "bgp0s3"]


def test_the_description_round_trips_and_a_broken_one_says_how_to_fix_it() -> None:
    net = plan_user_network("alice", 1000, 3)
    assert parse_user_network(net.to_json(), source="x") == net
    with pytest.raises(ConfigError) as caught:
        parse_user_network('{"user": "alice"}', source="/etc/banger/users/alice.json")
    assert "system setup" in caught.value.hint
    outside = net.to_json().replace(net.gateway, "192.0.2.1")
    with pytest.raises(ConfigError):
        parse_user_network(outside, source="x")


def test_names_and_sizes_are_checked() -> None:
    with pytest.raises(InvalidInput):
        description_path("../root")
    with pytest.raises(InvalidInput):
        plan_user_network("alice", 1000, 0, taps=1)
    assert free_index({0, 1, 3}) == 2


def test_setup_rules_pin_each_slot_redirect_dns_and_keep_other_users_out() -> None:
    net = plan_user_network("alice", 1000, 0, taps=2)
    script = render_setup_rules(net)
    nat_slot, contained = net.slots
    assert f"ip saddr {nat_slot.ip} oifname != \"bgu0\" masquerade" in script
    assert f"ip saddr {contained.ip} oifname" not in script
    assert f"ether saddr {contained.mac} ip saddr {contained.ip} accept" in script
    assert "th dport 53 redirect to :5300" in script
    assert "th dport 53 dnat ip to 10.213.0.1:5300" in script  # the host's own queries
    assert "insert rule inet banger in_bgu0" in script  # before the input chain's drop
    assert "meta skuid != { 0, 1000 } drop" in script


def test_removal_deletes_this_users_chains_only() -> None:
    script = render_setup_removal(plan_user_network("alice", 1000, 0), [])
    deleted = [line.split()[-1] for line in script.splitlines() if line.startswith("delete")]
    assert set(deleted) == {"nat_bgu0", "fwd_bgu0", "in_bgu0", "pre_bgu0", "dnsin_bgu0",
                            "dnsout_bgu0", "own_bgu0"}
